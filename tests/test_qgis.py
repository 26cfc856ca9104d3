"""Real QGIS (Debian python3-qgis on the system Python) opens, styles and edits our layers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
from click.testing import CliRunner
from test_qgis_project import split_bands

from borderwatch.cli import main
from borderwatch.io import open_date
from borderwatch.products.qgis_project import write_qgis_project
from borderwatch.products.review import load_reviews
from borderwatch.products.schema import REVIEW_VALUES
from borderwatch.products.styles import DETECTION_LABEL
from borderwatch.sample_data import sample_tiles_dir

SYSTEM_PYTHON = Path("/usr/bin/python3")


def _qgis_reason() -> str | None:
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} absent; QGIS check needs Debian's python3-qgis"
    probe = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import qgis.core"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    if probe.returncode != 0:
        return (
            f"{SYSTEM_PYTHON} cannot import qgis.core (apt-get install python3-qgis): "
            f"{probe.stderr.strip().splitlines()[-1:] or ''}"
        )
    return None


REASON = _qgis_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from qgis.core import QgsApplication, QgsVectorLayer, Qgis
    app = QgsApplication([], False)
    app.initQgis()
    gpkg, geojson, edit_id = sys.argv[1:4]

    def describe(layer):
        r = layer.renderer()
        categorized = r is not None and r.type() == "categorizedSymbol"
        return {
            "valid": layer.isValid(),
            "count": layer.featureCount(),
            "crs": layer.crs().authid(),
            "fields": {f.name(): f.typeName() for f in layer.fields()},
            "renderer": r.type() if r else None,
            "attr": r.classAttribute() if categorized else None,
            "categories": [c.value() for c in r.categories()] if categorized else [],
            "labels": layer.labelsEnabled(),
            "abstract": layer.metadata().abstract(),
            "label_expression": (
                layer.labeling().settings().fieldName
                if layer.labelsEnabled() and layer.labeling() else None
            ),
            "review_widget": widget(layer, "review"),
        }

    def widget(layer, name):
        index = layer.fields().indexOf(name)
        if index < 0:
            return None
        setup = layer.editorWidgetSetup(index)
        entries = setup.config().get("map", [])
        return {"type": setup.type(), "values": [v for e in entries for v in e.values()]}

    out = {"version": Qgis.QGIS_VERSION}
    det = QgsVectorLayer(gpkg + "|layername=detections", "detections", "ogr")
    out["gpkg"] = describe(det)
    out["aoi"] = describe(QgsVectorLayer(gpkg + "|layername=aoi", "aoi", "ogr"))
    out["footprints"] = describe(QgsVectorLayer(gpkg + "|layername=footprints", "f", "ogr"))
    out["coverage"] = describe(QgsVectorLayer(gpkg + "|layername=coverage", "c", "ogr"))
    out["geojson"] = describe(QgsVectorLayer(geojson, "detections", "ogr"))
    # The analyst's edit, through QGIS's own editing API.
    idx_review = det.fields().indexOf("review")
    idx_note = det.fields().indexOf("note")
    target = [f.id() for f in det.getFeatures() if f["id"] == edit_id]
    det.startEditing()
    ok = det.changeAttributeValue(target[0], idx_review, "confirmed")
    ok = ok and det.changeAttributeValue(target[0], idx_note, "checked in QGIS")
    out["edited"] = bool(ok and det.commitChanges())
    del det  # closes the GeoPackage (QGIS releases the OGR dataset with the layer)
    print("RESULT " + json.dumps(out), flush=True)
    # QgsApplication.exitQgis() segfaults at interpreter teardown on some builds
    # (Debian 3.22 offscreen); everything is written and closed by now.
    os._exit(0)
    """
)


def run_qgis(script: str, args: list[str], tmp_path: Path) -> dict:
    """Run a QGIS script with the system Python (headless); return its RESULT line's JSON."""
    path = tmp_path / "qgis_script.py"
    path.write_text(script)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), str(path), *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.mark.slow
