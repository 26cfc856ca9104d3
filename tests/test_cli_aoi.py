"""CLI tests for ``borderwatch aoi`` through click's CliRunner."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
from click.testing import CliRunner
from numpy.testing import assert_allclose
from pyproj import Transformer
from shapely.geometry import LineString, Point

from borderwatch.aoi import area_km2, read_aoi_file
from borderwatch.cli.aoi_cmd import aoi

NE_BOUNDARY = "natural_earth/derived_chn_prk_boundary_from_ne_10m.geojson"
NE_WORLD = "natural_earth/ne_10m_admin_0_boundary_lines_land.geojson"
TO_LONLAT52 = Transformer.from_crs(32652, 4326, always_xy=True)
IDS = [
    "dandong",
    "tonghua",
    "changbai",
    "helong",
    "longjing",
    "tumen",
    "hoeryong",
    "musan",
    "namyang",
    "hyesan",
    "manpo",
    "sinuiju",
]


def run(args: list[str]):
    return CliRunner().invoke(aoi, args)


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for frag in fragments:
        assert frag in lines[0]


@pytest.fixture
def synthetic_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """A 3 km study area and a straight boundary through its centre (UTM 52N truth)."""
    cx, cy = 520000.0, 4710000.0
    line = shapely.transform(
        LineString([(cx - 20_000, cy), (cx + 20_000, cy)]),
        lambda x, y: TO_LONLAT52.transform(x, y),
        interleaved=False,
    )
    boundary = tmp_path / "boundary.geojson"
    gpd.GeoDataFrame({"id": ["b"]}, geometry=[line], crs=4326).to_file(boundary)
    areas = tmp_path / "areas.gpkg"
    gpd.GeoDataFrame(
        {"id": ["ctr"], "name": ["Centre"], "radius_m": [3000.0]},
        geometry=[Point(*TO_LONLAT52.transform(cx, cy))],
        crs=4326,
    ).to_file(areas)
    return boundary, areas


def test_list_shows_every_entry_with_its_search_area():
    result = run(["list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "name", "kind", "confidence", "area_km2"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == IDS
    helong = rows["helong"]
    assert "facility" in helong and "town" in helong
    assert_allclose(float(helong.split()[-1]), math.pi * 3.0**2, rtol=0.01)
    assert_allclose(float(rows["tumen"].split()[-1]), math.pi * 2.0**2, rtol=0.01)
    assert "fence_study_area" in rows["hoeryong"]


def test_show_prints_properties_centroid_and_utm():
    result = run(["show", "helong"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "utm_crs: EPSG:32652" in out
    assert "centroid_lon_lat: 129.003900, 42.540300" in out
    assert "location_confidence: town" in out
    assert "nkdb.org" in out
    area = float(out.split("area_km2: ")[1].split()[0])
    assert_allclose(area, math.pi * 9.0, rtol=0.01)
    assert "utm_crs: EPSG:32651" in run(["show", "dandong"]).output


def test_show_unknown_id_lists_valid_ids():
    result = run(["show", "pyongyang"])
    assert result.exit_code == 2
    assert_one_line_error(result, "pyongyang", *IDS)


def test_show_malformed_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    assert_one_line_error(run(["show", str(bad)]), "bad.geojson")


def test_show_swapped_file_is_one_line(tmp_path):
    path = tmp_path / "swapped.geojson"
    feat = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Point", "coordinates": [42.54, 129.0]},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    assert_one_line_error(run(["show", str(path)]), "swapped", "swapped.geojson")


def test_show_user_point_without_radius_reports_missing_area(tmp_path):
    path = tmp_path / "p.geojson"
    feat = {
        "type": "Feature",
        "properties": {"id": "p"},
        "geometry": {"type": "Point", "coordinates": [129.0, 42.5]},
    }
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feat]}))
    out = run(["show", str(path)]).output
    assert "area_km2: n/a" in out and "radius_m" in out
    out = run(["show", str(path), "--radius-m", "1000"]).output
    assert_allclose(float(out.split("area_km2: ")[1].split()[0]), math.pi, rtol=0.01)


def test_corridors_writes_rfc7946_atomically(tmp_path, synthetic_inputs):
    boundary, areas = synthetic_inputs
    out = tmp_path / "out" / "corridors.geojson"
    out.parent.mkdir()
    args = [
        "corridors",
        "--boundary",
        str(boundary),
        "--study-areas",
        str(areas),
        "--width-m",
        "400",
    ]
    result = run([*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if line.startswith("ctr"))
    assert_allclose(float(row.split()[2]), 6.0, atol=0.01)  # chord through the centre = 2r
    assert sorted(p.name for p in out.parent.iterdir()) == ["corridors.geojson"]  # no temp left

    doc = json.loads(out.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    props = doc["features"][0]["properties"]
    assert props["id"] == "ctr" and props["width_m"] == 400.0
    back = read_aoi_file(out)
    assert back.crs.to_epsg() == 4326
    expected_km2 = (6000 * 400 + math.pi * 200**2) / 1e6
    assert_allclose(area_km2(back.geometry.iloc[0]), expected_km2, rtol=0.01)

    before = out.read_bytes()
    refused = run([*args, "--out", str(out)])
    assert refused.exit_code == 2
    assert_one_line_error(refused, "exists", "--overwrite")
    assert out.read_bytes() == before
    replaced = run([*args, "--width-m", "200", "--out", str(out), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(out.read_text())["features"][0]["properties"]["width_m"] == 200.0
    assert sorted(p.name for p in out.parent.iterdir()) == ["corridors.geojson"]


def test_corridors_rejects_bad_width(synthetic_inputs):
    boundary, _ = synthetic_inputs
    result = run(["corridors", "--boundary", str(boundary), "--width-m", "0"])
    assert result.exit_code == 2
    assert "--width-m" in result.output


def test_corridors_with_no_crossing_is_one_line_error(synthetic_inputs):
    boundary, _ = synthetic_inputs  # the synthetic line is far from every catalogue area
    result = run(["corridors", "--boundary", str(boundary), "--width-m", "500"])
    assert_one_line_error(result, "crosses none")


@pytest.mark.realdata
@pytest.mark.parametrize("name", [NE_BOUNDARY, NE_WORLD])
def test_corridors_on_natural_earth(shared_data, tmp_path, name):
    # both the China-DPRK line and the whole world-wide file it was cut from
    boundary = shared_data / name
    if not boundary.is_file():
        pytest.skip(f"../shared/data absent: {boundary} missing")
    out = tmp_path / "c.geojson"
    result = run(["corridors", "--boundary", str(boundary), "--width-m", "1000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.output.splitlines()[1:-1]}
    for fid in ("hoeryong", "musan", "namyang", "hyesan", "manpo", "sinuiju"):
        assert 0 < float(rows[fid][-2]) < 36.0
    assert len(json.loads(out.read_text())["features"]) == 6


def test_aoi_is_registered_on_the_main_group():
    from borderwatch.cli import main

    result = CliRunner().invoke(main, ["aoi", "show", "tumen"])
    assert result.exit_code == 0, result.output
    assert "utm_crs: EPSG:32652" in result.output
