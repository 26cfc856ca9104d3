from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from geopandas.testing import assert_geodataframe_equal
from scipy import ndimage
from shapely.geometry import Polygon, shape

from borderwatch.errors import BorderwatchError, InputError, OutputExistsError
from borderwatch.io import Grid
from borderwatch.objects.polygons import label_objects, mask_to_objects, trace_labels
from borderwatch.products.export import COORD_DECIMALS, atomic_write, to_rfc7946, write_geojson

GRID = Grid(
    rasterio.crs.CRS.from_epsg(32652), Affine(2.0, 0, 500000.0, 0, -2.0, 4710000.0), (40, 40)
)


def test_mask_to_objects_areas_scores_and_geometry():
    mask = np.zeros(GRID.shape, bool)
    mask[2:7, 3:13] = True  # 5 x 10 px = 200 m2 at 2 m
    mask[20:30, 20:22] = True  # 10 x 2 px = 80 m2
    mask[20, 22] = True  # diagonal neighbour joins the second object (8-connected)
    mask[21, 23] = True
    score = np.zeros(GRID.shape)
    score[mask] = 5.0
    score[3, 4] = 9.0
    gdf = mask_to_objects(mask, score, GRID, attrs={"aoi_id": "helong"})
    assert len(gdf) == 2
    assert gdf.crs.to_epsg() == 32652
    first = gdf.iloc[0]
    assert first.area_m2 == pytest.approx(200.0)
    assert first.geometry.area == pytest.approx(200.0)
    assert first.max_score == 9.0
    assert first.mean_score == pytest.approx((49 * 5 + 9) / 50)
    assert first.geometry.bounds == (500006.0, 4709986.0, 500026.0, 4709996.0)
    assert gdf.iloc[1].n_pixels == 22
    assert set(gdf.aoi_id) == {"helong"}


@pytest.mark.parametrize("canvas_px", [1 << 22, 3000])
def test_trace_labels_equals_tracing_in_place(monkeypatch, canvas_px: int) -> None:
    # Objects with holes, diagonal joints and many sizes, on a fractional transform:
    # packed onto canvases (one, or many small ones), every polygon comes back with
    # the same vertices, bit for bit, as tracing the whole label image in place.
    monkeypatch.setattr("borderwatch.objects.polygons.TRACE_CANVAS_PX", canvas_px)
    rng = np.random.default_rng(7)
    mask = ndimage.binary_opening(rng.random((120, 160)) > 0.45)
    mask[60:80, 50:80] = True
    mask[65:75, 60:70] = False  # a hole
    labels, n = label_objects(mask)
    transform = Affine(0.3, 0, 612345.17, 0, -0.3, 4567890.33)
    want: dict[int, list[bytes]] = {}
    for g, v in rasterio.features.shapes(
        labels, mask=labels > 0, transform=transform, connectivity=8
    ):
        want.setdefault(int(v), []).append(shape(g).wkb)
    # Trace every other object wholly inside a window offset by (row0, col0) in the grid.
    r0, c0 = 10, 30
    full_boxes = ndimage.find_objects(labels)
    picked = [
        k
        for k, sl in enumerate(full_boxes, 1)
        if k % 2 == 1 or k == labels[70, 55]
        if sl[0].start >= r0 and sl[1].start >= c0
    ]
    assert len(picked) > 20 and labels[70, 55] in picked
    sub = labels[r0:, c0:]  # same label values, shifted
    sub_boxes = ndimage.find_objects(sub)
    boxes = [(k, sub_boxes[k - 1]) for k in picked]
    got: dict[int, list[bytes]] = {}
    traced = trace_labels(sub, boxes, transform, row0=r0, col0=c0)
    for k, g in traced:
        got.setdefault(k, []).append(g.wkb)
    assert got == {k: want[k] for k in picked}
    assert [k for k, _ in traced] == sorted(k for k, _ in traced)  # by label
    assert trace_labels(sub, [], transform) == []
    assert shapely.from_wkb(got[int(labels[70, 55])][0]).interiors  # the hole is kept