def test_qgis_opens_styled_layers_and_review_edit_round_trips(analyst_outputs, tmp_path):
    folder = tmp_path / "qgis"
    folder.mkdir()
    gpkg = folder / "detections.gpkg"
    geojson = folder / "detections.geojson"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    shutil.copy(analyst_outputs.geojson, geojson)
    shutil.copy(analyst_outputs.geojson.with_suffix(".qml"), geojson.with_suffix(".qml"))
    det = analyst_outputs.products.detections
    edit_id = det["id"].iloc[-1]
    got = run_qgis(SCRIPT, [str(gpkg), str(geojson), edit_id], tmp_path)

    n = len(det)
    styled = {
        "renderer": "categorizedSymbol",
        "attr": "class",
        "categories": ["building", "fence_or_wall", "built_up_change", "other"],
        "labels": True,
    }
    for key, crs in (("gpkg", "EPSG:32652"), ("geojson", "EPSG:4326")):
        layer = got[key]
        assert layer["valid"] and layer["count"] == n and layer["crs"] == crs, (key, layer)
        assert {k: layer[k] for k in styled} == styled, key
        types = layer["fields"]
        for name in ("area_m2", "length_m", "confidence", "score", "residual_shift_px"):
            # GeoJSON has no schema: GDAL types a column that is null everywhere as String.
            all_null = det[name].isna().all()
            want = "String" if key == "geojson" and all_null else "Real"
            assert types[name] == want, (key, name, types[name])
        for name in ("id", "class", "review", "note", "mgrs"):
            assert types[name] == "String", (key, name, types[name])
        for name in ("lat", "lon"):
            assert types[name] == "Real", (key, name, types[name])
        for name in ("before_date", "after_date"):  # GDAL recognises ISO dates in GeoJSON
            assert types[name] == ("Date" if key == "geojson" else "String"), (key, name)
    for key in ("gpkg", "geojson"):  # the drop-down and the report numbers, from the style
        assert got[key]["review_widget"] == {"type": "ValueMap", "values": list(REVIEW_VALUES)}
        assert got[key]["label_expression"] == DETECTION_LABEL == "'#' || \"ref\"", key
    for key in ("aoi", "footprints"):
        assert got[key]["valid"] and got[key]["renderer"] == "singleSymbol" and got[key]["labels"]
    assert got["aoi"]["count"] == 1 and got["footprints"]["count"] == 2
    coverage = got["coverage"]
    assert coverage["valid"] and coverage["count"] == 2 and coverage["labels"]
    assert coverage["renderer"] == "categorizedSymbol" and coverage["attr"] == "status"
    assert coverage["categories"] == ["assessed", "one_date_only", "not_covered"]
    # The sample tiles are synthetic: QGIS shows it as every GeoPackage layer's abstract
    # (Layer Properties > Information and Metadata); the AOI carries its caveat.
    for key in ("gpkg", "aoi", "footprints"):
        assert got[key]["abstract"].startswith("SYNTHETIC: "), (key, got[key]["abstract"])
    assert {"confidence", "caveat"} <= set(got["aoi"]["fields"])
    assert got["edited"] is True

    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["review", "import", str(gpkg), "--reviews", str(store)])
    assert r.exit_code == 0, r.output
    assert f"1 of {n} detections reviewed" in r.output
    stored = load_reviews(store, "helong")
    assert stored[["id", "review", "note"]].values.tolist() == [
        [edit_id, "confirmed", "checked in QGIS"]
    ]


