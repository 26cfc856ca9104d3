"""Coverage of the AOI: known answers on planted nodata, the demo, the layer and the summary."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from borderwatch.cli import main
from borderwatch.engine import detect, run_metadata
from borderwatch.products.coverage import (
    COVERAGE_STATUSES,
    WARN_BELOW_SHARE,
    coverage_frame,
    coverage_lines,
    coverage_summary,
)
from borderwatch.products.gpkg import read_layer_styles

# The conftest rasters: 1 m pixels, top-left corner at (500000, 4710000), EPSG:32652.
X0, Y0 = 500000.0, 4710000.0


@pytest.fixture
def holed_pair(make_raster):
    """100 x 100 px: before has no data in the top 20 rows, after in the left 40 columns.

    Both dates valid: x 500040-500100, y 4709900-4709980 (60 x 80 = 4800 m2); one date
    only: 9200 - 4800 = 4400 m2 (the union is 8000 + 6000 - 4800 m2).
    """
    rng = np.random.default_rng(3)
    before = rng.integers(100, 1000, (4, 100, 100)).astype(np.uint16)
    after = before.copy()
    after[:, 50:60, 60:70] += 2000  # one new bright structure
    before[:, :20, :] = 0
    after[:, :, :40] = 0
    return (
        make_raster("before.tif", before, nodata=0),
        make_raster("after.tif", after, nodata=0),
    )


def test_known_answer_without_aoi(holed_pair):
    run = detect(*holed_pair)
    s = coverage_summary(run)
    assert s["region"] == "input overlap"
    # The region is the files' overlap (10000 m2), not the grid snapped around it.
    assert s["region_area_m2"] == pytest.approx(10000.0)
    assert s["assessed_area_m2"] == pytest.approx(4800.0)
    assert s["one_date_only_area_m2"] == pytest.approx(4400.0)
    assert s["not_covered_area_m2"] == pytest.approx(10000.0 - 9200.0)
    assert s["assessed_share"] == pytest.approx(0.48)
    assert s["warning"].startswith("only 48.0 % of the input overlap could be assessed")
    assert run_metadata(run, hash_inputs=False)["coverage"] == s


def test_known_answer_with_an_aoi_half_outside_the_image(holed_pair, tmp_path: Path):
    # AOI x 500070-500170, y 4709900-4710000 (10000 m2), half of it east of the image.
    aoi = gpd.GeoDataFrame(
        {"id": ["half"], "name": ["half out"]},
        geometry=[box(X0 + 70, Y0 - 100, X0 + 170, Y0)],
        crs="EPSG:32652",
    ).to_crs("EPSG:4326")
    path = tmp_path / "aoi.geojson"
    aoi.to_file(path, driver="GeoJSON")
    run = detect(*holed_pair, aoi=str(path))
    s = coverage_summary(run)
    assert s["region"] == "aoi"
    assert s["region_area_m2"] == pytest.approx(10000.0, rel=1e-6)
    assert s["assessed_area_m2"] == pytest.approx(30 * 80, rel=1e-6)
    assert s["one_date_only_area_m2"] == pytest.approx(30 * 20, rel=1e-5)
    assert s["not_covered_area_m2"] == pytest.approx(10000.0 - 30 * 100, rel=1e-6)
    assert s["assessed_share"] == pytest.approx(0.24, rel=1e-5)
    frame = coverage_frame(run)
    assert frame["status"].tolist() == list(COVERAGE_STATUSES)
    np.testing.assert_allclose(frame.geometry.area, frame["area_m2"])
    assert frame["area_m2"].sum() == pytest.approx(s["region_area_m2"])
    assert frame["share"].sum() == pytest.approx(1.0)
    # The parts do not overlap: their union has the sum of their areas.
    assert frame.geometry.union_all().area == pytest.approx(frame["area_m2"].sum())


def test_full_coverage_is_100_percent_and_has_no_warning(make_raster):
    rng = np.random.default_rng(4)
    data = rng.integers(100, 1000, (4, 64, 64)).astype(np.uint16)
    # The same pixels on both dates (allowed on purpose): coverage does not depend on change.
    run = detect(
        make_raster("b.tif", data, nodata=0),
        make_raster("a.tif", data, nodata=0),
        allow_reversed=True,
    )
    s = coverage_summary(run)
    assert s["assessed_share"] == pytest.approx(1.0)
    assert s["assessed_area_m2"] == pytest.approx(64 * 64)
    assert s["warning"] is None
    assert coverage_frame(run)["status"].tolist() == ["assessed"]
    assert coverage_lines(s) == ["assessed 4,096 m2 of 4,096 m2 input overlap (100.0 %)"]


def test_demo_covers_under_one_percent_of_helong(analyst_outputs):
    s = coverage_summary(analyst_outputs.run)
    # The 512 x 512 m sample tiles inside the 3 km radius Helong search circle.
    assert s["region_area_m2"] == pytest.approx(math.pi * 3000.0**2, rel=1e-3)
    assert s["assessed_area_m2"] == pytest.approx(512.0 * 512.0)
    assert s["assessed_share"] == pytest.approx(0.00928, abs=1e-4)
    assert coverage_lines(s) == [
        "assessed 0.26 km2 of 28.26 km2 AOI (0.9 %)",
        "warning: only 0.9 % of the AOI could be assessed (both dates, valid pixels); "
        "absence of detections elsewhere means nothing",
    ]


def test_coverage_layer_in_the_geopackage(analyst_outputs):
    layer = pyogrio.read_dataframe(analyst_outputs.gpkg, layer="coverage")
    assert layer.crs.to_epsg() == 32652
    assert layer["status"].tolist() == ["assessed", "not_covered"]
    aoi = pyogrio.read_dataframe(analyst_outputs.gpkg, layer="aoi")
    assert layer["area_m2"].sum() == pytest.approx(aoi.geometry.area.iloc[0])
    np.testing.assert_allclose(layer.geometry.area, layer["area_m2"])
    assert "coverage" in read_layer_styles(analyst_outputs.gpkg)


def test_coverage_in_manifest_geojson_and_report(analyst_outputs):
    want = coverage_summary(analyst_outputs.run)
    manifest = json.loads((analyst_outputs.evidence / "manifest.json").read_text("utf-8"))
    assert manifest["coverage"] == want
    fc = json.loads(analyst_outputs.geojson.read_text("utf-8"))
    assert fc["borderwatch"]["coverage"] == want
    html = (analyst_outputs.evidence / "report.html").read_text("utf-8")
    coverage = html[html.index("<h2>Coverage</h2>") : html.index("<h2>Detections</h2>")]
    assert "<b>0.26 km²</b> of the AOI's 28.26 km²" in coverage
    assert "0.9&nbsp;%" in coverage and "absence of detections elsewhere means nothing" in coverage
    assert html.index("<h2>Overview</h2>") < html.index("<h2>Coverage</h2>")


def _summary_lines(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if ln.startswith(("assessed ", "warning: "))]


def test_detect_summary_warns_under_90_percent_only(tmp_path: Path, sample_detect_args):
    r = CliRunner().invoke(main, sample_detect_args(tmp_path / "a.geojson"))
    assert r.exit_code == 0, r.output
    lines = _summary_lines(r.output)
    assert lines[0] == "assessed 0.26 km2 of 28.26 km2 AOI (0.9 %)"
    assert lines[1].startswith("warning: only 0.9 % of the AOI could be assessed")
    # Without an AOI the sample tiles cover their whole overlap.
    args = [a for a in sample_detect_args(tmp_path / "b.geojson") if a != "helong"]
    args.remove("--aoi")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    lines = _summary_lines(r.output)
    assert lines == ["assessed 0.26 km2 of 0.26 km2 input overlap (100.0 %)"]
    assert WARN_BELOW_SHARE == 0.9


def test_batch_prints_and_records_coverage(tmp_path: Path):
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    out = tmp_path / "batch"
    r = CliRunner().invoke(
        main,
        [
            *("batch", "--aoi", "helong", "--out-dir", str(out), "--method", "combined"),
            *("--pair", str(tiles / "before.tif"), str(tiles / "after.tif")),
        ],
    )
    assert r.exit_code == 0, r.output
    assert (
        "8 detections (0 confirmed, 0 rejected), 4,237 m2 excluding rejected; "
        "assessed 0.26 km2 of 28.26 km2 AOI (0.9 %)"
    ) in r.output
    assert "    warning: only 0.9 % of the AOI could be assessed" in r.output
    job = json.loads((out / "batch.json").read_text("utf-8"))["jobs"][0]
    assert job["coverage"]["assessed_share"] == pytest.approx(0.00928, abs=1e-4)
    fc = json.loads((out / job["report"]).read_text("utf-8"))
    assert fc["borderwatch"]["coverage"]["assessed_area_m2"] == pytest.approx(512.0 * 512.0)
    assert all(np.isfinite(f["properties"]["lat"]) for f in fc["features"])


def test_coverage_style_is_categorized_on_status():
    import xml.etree.ElementTree as ET

    from borderwatch.products.styles import style_for_layer

    root = ET.fromstring(style_for_layer("coverage").split("\n", 1)[1])
    renderer = root.find("renderer-v2")
    assert renderer.get("type") == "categorizedSymbol" and renderer.get("attr") == "status"
    assert [c.get("value") for c in renderer.find("categories")] == list(COVERAGE_STATUSES)
    assert "share" in root.find("labeling/settings/text-style").get("fieldName")
