"""notebooks/explore_facility.ipynb runs top to bottom on the sample tiles, quickly."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pyogrio
import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat not installed (pip install .[test])")
nbclient = pytest.importorskip("nbclient", reason="nbclient not installed (pip install .[test])")
pytest.importorskip("ipykernel", reason="ipykernel not installed (pip install .[test])")
pytest.importorskip("folium", reason="folium not installed (pip install .[notebook])")
pytest.importorskip("matplotlib", reason="matplotlib not installed (pip install .[notebook])")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_facility.ipynb"
PUBLIC_MODULES = {"", "aoi", "evidence", "io", "products", "sample_data", "webmap"}


def kernel_for_this_interpreter(root: Path) -> str:
    """A kernel spec that runs this very Python (the test venv), found via JUPYTER_PATH.

    The kernel imports the borderwatch these tests import (the checkout's ``src/``,
    pytest's ``pythonpath``), whatever the kernel's working folder.
    """
    import borderwatch

    code = str(Path(borderwatch.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (code, os.environ.get("PYTHONPATH", "")) if p)
    spec = root / "kernels" / "borderwatch-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "borderwatch test",
                "language": "python",
                "env": {"PYTHONPATH": path},
            }
        )
    )
    return "borderwatch-test"


def outputs_of(nb, kind: str) -> str:
    return "".join(
        o.get("text", "")
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == kind
    )


@pytest.mark.slow
def test_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("BORDERWATCH_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    kernel = kernel_for_this_interpreter(tmp_path / "jupyter")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "strip outputs"
    # The per-cell timeout only guards against a hang; speed is measured in benchmarks.
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name=kernel, resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert errors == []
    stdout = outputs_of(nb, "stdout")
    # Tuning visibly changes the detections: several different object counts.
    counts = {int(n) for n in re.findall(r"-> +(\d+) objects", stdout)}
    assert len(re.findall(r"-> +\d+ objects", stdout)) == 9 and len(counts) >= 2, stdout
    # The exported GeoPackage holds the final run's detections.
    gpkg = tmp_path / "out" / "helong.gpkg"
    n_final = int(re.search(r"(\d+) detections, ", stdout).group(1))
    assert pyogrio.read_info(gpkg, layer="detections")["features"] == n_final
    assert (tmp_path / "out" / "evidence" / "report.html").is_file()
    # The offline map: no tile layer, the after image and both vector layers embedded.
    html = (tmp_path / "out" / "map.html").read_text()
    assert "tile.openstreetmap" not in html and "L.tileLayer(" not in html
    assert "L.imageOverlay(" in html and html.count("L.geoJson(") >= 2
    # The detections' tooltip gives each centroid's coordinates.
    assert 'let fields = ["area_m2", "lat", "lon", "mgrs"];' in html


def test_notebook_uses_the_public_api_only():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    imported = re.findall(r"from borderwatch\.?(\w*) import ([^\n]+)", source)
    assert {m for m, _ in imported} <= PUBLIC_MODULES
    import importlib

    for module, names in imported:
        mod = importlib.import_module(f"borderwatch.{module}" if module else "borderwatch")
        for name in (n.strip() for n in names.split(",")):
            assert name in mod.__all__, f"borderwatch.{module}.{name} is not public"