def test_empty_mask_gives_empty_frame_with_columns():
    gdf = mask_to_objects(np.zeros(GRID.shape, bool), np.zeros(GRID.shape), GRID)
    assert len(gdf) == 0 and "area_m2" in gdf.columns and gdf.crs.to_epsg() == 32652


def test_rfc7946_lonlat_ccw_7_decimals_and_roundtrip(tmp_path: Path):
    # A clockwise square in UTM 52N near Helong.
    cw = Polygon([(500000, 4710000), (500010, 4710000), (500010, 4709990), (500000, 4709990)])
    assert not cw.exterior.is_ccw
    gdf = gpd.GeoDataFrame({"area_m2": [100.0], "n": [np.int64(3)]}, geometry=[cw], crs=32652)
    fc = to_rfc7946(gdf, metadata={"version": "x"})
    ring = fc["features"][0]["geometry"]["coordinates"][0]
    assert Polygon(ring).exterior.is_ccw
    lon, lat = ring[0]
    assert 128 < lon < 130 and 42 < lat < 43
    assert all(len(repr(v).split(".")[1]) <= 7 for xy in ring for v in xy)
    assert fc["borderwatch"] == {"version": "x"}
    out = write_geojson(gdf, tmp_path / "d.geojson", metadata={"version": "x"})
    back = gpd.read_file(out)
    assert back.crs.to_epsg() == 4326
    expected = gdf.to_crs(4326)
    expected["n"] = expected["n"].astype(back["n"].dtype)
    back = back.set_geometry(back.geometry.normalize())
    expected = expected.set_geometry(expected.geometry.normalize())
    assert_geodataframe_equal(back, expected, check_less_precise=True, check_like=True)
    assert json.loads(out.read_text())["type"] == "FeatureCollection"


def test_no_overwrite_and_nothing_half_written(tmp_path: Path):
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Polygon([(0, 0), (1, 0), (1, 1)])], crs=4326)
    path = write_geojson(gdf, tmp_path / "x.geojson")
    before = path.read_bytes()
    with pytest.raises(OutputExistsError, match="x.geojson: output exists"):
        write_geojson(gdf, path)
    assert path.read_bytes() == before
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "y.geojson", overwrite=False) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.geojson"]
    write_geojson(gdf.assign(a=[2]), path, overwrite=True)
    assert json.loads(path.read_text())["features"][0]["properties"]["a"] == 2