PROJECT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from qgis.core import QgsApplication, QgsProject
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    out = {"read": project.read(sys.argv[1]), "crs": project.crs().authid(), "layers": {}}
    for layer in project.mapLayers().values():
        info = {"valid": layer.isValid(), "source": layer.source()}
        if layer.type() == layer.VectorLayer:
            info["count"] = layer.featureCount()
            info["labels"] = layer.labelsEnabled()
            index = layer.fields().indexOf("review")
            info["review_widget"] = layer.editorWidgetSetup(index).type() if index >= 0 else None
        else:
            r = layer.renderer()
            info["renderer"] = r.type()
            info["bands"] = [r.redBand(), r.greenBand(), r.blueBand()]
            ce = r.redContrastEnhancement()
            info["red_stretch"] = [ce.minimumValue(), ce.maximumValue()]
        out["layers"][layer.name()] = info
    out["tree"] = [n.name() for n in project.layerTreeRoot().findLayers()]
    print("RESULT " + json.dumps(out), flush=True)
    os._exit(0)
    """
)


def _reordered_tile(src: Path, dst: Path) -> None:
    """Copy a sample tile with its bands as nir, red, green, blue (named so)."""
    with rasterio.open(src) as ds:
        data, profile = ds.read(), ds.profile
        names = list(ds.descriptions)
    order = [names.index(n) for n in ("nir", "red", "green", "blue")]
    with rasterio.open(dst, "w", **profile) as out:
        out.write(data[order])
        out.descriptions = ("nir", "red", "green", "blue")


@pytest.mark.slow
def test_qgis_project_opens_with_true_colour_images_after_the_folder_moves(tmp_path):
    work = tmp_path / "case"
    work.mkdir()
    tiles = sample_tiles_dir()
    for name in ("before.tif", "after.tif"):
        _reordered_tile(tiles / name, work / name)
    args = ["detect", "--before", "before.tif", "--after", "after.tif", "--aoi", "helong"]
    args += ["--out", "run.gpkg", "--qgis-project", "run.qgz"]
    cwd = os.getcwd()
    os.chdir(work)
    try:
        r = CliRunner().invoke(main, args)
    finally:
        os.chdir(cwd)
    assert r.exit_code == 0, r.output
    assert "wrote run.qgz" in r.output
    with zipfile.ZipFile(work / "run.qgz") as zf:
        assert zf.namelist() == ["run.qgs"]
        qgs = zf.read("run.qgs").decode()
    assert str(work) not in qgs  # relative paths only
    moved = tmp_path / "elsewhere" / "case"
    moved.parent.mkdir()
    shutil.move(work, moved)
    n = len(pyogrio.read_dataframe(moved / "run.gpkg", layer="detections"))
    got = run_qgis(PROJECT_SCRIPT, [str(moved / "run.qgz")], tmp_path)

    assert got["read"] is True and got["crs"] == "EPSG:32652", got
    layers = got["layers"]
    names = set(pyogrio.list_layers(moved / "run.gpkg")[:, 0])
    shown = ["detections", "aoi", *(["coverage"] if "coverage" in names else [])]
    assert got["tree"] == [*shown, "after", "before"]
    assert all(layer["valid"] for layer in layers.values()), layers
    assert layers["detections"]["count"] == n > 0
    assert layers["detections"]["labels"] and layers["detections"]["review_widget"] == "ValueMap"
    assert layers["aoi"]["count"] == 1
    for date in ("before", "after"):
        raster = layers[date]
        # red, green, blue are bands 2, 3, 4 of these files (band 1 is nir)
        assert raster["renderer"] == "multibandcolor" and raster["bands"] == [2, 3, 4], raster
        with rasterio.open(moved / f"{date}.tif") as ds:
            red = ds.read(2, masked=True).compressed()
        low, high = np.percentile(red, [2, 98])
        assert raster["red_stretch"] == pytest.approx([low, high], rel=0.05), raster


@pytest.mark.slow
def test_qgis_opens_a_project_whose_date_is_band_files(analyst_outputs, tmp_path):
    bands = split_bands(analyst_outputs.tiles / "after.tif", tmp_path / "bands")
    gpkg = tmp_path / "d.gpkg"
    shutil.copy(analyst_outputs.gpkg, gpkg)
    images = [("after", open_date(bands))]
    write_qgis_project(tmp_path / "p.qgz", gpkg=gpkg, images=images, title="t")
    got = run_qgis(PROJECT_SCRIPT, [str(tmp_path / "p.qgz")], tmp_path)
    after = got["layers"]["after"]
    assert got["read"] is True and after["valid"], got
    assert after["renderer"] == "multibandcolor" and after["bands"] == [1, 2, 3]
    assert got["layers"]["detections"]["count"] == len(analyst_outputs.products.detections)


@pytest.mark.slow
def test_qgis_opens_a_redacted_demo_project_once_its_images_are_beside_it(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out-dir", str(out)])  # redacted by default
    assert r.exit_code == 0, r.output
    after, before = (f"{d} (image not in the packet: {d}.tif)" for d in ("after", "before"))
    got = run_qgis(PROJECT_SCRIPT, [str(out / "new_structures.qgz")], tmp_path)
    assert got["read"] is True and got["tree"][-2:] == [after, before], got
    assert got["layers"]["detections"]["valid"] and not got["layers"][after]["valid"], got
    for name in ("before.tif", "after.tif"):  # the analyst puts the images beside it
        shutil.copy(sample_tiles_dir() / name, out / name)
    got = run_qgis(PROJECT_SCRIPT, [str(out / "new_structures.qgz")], tmp_path)
    assert all(layer["valid"] for layer in got["layers"].values()), got["layers"]
    assert got["layers"][after]["renderer"] == "multibandcolor"
