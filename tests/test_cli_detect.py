"""The main job end to end: CLI `detect` and `demo`, bad input, real OSCD data."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from affine import Affine
from click.testing import CliRunner

from borderwatch.cli import main
from borderwatch.sample_data import sample_tiles_dir


def invoke(args: list[str]):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def one_line_error(result) -> str:
    assert result.exit_code != 0
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert lines[0].startswith("borderwatch: error:")
    return lines[0]


def test_detect_writes_layer_and_summary(tmp_path: Path, sample_detect_args):
    tiles = sample_tiles_dir()
    out = tmp_path / "new_structures.geojson"
    r = invoke(sample_detect_args(out))
    assert r.exit_code == 0, r.output
    assert "detections" in r.output and "m2" in r.output and str(out) in r.output
    fc = json.loads(out.read_text())
    meta = fc["borderwatch"]
    assert meta["version"] and meta["parameters"]["method"]
    files = meta["inputs"]["before"]["files"]
    assert len(files[0]["sha256"]) == 64
    assert meta["inputs"]["before"]["date"] == "2019-06-14"
    assert meta["inputs"]["after"]["date"] == "2021-09-02"
    gdf = gpd.read_file(out)
    assert gdf.crs.to_epsg() == 4326
    assert {"area_m2", "mean_score", "max_score", "aoi_id", "before", "after"} <= set(gdf.columns)
    assert (gdf.aoi_id == "helong").all()
    # Refuses to overwrite, leaves the file as it was.
    stamp = out.read_bytes()
    r2 = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(tiles / "before.tif"),
            "--after",
            str(tiles / "after.tif"),
            "--out",
            str(out),
        ],
    )
    assert "output exists" in one_line_error(r2)
    assert out.read_bytes() == stamp


@pytest.mark.slow
def test_demo_runs_from_any_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke(["demo"])
    assert r.exit_code == 0, r.output
    folders = list(tmp_path.glob("borderwatch-demo-*"))
    assert len(folders) == 1
    layer = folders[0] / "new_structures.geojson"
    assert layer.exists()
    n = len(json.loads(layer.read_text())["features"])
    assert f"{n} detections" in r.output


def test_summary_says_unknown_for_dates_nothing_gave(tmp_path: Path, make_raster):
    rng = np.random.default_rng(5)
    before = rng.integers(300, 1500, (4, 200, 200), dtype=np.uint16)
    after = before.copy()
    after[:, 80:110, 90:120] += 900  # one bright new roof
    b, a = make_raster("plain_b.tif", before), make_raster("plain_a.tif", after)
    r = invoke(["detect", "--before", str(b), "--after", str(a), "--out", str(tmp_path / "o.gpkg")])
    assert r.exit_code == 0, r.output
    assert "(unknown -> unknown, 1 m grid" in r.output and "?" not in r.output


@pytest.fixture
def good_pair(make_raster):
    rng = np.random.default_rng(3)
    data = rng.integers(100, 3000, (4, 64, 64), dtype=np.uint16)
    return make_raster("b.tif", data), make_raster("a.tif", data)


def run_bad(tmp_path: Path, before: Path, after: Path, *extra: str) -> str:
    out = tmp_path / "out.geojson"
    r = CliRunner().invoke(
        main, ["detect", "--before", str(before), "--after", str(after), "--out", str(out), *extra]
    )
    line = one_line_error(r)
    assert not out.exists()
    assert not list(tmp_path.glob(".out.geojson*"))
    return line


def test_bad_missing_file(tmp_path: Path, good_pair):
    line = run_bad(tmp_path, tmp_path / "nope.tif", good_pair[1])
    assert "nope.tif: no such file" in line


def test_bad_not_a_raster(tmp_path: Path, good_pair):
    junk = tmp_path / "notes.tif"
    junk.write_text("hello")
    assert "notes.tif: not a readable raster" in run_bad(tmp_path, junk, good_pair[1])


def test_bad_truncated_geotiff(tmp_path: Path, make_raster):
    rng = np.random.default_rng(0)
    good = make_raster("g.tif", rng.integers(0, 4000, (4, 256, 256), dtype=np.uint16))
    bad = tmp_path / "trunc.tif"
    bad.write_bytes(good.read_bytes()[:70_000])
    assert "trunc.tif" in run_bad(tmp_path, bad, good)


def test_bad_no_overlap(tmp_path: Path, make_raster, good_pair):
    far = make_raster(
        "far.tif",
        np.ones((4, 64, 64), np.uint16),
        transform=Affine(1, 0, 700000.0, 0, -1, 4710000.0),
    )
    assert "does not overlap" in run_bad(tmp_path, good_pair[0], far)
    # The sample pair is in Helong; the Dandong AOI is ~500 km away.
    tiles = sample_tiles_dir()
    line = run_bad(tmp_path, tiles / "before.tif", tiles / "after.tif", "--aoi", "dandong")
    assert "does not overlap" in line


def test_bad_malformed_aoi_file(tmp_path: Path, good_pair):
    aoi = tmp_path / "site.geojson"
    aoi.write_text('{"type": "FeatureCollection", "features": [')
    assert "site.geojson" in run_bad(tmp_path, good_pair[0], good_pair[1], "--aoi", str(aoi))


@pytest.mark.slow
def test_oscd_detect_runs(tmp_path: Path, shared_data: Path):
    city = shared_data / "oscd" / "Onera Satellite Change Detection dataset - Images" / "beihai"
    out = tmp_path / "beihai.geojson"
    bands = ("B02", "B03", "B04", "B08")
    before = [next((city / "imgs_1").glob(f"*_{b}.tif")) for b in bands]
    after = [next((city / "imgs_2").glob(f"*_{b}.tif")) for b in bands]
    args = ["detect", "--out", str(out), "--min-area", "500"]
    for b, a in zip(before, after, strict=True):
        args += ["--before", str(b), "--after", str(a)]
    r = invoke(args)
    assert r.exit_code == 0, r.output
    gdf = gpd.read_file(out)
    assert len(gdf) > 0 and gdf.crs.to_epsg() == 4326
    assert (gdf.area_m2 >= 500).all()
    # Beihai is in UTM 49N; detections lie inside the city footprint.
    lon, lat = gdf.union_all().centroid.coords[0]
    assert 109.48 < lon < 109.56 and 21.53 < lat < 21.62