def test_geojson_reads_back_as_the_frame_with_metadata(tmp_path: Path):
    # Polygons with a hole (given with the wrong winding), a multipolygon, a line and no
    # geometry; string ids, NaN and infinite numbers, integers, booleans, non-ASCII text.
    ring = [(500000, 4710000), (500010, 4710000), (500010, 4709990), (500000, 4709990)]
    hole = [(500002, 4709992), (500008, 4709992), (500008, 4709998), (500002, 4709998)]
    poly = Polygon(ring, holes=[hole])  # clockwise exterior, counter-clockwise hole
    multi = shapely.MultiPolygon([poly, shapely.affinity.translate(poly, 100.0, 0.0)])
    line = shapely.LineString([(500000, 4710000), (500033.3, 4710011.1)])
    gdf = gpd.GeoDataFrame(
        {
            "id": ["bw-a", "bw-b", "bw-c", "bw-d"],
            "score": [1.5, np.nan, np.inf, -2.25],
            "n": np.array([1, 2, 3, 2**40], dtype=np.int64),
            "ok": [True, False, True, False],
            "note": ["Grenzzaun ü", "", "새 건물", "x"],
        },
        geometry=[poly, multi, line, None],
        crs=32652,
    )
    meta = {"version": "x", "count": np.int64(4), "date": np.datetime64("2021-09-02")}
    out = write_geojson(gdf, tmp_path / "d.geojson", metadata=meta)
    doc = json.loads(out.read_text("utf-8"))
    assert list(doc) == ["type", "borderwatch", "features"]  # no name, crs or bbox
    assert doc["borderwatch"] == {"version": "x", "count": 4, "date": "2021-09-02"}
    assert doc == to_rfc7946(gdf, metadata=meta)
    feats = doc["features"]
    assert [set(f) for f in feats] == [{"type", "properties", "geometry"}] * 4
    assert [f["properties"]["id"] for f in feats] == ["bw-a", "bw-b", "bw-c", "bw-d"]
    assert [f["properties"]["score"] for f in feats] == [1.5, None, None, -2.25]
    assert feats[3]["properties"]["n"] == 2**40 and feats[3]["geometry"] is None
    assert [f["geometry"]["type"] for f in feats[:3]] == ["Polygon", "MultiPolygon", "LineString"]
    outer, inner = (Polygon(r).exterior for r in feats[0]["geometry"]["coordinates"])
    assert outer.is_ccw and not inner.is_ccw
    # Coordinates: pyproj's lon/lat rounded to 7 decimals.
    want = np.round(shapely.get_coordinates(gdf.geometry.iloc[:1].to_crs(4326)), COORD_DECIMALS)
    got = np.array([xy for r in feats[0]["geometry"]["coordinates"] for xy in r])
    assert sorted(map(tuple, got)) == sorted(map(tuple, want))
    # Read back with GDAL: the same frame in EPSG:4326.
    back = pyogrio.read_dataframe(out)
    assert back.crs.to_epsg() == 4326
    assert list(back.columns) == [*gdf.columns]
    expected = gdf.to_crs(4326)
    for name in ("id", "n", "ok", "note"):
        assert back[name].tolist() == expected[name].tolist(), name
    np.testing.assert_array_equal(back["score"], [1.5, np.nan, np.nan, -2.25])
    assert back.geometry.iloc[3] is None
    for g, e in zip(back.geometry.iloc[:3], expected.geometry.iloc[:3], strict=True):
        assert g.normalize().equals_exact(e.normalize(), tolerance=1e-7)


def test_geojson_without_crs(tmp_path: Path):
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Polygon([(0, 0), (1, 0), (1, 1)])])
    with pytest.raises(InputError, match="no CRS"):
        write_geojson(gdf, tmp_path / "x.geojson")
    assert not list(tmp_path.iterdir())
    empty = write_geojson(gdf.iloc[:0], tmp_path / "e.geojson", metadata={"a": 1})
    assert json.loads(empty.read_text()) == {
        "type": "FeatureCollection",
        "borderwatch": {"a": 1},
        "features": [],
    }


def test_geojson_writer_failure_leaves_nothing(tmp_path: Path, monkeypatch):
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Polygon([(0, 0), (1, 0), (1, 1)])], crs=4326)
    real = pyogrio.write_dataframe

    def half_then_fail(df, path, **kwargs):
        real(df, path, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(pyogrio, "write_dataframe", half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        write_geojson(gdf, tmp_path / "x.geojson")
    assert not list(tmp_path.iterdir())


def test_geojson_metadata_needs_gdal_3_9(tmp_path: Path, monkeypatch):
    gdf = gpd.GeoDataFrame({"a": [1]}, geometry=[Polygon([(0, 0), (1, 0), (1, 1)])], crs=4326)
    monkeypatch.setattr(pyogrio, "__gdal_version__", (3, 8, 5))
    with pytest.raises(BorderwatchError, match="GDAL .* needs >= 3.9.0"):
        write_geojson(gdf, tmp_path / "x.geojson", metadata={"a": 1})
    assert not list(tmp_path.iterdir())
    write_geojson(gdf, tmp_path / "x.geojson")  # without metadata any GDAL does
