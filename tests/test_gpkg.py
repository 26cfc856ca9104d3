"""GeoPackage export: layers, analyst schema, stable ids, QGIS layer_styles, atomic writes."""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from borderwatch.cli import main
from borderwatch.engine import detect
from borderwatch.errors import InputError, OutputExistsError
from borderwatch.products.gpkg import LAYER_STYLES_DDL, read_layer_styles, write_gpkg
from borderwatch.products.schema import ANALYST_COLUMNS, analyst_table, object_length_m, stable_id
from borderwatch.products.styles import CLASS_COLOURS, style_for_layer

# What QGIS 3.22 itself wrote for "Save as Default" into a GeoPackage (sqlite_master).
QGIS_DDL = (
    'CREATE TABLE "layer_styles" ( "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, '
    '"f_table_catalog" TEXT(256), "f_table_schema" TEXT(256), "f_table_name" TEXT(256), '
    '"f_geometry_column" TEXT(256), "styleName" TEXT(30), "styleQML" TEXT, "styleSLD" TEXT, '
    '"useAsDefault" BOOLEAN, "description" TEXT, "owner" TEXT(30), "ui" TEXT(30), '
    "\"update_time\" DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
)


POLYGON_LAYERS = ("detections", "aoi", "footprints", "coverage")


def test_layers_crs_and_analyst_columns(analyst_outputs):
    run = analyst_outputs.run
    layers = {str(n): g for n, g in pyogrio.list_layers(analyst_outputs.gpkg)}
    assert layers == {
        "detections": "MultiPolygon",
        "aoi": "MultiPolygon",
        "footprints": "MultiPolygon",
        "coverage": "MultiPolygon",
        "layer_styles": None,
    }
    info = pyogrio.read_info(analyst_outputs.gpkg, layer="detections")
    assert info["crs"] == run.grid.crs.to_string() == "EPSG:32652"
    assert info["features"] == len(run.objects) > 0
    fields = list(info["fields"])
    assert fields[: len(ANALYST_COLUMNS)] == list(ANALYST_COLUMNS)
    types = dict(zip(fields, info["ogr_types"], strict=True))
    for name in ("area_m2", "length_m", "confidence", "score", "residual_shift_px"):
        assert types[name] == "OFTReal", name
    for name in ("id", "class", "before_date", "after_date", "review", "note"):
        assert types[name] == "OFTString", name
    det = pyogrio.read_dataframe(analyst_outputs.gpkg, layer="detections")
    assert (det["review"] == "unreviewed").all()
    assert set(det["class"]) <= set(CLASS_COLOURS)
    assert (det["before_date"] == "2019-06-14").all() and (det["after_date"] == "2021-09-02").all()
    np.testing.assert_allclose(det["area_m2"], run.objects["area_m2"])
    np.testing.assert_allclose(det.geometry.area, run.objects.geometry.area)
    # Footprints: one per date, covering the whole 1 m grid of valid sample-tile pixels.
    foot = pyogrio.read_dataframe(analyst_outputs.gpkg, layer="footprints")
    assert list(foot["role"]) == ["before", "after"]
    assert foot.geometry.area.tolist() == pytest.approx(
        [run.footprint("before")[2] * 1.0, run.footprint("after")[2] * 1.0]
    )
    aoi = pyogrio.read_dataframe(analyst_outputs.gpkg, layer="aoi")
    assert aoi["id"].tolist() == ["helong"]


