"""Tests for borderwatch.aoi: catalogue, user files, metric polygons, corridors."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
import shapely
from numpy.testing import assert_allclose
from pyproj import Transformer
from shapely.geometry import LineString, Point, box

from borderwatch.aoi import (
    AOI,
    aoi_polygon,
    aoi_polygon_lonlat,
    area_km2,
    catalogue_dir,
    corridors,
    get_aoi,
    load_catalogue,
    read_aoi_file,
    utm_crs,
)
from borderwatch.errors import AOIError

# The six centres on NKDB's "6 Main Routes of Forced Repatriation" (data as of
# 10 Nov 2022), at the best public coordinate: (lat, lon, location_confidence).
FACILITIES = {
    "dandong": (40.1164, 124.3906, "crossing"),
    "tonghua": (41.7283, 125.9397, "town"),
    "changbai": (41.4069, 128.1750, "crossing"),
    "helong": (42.5403, 129.0039, "town"),
    "longjing": (42.767, 129.433, "town"),
    "tumen": (42.9544, 129.8508, "crossing"),
}
NE_BOUNDARY = "natural_earth/derived_chn_prk_boundary_from_ne_10m.geojson"
NE_WORLD = "natural_earth/ne_10m_admin_0_boundary_lines_land.geojson"
TO_LONLAT52 = Transformer.from_crs(32652, 4326, always_xy=True)


def utm52_to_lonlat(geom: shapely.Geometry) -> shapely.Geometry:
    return shapely.transform(geom, lambda x, y: TO_LONLAT52.transform(x, y), interleaved=False)


def write_fc(path: Path, features: list[dict]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def point_feature(lon: float, lat: float, **props) -> dict:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
    }


@pytest.fixture
def ne_boundary(shared_data: Path) -> gpd.GeoDataFrame:
    path = shared_data / NE_BOUNDARY
    if not path.is_file():
        pytest.skip(f"../shared/data absent: {path} missing")
    return read_aoi_file(path)


# --- catalogue -----------------------------------------------------------------------


def test_catalogue_has_the_six_facilities_at_known_coordinates():
    cat = load_catalogue()
    assert cat.crs.to_epsg() == 4326
    fac = cat[cat["kind"] == "facility"].set_index("id")
    assert sorted(fac.index) == sorted(FACILITIES)
    for fid, (lat, lon, conf) in FACILITIES.items():
        geom = fac.loc[fid, "geometry"]
        assert geom.geom_type == "Point"
        assert_allclose([geom.x, geom.y], [lon, lat], atol=1e-9)
        assert fac.loc[fid, "location_confidence"] == conf
        expected_radius = 3000 if conf == "town" else 2000
        assert fac.loc[fid, "radius_m"] == expected_radius


def test_catalogue_fence_study_areas_are_points_with_radius_and_sources():
    cat = load_catalogue()
    areas = cat[cat["kind"] == "fence_study_area"]
    assert {"hoeryong", "musan", "namyang", "hyesan", "manpo", "sinuiju"} <= set(areas["id"])
    assert set(cat["kind"]) == {"facility", "fence_study_area"}
    assert (areas.geometry.geom_type == "Point").all()
    assert (areas["radius_m"] > 0).all()
    assert all(len(s) >= 1 for s in areas["sources"])
    assert not cat["id"].duplicated().any()


def test_facility_notes_record_reported_construction():
    helong = get_aoi("helong")
    tumen = get_aoi("tumen")
    assert "2021" in helong.properties["notes"] and "watchtower" in helong.properties["notes"]
    assert "2012" in tumen.properties["notes"] and "arched-roof" in tumen.properties["notes"]
    assert "2016" in tumen.properties["notes"]
    for fid in FACILITIES:
        notes = get_aoi(fid).properties["notes"]
        assert "no public source gives facility-exact coordinates" in notes


@pytest.mark.parametrize("fname", ["psbdc_facilities.geojson", "border_fence_lines.geojson"])
def test_catalogue_files_are_rfc7946(fname):
    path = catalogue_dir() / fname
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text)
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    for feat in doc["features"]:
        lon, lat = feat["geometry"]["coordinates"]
        assert 124 < lon < 131 and 40 < lat < 44  # China-DPRK border region, lon first
        props = feat["properties"]
        assert props["location_confidence"] in {"facility", "crossing", "town"}
        assert isinstance(props["sources"], list) and props["sources"]
        assert props["notes"]
    decimals = [
        len(m)
        for m in re.findall(
            r"-?\d+\.(\d+)", json.dumps([f["geometry"]["coordinates"] for f in doc["features"]])
        )
    ]
    assert max(decimals) <= 7


def test_catalogue_dir_is_the_repository_folder_in_a_checkout():
    folder = catalogue_dir()
    assert (folder / "psbdc_facilities.geojson").is_file()
    assert (folder / "border_fence_lines.geojson").is_file()
    assert (folder / "README.md").is_file()


# --- lookup --------------------------------------------------------------------------


def test_get_aoi_by_id_and_by_case_insensitive_name():
    a = get_aoi("helong")
    assert isinstance(a, AOI)
    assert (a.id, a.kind) == ("helong", "facility")
    assert a.source.endswith("psbdc_facilities.geojson")
    assert_allclose(a.centroid_lonlat, (129.0039, 42.5403))
    assert get_aoi(a.name.upper()).id == "helong"
    assert get_aoi("HELONG").id == "helong"
    with pytest.raises(TypeError):
        a.properties["radius_m"] = 1  # read-only mapping


def test_unknown_id_lists_valid_ids():
    with pytest.raises(AOIError) as err:
        get_aoi("pyongyang")
    msg = str(err.value)
    assert "pyongyang" in msg
    for fid in [*FACILITIES, "hoeryong", "sinuiju"]:
        assert fid in msg


def test_get_aoi_with_explicit_catalogue_frame():
    cat = load_catalogue()
    sub = cat[cat["id"].isin(["tumen"])]
    assert get_aoi("tumen", catalogue=sub).id == "tumen"
    with pytest.raises(AOIError, match="valid ids: tumen"):
        get_aoi("helong", catalogue=sub)


# --- user files ----------------------------------------------------------------------


def test_geojson_without_ids_gets_feature_ids(tmp_path):
    path = write_fc(
        tmp_path / "two.geojson",
        [point_feature(129.0, 42.5, radius_m=500), point_feature(129.1, 42.6, radius_m=700)],
    )
    gdf = read_aoi_file(path)
    assert list(gdf["id"]) == ["feature-0", "feature-1"]
    assert list(gdf["name"]) == ["feature-0", "feature-1"]
    assert gdf.crs.to_epsg() == 4326
    assert get_aoi(f"{path}#feature-1").properties["radius_m"] == 700
    with pytest.raises(AOIError, match=r"2 features.*feature-0, feature-1"):
        get_aoi(path)
    with pytest.raises(AOIError, match="no feature 'x'.*feature-0"):
        get_aoi(f"{path}#x")


def test_single_feature_file_by_path_and_pathlike(tmp_path):
    path = write_fc(tmp_path / "one.geojson", [point_feature(129.0, 42.5, id="site", name="Site")])
    for ref in (path, str(path)):
        a = get_aoi(ref)
        assert (a.id, a.name, a.kind) == ("site", "Site", "user")
        assert a.source == str(path)


def test_swapped_coordinates_are_rejected(tmp_path):
    # Helong written as (lat, lon): x = 42.54 is a plausible longitude, y = 129 no latitude.
    path = write_fc(tmp_path / "swapped.geojson", [point_feature(42.5403, 129.0039, id="helong")])
    expected = r"coordinates look swapped \(lat, lon instead of lon, lat\)"
    with pytest.raises(AOIError, match=expected) as err:
        read_aoi_file(path)
    assert str(path) in str(err.value)


def test_out_of_range_coordinates_are_rejected(tmp_path):
    path = write_fc(tmp_path / "bad.geojson", [point_feature(500.0, 42.0)])
    with pytest.raises(AOIError, match="outside longitude"):
        read_aoi_file(path)


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.geojson"
    path.write_text('{"type": "FeatureCollection", "features": [')
    with pytest.raises(AOIError, match="broken.geojson"):
        read_aoi_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(AOIError, match="not found.*nothere.geojson"):
        read_aoi_file(tmp_path / "nothere.geojson")


def test_empty_collection(tmp_path):
    path = write_fc(tmp_path / "empty.geojson", [])
    with pytest.raises(AOIError, match="no features"):
        read_aoi_file(path)


def test_invalid_geometry_names_the_feature(tmp_path):
    bowtie = {
        "type": "Feature",
        "properties": {"id": "bowtie"},
        "geometry": {
            "type": "Polygon",
            "coordinates": [
                [[129.0, 42.0], [129.1, 42.1], [129.1, 42.0], [129.0, 42.1], [129.0, 42.0]]
            ],
        },
    }
    path = write_fc(tmp_path / "bowtie.geojson", [point_feature(129.0, 42.0), bowtie])
    with pytest.raises(AOIError, match=r"feature 1 \(id 'bowtie'\) has an invalid geometry"):
        read_aoi_file(path)


def test_null_geometry_names_the_feature(tmp_path):
    feat = {"type": "Feature", "properties": {"id": "nothing"}, "geometry": None}
    path = write_fc(tmp_path / "null.geojson", [feat])
    with pytest.raises(AOIError, match="feature 0 .*'nothing'.*empty geometry"):
        read_aoi_file(path)


def test_duplicate_ids_are_rejected(tmp_path):
    path = write_fc(
        tmp_path / "dupe.geojson",
        [point_feature(129.0, 42.0, id="a"), point_feature(129.1, 42.1, id="a")],
    )
    with pytest.raises(AOIError, match="duplicate ids"):
        read_aoi_file(path)


@pytest.mark.parametrize("suffix,driver", [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile")])
def test_gpkg_and_shapefile_in_utm_are_reprojected(tmp_path, suffix, driver):
    # A 1 km x 2 km box in UTM 52N; after the round trip it must still be 2 km2.
    rect = box(500000.0, 4700000.0, 501000.0, 4702000.0)
    gdf = gpd.GeoDataFrame({"id": ["rect"], "name": ["Rectangle"]}, geometry=[rect], crs=32652)
    path = tmp_path / f"rect{suffix}"
    gdf.to_file(path, driver=driver)
    out = read_aoi_file(path)
    assert out.crs.to_epsg() == 4326
    lon, lat = TO_LONLAT52.transform(500000.0, 4700000.0)
    assert_allclose(out.total_bounds[:2], [lon, lat], atol=1e-7)
    a = get_aoi(path)
    poly, crs = aoi_polygon(a)
    assert crs.to_epsg() == 32652
    assert_allclose(poly.area, 2e6, rtol=1e-6)
    assert_allclose(area_km2(a.geometry), 2.0, rtol=1e-6)


def test_shapefile_without_crs_is_rejected(tmp_path):
    gdf = gpd.GeoDataFrame({"id": ["p"]}, geometry=[Point(500000.0, 4700000.0)], crs=32652)
    path = tmp_path / "nocrs.shp"
    gdf.to_file(path)
    path.with_suffix(".prj").unlink()  # a shapefile shipped without its .prj
    with pytest.raises(AOIError, match="nocrs.shp has no CRS"):
        read_aoi_file(path)


# --- UTM and metric polygons ---------------------------------------------------------


def test_utm_zones_of_known_places():
    assert utm_crs(129.0039, 42.5403).to_epsg() == 32652  # Helong
    assert utm_crs(124.3906, 40.1164).to_epsg() == 32651  # Dandong
    assert utm_crs(-43.2, -22.9).to_epsg() == 32723  # Rio de Janeiro, south
    assert utm_crs(180.0, 10.0).to_epsg() == 32660
    assert utm_crs(-180.0, 10.0).to_epsg() == 32601
    with pytest.raises(AOIError):
        utm_crs(129.0, 129.0)


@pytest.mark.parametrize("fid", list(FACILITIES))
def test_point_buffer_area_is_pi_r_squared(fid):
    a = get_aoi(fid)
    r = a.properties["radius_m"]
    poly, crs = aoi_polygon(a)
    assert crs.to_epsg() in (32651, 32652)
    assert_allclose(poly.area, math.pi * r**2, rtol=0.01)
    to_utm = Transformer.from_crs(4326, crs.to_epsg(), always_xy=True)
    centre = shapely.transform(a.geometry, lambda x, y: to_utm.transform(x, y), interleaved=False)
    assert_allclose([poly.centroid.x, poly.centroid.y], [centre.x, centre.y], atol=0.01)
    assert_allclose(area_km2(aoi_polygon_lonlat(a)), math.pi * r**2 / 1e6, rtol=0.01)


def test_radius_argument_overrides_property():
    poly, _ = aoi_polygon(get_aoi("helong"), radius_m=500.0)
    assert_allclose(poly.area, math.pi * 500.0**2, rtol=0.01)


def test_lonlat_polygon_is_centred_on_the_point():
    a = get_aoi("helong")
    ll = aoi_polygon_lonlat(a)
    assert ll.contains(a.geometry)
    assert_allclose([ll.centroid.x, ll.centroid.y], [129.0039, 42.5403], atol=1e-5)
    # 3 km is about 0.027 degrees of latitude.
    assert_allclose(ll.bounds[3] - 42.5403, 3000 / 111_000, rtol=0.02)


def test_point_without_radius_needs_one(tmp_path):
    path = write_fc(tmp_path / "p.geojson", [point_feature(129.0, 42.5, id="p")])
    a = get_aoi(path)
    with pytest.raises(AOIError, match="'p' is a point without a radius_m"):
        aoi_polygon(a)
    with pytest.raises(AOIError, match="positive"):
        aoi_polygon(a, radius_m=-5)
    poly, _ = aoi_polygon(a, radius_m=100.0)
    assert_allclose(poly.area, math.pi * 1e4, rtol=0.01)


def test_line_corridor_area(tmp_path):
    # A straight 10 km line in UTM 52N buffered to 200 m: 10 km x 200 m plus two half-discs.
    line_utm = LineString([(500000.0, 4700000.0), (510000.0, 4700000.0)])
    line = utm52_to_lonlat(line_utm)
    gpd.GeoDataFrame({"id": ["l"]}, geometry=[line], crs=4326).to_file(tmp_path / "l.geojson")
    a = get_aoi(tmp_path / "l.geojson")
    with pytest.raises(AOIError, match="width_m"):
        aoi_polygon(a)
    poly, crs = aoi_polygon(a, width_m=200.0)
    assert crs.to_epsg() == 32652
    assert_allclose(poly.area, 10_000 * 200 + math.pi * 100**2, rtol=0.001)


# --- corridors -----------------------------------------------------------------------


def _study_area(lon: float, lat: float, radius_m: float, fid: str = "s") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": [fid], "name": [fid.title()], "radius_m": [radius_m]},
        geometry=[Point(lon, lat)],
        crs=4326,
    )


@pytest.mark.parametrize("offset_m", [0.0, 1800.0])
def test_corridor_of_a_straight_line_through_a_circle(offset_m):
    # Study area 3 km radius; a straight east-west line offset_m north of the centre
    # crosses it over a chord of 2 * sqrt(r^2 - d^2).
    cx, cy = 520000.0, 4710000.0
    lon, lat = TO_LONLAT52.transform(cx, cy)
    boundary_utm = LineString([(cx - 20_000, cy + offset_m), (cx + 20_000, cy + offset_m)])
    boundary = gpd.GeoDataFrame(geometry=[utm52_to_lonlat(boundary_utm)], crs=4326)
    out = corridors(_study_area(lon, lat, 3000.0), boundary, width_m=400.0)
    assert out.crs.to_epsg() == 4326
    assert list(out.columns) == ["id", "name", "width_m", "border_km", "geometry"]
    chord = 2 * math.sqrt(3000.0**2 - offset_m**2)
    assert_allclose(out["border_km"].iloc[0], chord / 1000, rtol=0.002)
    assert out["width_m"].iloc[0] == 400.0
    assert_allclose(
        area_km2(out.geometry.iloc[0]), (chord * 400 + math.pi * 200**2) / 1e6, rtol=0.01
    )


def test_corridor_skips_areas_the_boundary_misses(caplog):
    cx, cy = 520000.0, 4710000.0
    boundary = gpd.GeoDataFrame(
        geometry=[utm52_to_lonlat(LineString([(cx - 5000, cy), (cx + 5000, cy)]))], crs=4326
    )
    near = _study_area(*TO_LONLAT52.transform(cx, cy), 1000.0, fid="near")
    far = _study_area(*TO_LONLAT52.transform(cx, cy + 50_000), 1000.0, fid="far")
    both = gpd.GeoDataFrame(pd.concat([near, far], ignore_index=True), crs=4326)
    with caplog.at_level(logging.WARNING, logger="borderwatch.aoi"):
        out = corridors(both, boundary, width_m=100.0)
    assert list(out["id"]) == ["near"]
    assert "'far'" in caplog.text
    with pytest.raises(AOIError, match="crosses none"):
        corridors(far, boundary, width_m=100.0)
    with pytest.raises(AOIError, match="width_m"):
        corridors(near, boundary, width_m=0.0)
    with pytest.raises(AOIError, match="no line"):
        corridors(near, gpd.GeoDataFrame(geometry=[Point(129, 42)], crs=4326), width_m=100.0)


@pytest.mark.realdata
def test_corridors_on_natural_earth_boundary(ne_boundary):
    # Natural Earth 1:10m China-DPRK boundary (public domain), see ../shared/data/README.txt.
    cat = load_catalogue()
    areas = cat[cat["kind"] == "fence_study_area"]
    width = 1000.0
    out = corridors(areas, ne_boundary, width_m=width).set_index("id")
    for fid in ("hoeryong", "musan", "namyang"):
        radius = float(areas.set_index("id").loc[fid, "radius_m"])
        km = out.loc[fid, "border_km"]
        assert 0 < km < 3 * 2 * radius / 1000
        area = area_km2(out.loc[fid, "geometry"])
        band_km2 = width * km / 1000  # a straight corridor of that length, without end caps
        assert 0.7 * band_km2 < area < 1.3 * band_km2 + math.pi * (width / 2000) ** 2
        circle = aoi_polygon_lonlat(get_aoi(fid, catalogue=cat))
        # the corridor lies within the circle grown by half the width (0.5 km ~ 0.007 deg)
        assert circle.buffer(0.01).contains(out.loc[fid, "geometry"])


@pytest.mark.realdata
def test_inland_facilities_are_not_on_the_boundary(ne_boundary):
    # Tonghua, Helong and Longjing city centres lie tens of km from the border.
    fac = load_catalogue()
    fac = fac[fac["id"].isin(["tonghua", "helong", "longjing"])]
    with pytest.raises(AOIError, match="crosses none"):
        corridors(fac, ne_boundary, width_m=500.0)


def test_corridors_on_a_world_spanning_line_set():
    # A parallel through the study area's centre running round the whole globe, a
    # meridian on the far side and a ring near the antimeridian: their vertices
    # project to inf or nonsense in UTM 52N, so the lines must be cut in lon/lat first.
    # Known answer: the chord through the centre of a 3 km circle is 6 km long.
    cx, cy = 520000.0, 4710000.0
    lon, lat = TO_LONLAT52.transform(cx, cy)
    world = [
        LineString([(x / 2, lat) for x in range(-359, 360)]),
        LineString([(-70.0, y) for y in range(-80, 81)]),
        LineString([(179.0, -10.0), (-179.0, -10.0), (-179.0, 10.0), (179.0, 10.0)]),
    ]
    boundary = gpd.GeoDataFrame(geometry=world, crs=4326)
    out = corridors(_study_area(lon, lat, 3000.0), boundary, width_m=200.0)
    assert_allclose(out["border_km"].iloc[0], 6.0, rtol=0.003)
    near = LineString([(x / 2, lat) for x in range(int(2 * lon) - 2, int(2 * lon) + 4)])
    local = gpd.GeoDataFrame(geometry=[near], crs=4326)  # the same vertices near the area
    ref = corridors(_study_area(lon, lat, 3000.0), local, width_m=200.0)
    assert_allclose(out["border_km"].iloc[0], ref["border_km"].iloc[0], rtol=1e-6)
    assert out.geometry.iloc[0].symmetric_difference(ref.geometry.iloc[0]).area < 1e-10


@pytest.mark.realdata
def test_corridors_on_the_whole_natural_earth_file(shared_data, ne_boundary):
    # The world-wide 1:10m land boundary file (462 lines) gives the corridors of the
    # China-DPRK line cut from it: same study areas, same km within 1 %.
    path = shared_data / NE_WORLD
    if not path.is_file():
        pytest.skip(f"../shared/data absent: {path} missing")
    cat = load_catalogue()
    areas = cat[cat["kind"] == "fence_study_area"]
    world = corridors(areas, read_aoi_file(path), width_m=1000.0).set_index("id")
    cut = corridors(areas, ne_boundary, width_m=1000.0).set_index("id")
    assert sorted(world.index) == sorted(cut.index) == sorted(areas["id"])
    assert_allclose(world.loc[cut.index, "border_km"], cut["border_km"], rtol=0.01)
    for fid in cut.index:
        assert_allclose(
            area_km2(world.loc[fid, "geometry"]), area_km2(cut.loc[fid, "geometry"]), rtol=0.01
        )


def test_polygon_aoi_is_only_reprojected(tmp_path):
    sq = utm52_to_lonlat(box(500000.0, 4700000.0, 503000.0, 4703000.0))
    gpd.GeoDataFrame({"id": ["sq"]}, geometry=[sq], crs=4326).to_file(tmp_path / "sq.gpkg")
    a = get_aoi(os.fspath(tmp_path / "sq.gpkg"))
    poly, crs = aoi_polygon(a, radius_m=1.0, width_m=1.0)
    assert crs.to_epsg() == 32652
    assert_allclose(poly.area, 9e6, rtol=1e-6)
    assert_allclose(poly.bounds[:2], [500000.0, 4700000.0], atol=1e-3)
