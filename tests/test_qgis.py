"""Real QGIS (Debian python3-qgis on the system Python) opens, styles and edits our layers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from borderwatch.cli import main
from borderwatch.products.review import load_reviews

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
        }

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
    script = tmp_path / "qgis_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(tmp_path)}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), str(script), str(gpkg), str(geojson), edit_id],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
        cwd=tmp_path,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    got = json.loads(lines[-1][len("RESULT ") :])

    n = len(det)
    styled = {
        "renderer": "categorizedSymbol",
        "attr": "class",
        "categories": ["building", "fence_or_wall", "other"],
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