def test_layer_styles_table_is_the_qgis_one(analyst_outputs):
    assert LAYER_STYLES_DDL == QGIS_DDL
    con = sqlite3.connect(analyst_outputs.gpkg)
    try:
        ddl = con.execute("SELECT sql FROM sqlite_master WHERE name='layer_styles'").fetchone()[0]
        rows = con.execute(
            "SELECT f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
            "useAsDefault, owner, ui FROM layer_styles ORDER BY id"
        ).fetchall()
        contents = con.execute(
            "SELECT data_type, srs_id FROM gpkg_contents WHERE table_name='layer_styles'"
        ).fetchone()
        count = con.execute(
            "SELECT feature_count FROM gpkg_ogr_contents WHERE table_name='layer_styles'"
        ).fetchone()
    finally:
        con.close()
    assert ddl == QGIS_DDL
    assert rows == [("", "", name, "geom", name, 1, "", None) for name in POLYGON_LAYERS]
    assert contents == ("attributes", 0)
    assert count == (4,)  # kept by the same triggers GDAL adds
    styles = read_layer_styles(analyst_outputs.gpkg)
    assert set(styles) == set(POLYGON_LAYERS)
    root = ET.fromstring(styles["detections"].split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "class"
    values = [c.get("value") for c in renderer.find("categories")]
    assert values == ["building", "fence_or_wall", "built_up_change", "other"]
    label = root.find("labeling/settings/text-style")
    assert label.get("fieldName") == "'#' || \"ref\"" and label.get("isExpression") == "1"


def test_geojson_output_has_qml_beside_it(analyst_outputs):
    qml = analyst_outputs.geojson.with_suffix(".qml")
    assert qml.read_text("utf-8") == style_for_layer("detections")
    fc = json.loads(analyst_outputs.geojson.read_text("utf-8"))
    assert fc["borderwatch"]["place"] == "helong"
    props = fc["features"][0]["properties"]
    assert list(props)[: len(ANALYST_COLUMNS)] == list(ANALYST_COLUMNS)
    assert 0 <= props["confidence"] <= 1  # from borderwatch.objects.classify (issue 3)


@pytest.mark.slow
def test_ids_stable_across_reruns_and_tied_to_inputs(analyst_outputs, tmp_path):
    first = analyst_outputs.products.detections
    again = detect(
        analyst_outputs.tiles / "before.tif",
        analyst_outputs.tiles / "after.tif",
        aoi="helong",
        params=analyst_outputs.run.params,  # the fixture's (combined)
    )
    second = analyst_table(again.objects, input_hashes=_hashes(analyst_outputs))
    assert list(second["id"]) == list(first["id"])
    assert len(set(first["id"])) == len(first)
    other = analyst_table(again.objects, input_hashes=["0" * 64, "1" * 64])
    assert not set(other["id"]) & set(first["id"])


def _hashes(outputs) -> list[str]:
    from borderwatch.products.gpkg import input_hashes

    return list(input_hashes(outputs.run))


def test_stable_id_ignores_sub_centimetre_noise_and_ring_start():
    a = box(0, 0, 10, 3)
    b = box(1e-4, 0, 10, 3 + 1e-4)
    c = a.reverse()
    ids = {stable_id(g, input_hashes=["x"], crs="EPSG:32652") for g in (a, b, c)}
    assert len(ids) == 1
    assert stable_id(box(0, 0, 10, 4), input_hashes=["x"], crs="EPSG:32652") not in ids


def test_analyst_defaults_and_detector_columns_kept():
    geoms = [box(0, 0, 40, 3), box(100, 100, 110, 120)]
    raw = gpd.GeoDataFrame(
        {"area_m2": [120.0, 200.0], "mean_score": [3.0, 4.0]}, geometry=geoms, crs="EPSG:32652"
    )
    t = analyst_table(raw, input_hashes=["a"], before_date="2020-01-01", after_date="2021-01-01")
    assert t["class"].tolist() == ["other", "other"]
    assert t["length_m"].tolist() == pytest.approx([40.0, 20.0])
    assert t["score"].tolist() == [3.0, 4.0]
    assert t["review"].tolist() == ["unreviewed"] * 2 and t["note"].tolist() == ["", ""]
    assert t["confidence"].isna().all() and t["residual_shift_px"].isna().all()
    assert t["before_date"].tolist() == ["2020-01-01"] * 2
    given = raw.assign(
        **{
            "class": ["fence_or_wall", None],
            "confidence": [0.9, 0.2],
            "length_m": [39.5, 9.0],
            "residual_shift_px": [0.3, 0.3],
        }
    )
    t2 = analyst_table(given, input_hashes=["a"])
    assert t2["class"].tolist() == ["fence_or_wall", "other"]
    assert t2["confidence"].tolist() == [0.9, 0.2]
    assert t2["length_m"].tolist() == [39.5, 9.0]
    assert t2["residual_shift_px"].tolist() == [0.3, 0.3]
    with pytest.raises(InputError, match="unknown review value"):
        analyst_table(raw.assign(review=["maybe", "confirmed"]), input_hashes=["a"])


def test_object_length_of_a_diagonal_strip():
    from shapely import affinity

    strip = affinity.rotate(box(0, 0, 50, 2), 30, origin=(0, 0))
    assert object_length_m(gpd.GeoSeries([strip]))[0] == pytest.approx(50.0)


def test_write_is_atomic_and_refuses_to_overwrite(analyst_outputs, tmp_path):
    layers = {"detections": analyst_outputs.products.detections}
    dest = tmp_path / "x.gpkg"
    write_gpkg(layers, dest)
    stamp = dest.read_bytes()
    with pytest.raises(OutputExistsError):
        write_gpkg(layers, dest)
    assert dest.read_bytes() == stamp
    no_crs = {"detections": gpd.GeoDataFrame({"a": [1]}, geometry=[box(0, 0, 1, 1)])}
    with pytest.raises(InputError, match="no CRS"):
        write_gpkg(no_crs, dest, overwrite=True)
    assert dest.read_bytes() == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.gpkg"]  # no temp left behind
    with pytest.raises(InputError, match=r"\.gpkg"):
        write_gpkg(layers, tmp_path / "x.shp")


@pytest.mark.slow
def test_detect_cli_writes_gpkg_by_suffix(analyst_outputs, tmp_path: Path, sample_detect_args):
    out = tmp_path / "site.gpkg"
    tiles = analyst_outputs.tiles
    r = CliRunner().invoke(
        main,
        sample_detect_args(out, "--reviews", str(tmp_path / "store")),
    )
    assert r.exit_code == 0, r.output
    assert str(out) in r.output
    assert set(read_layer_styles(out)) == set(POLYGON_LAYERS)
    det = pyogrio.read_dataframe(out, layer="detections")
    assert det["id"].tolist() == analyst_outputs.products.detections["id"].tolist()
    bad = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(tiles / "before.tif"),
            "--after",
            str(tiles / "after.tif"),
            "--out",
            str(tmp_path / "x.csv"),
        ],
    )
    assert bad.exit_code == 2 and "unknown output type" in bad.output


def test_existing_qml_blocks_geojson_before_any_write(analyst_outputs, tmp_path):
    from borderwatch.products.write import write_products

    (tmp_path / "d.qml").write_text("mine")
    with pytest.raises(OutputExistsError, match="d.qml"):
        write_products(analyst_outputs.run, outputs=(tmp_path / "d.geojson",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.qml"]
    assert (tmp_path / "d.qml").read_text() == "mine"
