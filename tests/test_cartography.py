"""Coordinates in every output, the overview map (whole AOI, graticule, credit) and chips."""

from __future__ import annotations

import json
import re

import mgrs
import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine
from PIL import Image
from pyproj import Transformer

from borderwatch.products.cartography import (
    SYNTHETIC_BANNER,
    draw_graticule,
    format_lonlat,
    graticule_step,
)
from borderwatch.products.coverage import aoi_geometry
from borderwatch.products.evidence import render_overview, scene_info

TO_LONLAT = Transformer.from_crs("EPSG:32652", "EPSG:4326", always_xy=True)
HATCH_GREYS = {(228, 228, 228), (170, 170, 170)}


def _centroids_lonlat(geoms) -> np.ndarray:
    """Centroids (lon, lat) of grid-CRS polygons, reprojected by pyproj here."""
    c = shapely.centroid(np.asarray(geoms, dtype=object))
    lon, lat = TO_LONLAT.transform(shapely.get_x(c), shapely.get_y(c))
    return np.column_stack([lon, lat])


def test_gpkg_and_geojson_carry_the_centroid_coordinates(analyst_outputs):
    det = pyogrio.read_dataframe(analyst_outputs.gpkg, layer="detections")
    assert det.crs.to_epsg() == 32652 and len(det) > 0
    want = _centroids_lonlat(det.geometry.values)
    np.testing.assert_allclose(det[["lon", "lat"]].to_numpy(), want, atol=1e-6)
    assert det["ref"].tolist() == list(range(1, len(det) + 1))
    # The MGRS reference decodes to the same point within its 1 m precision.
    decoded = np.array([mgrs.MGRS().toLatLon(m) for m in det["mgrs"]])
    np.testing.assert_allclose(decoded[:, ::-1], want, atol=3e-5)
    # GeoJSON: RFC 7946 lon/lat geometry; same properties as the GeoPackage.
    fc = json.loads(analyst_outputs.geojson.read_text("utf-8"))
    props = [f["properties"] for f in fc["features"]]
    assert [p["id"] for p in props] == det["id"].tolist()
    got = np.array([[p["lon"], p["lat"]] for p in props])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert [p["mgrs"] for p in props] == det["mgrs"].tolist()
    # The lon/lat polygons' own (near-planar) centroids are within a few cm of it.
    geo = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
    np.testing.assert_allclose(
        np.column_stack(
            [shapely.get_x(shapely.centroid(geo)), shapely.get_y(shapely.centroid(geo))]
        ),
        want,
        atol=1e-6,
    )


def test_report_data_and_chips_carry_the_coordinates(analyst_outputs):
    det = analyst_outputs.products.detections
    packet = analyst_outputs.products.evidence
    for chip, (_, row) in zip(packet.chips, det.iterrows(), strict=True):
        for png in (chip.before_png, chip.after_png):
            text = Image.open(packet.folder / png).text["Description"]
            assert format_lonlat(row["lat"], row["lon"]) in text
            digits = re.fullmatch(r"(\d+[A-Z])([A-Z]{2})(\d{5})(\d{5})", row["mgrs"]).groups()
            assert "MGRS " + " ".join(digits) in text
            assert text.startswith(SYNTHETIC_BANNER)


def test_overview_shows_the_whole_aoi_beyond_the_image(analyst_outputs):
    run = analyst_outputs.run
    det = analyst_outputs.products.detections
    info = {"before": scene_info(run.before), "after": scene_info(run.after)}
    assert info["after"]["synthetic"] is True
    rendered = render_overview(run, det, info=info)
    img = np.asarray(rendered.image)
    h, w, _ = img.shape
    main, detail = rendered.to_px  # the AOI is ~100 x the image's area: a detail panel
    aoi = aoi_geometry(run)
    # The whole AOI outline fits inside the image, and is far larger than the image grid.
    px = np.array([main * xy for xy in aoi.exterior.coords])
    assert px.min() >= 0 and (px[:, 0] < w).all() and (px[:, 1] < h).all()
    grid_w = run.grid.shape[1] * run.grid.res[0] * main.a
    assert np.ptp(px[:, 0]) > 5 * grid_w
    # AOI outline drawn in blue at its westernmost point.
    x, y = px[np.argmin(px[:, 0])].round().astype(int)
    patch = img[y - 2 : y + 3, x - 2 : x + 3].reshape(-1, 3)
    assert any(tuple(p) == (31, 120, 180) for p in patch)
    # Inside the AOI, 1.5 km east of the imagery: no image, hatched grey.
    c = aoi.centroid
    x, y = main * (c.x + 1500.0, c.y + 700.0)
    assert tuple(img[int(y), int(x)]) in HATCH_GREYS
    # Inside the imagery (detail panel centre): image colours, not hatch.
    gx, gy = run.grid.transform * (run.grid.shape[1] / 2, run.grid.shape[0] / 2)
    x, y = detail * (gx + 3.5, gy + 3.5)
    assert tuple(img[int(y), int(x)]) not in HATCH_GREYS
    texts = rendered.texts
    assert texts[0] == SYNTHETIC_BANNER
    assert (img[:20] == (200, 0, 0)).all(axis=-1).mean() > 0.6
    assert f"Imagery: {info['after']['credit']} (after image)" in " ".join(texts)
    lats = [float(t[:-2]) for t in texts if t.endswith("°N")]
    lons = [float(t[:-2]) for t in texts if t.endswith("°E")]
    assert len(lats) >= 2 and len(lons) >= 2
    lon0, lat0, lon1, lat1 = shapely.bounds(shapely.box(*aoi.bounds))
    a_lon0, a_lat0 = TO_LONLAT.transform(lon0, lat0)
    a_lon1, a_lat1 = TO_LONLAT.transform(lon1, lat1)
    assert all(a_lat0 - 0.01 < v < a_lat1 + 0.01 for v in lats)
    assert all(a_lon0 - 0.01 < v < a_lon1 + 0.01 for v in lons)
    assert "N" in texts and any(t.endswith(" km") for t in texts) and "8" in texts
    assert {"AOI", "inside the AOI, no valid imagery", "detail panel"} <= set(texts)


def test_graticule_lines_are_drawn_where_the_latitude_is():
    # A 200 x 200 px map of 1 m pixels in UTM 52N around 42.54 N, 129.00 E.
    x0, y0 = 500000.0, 4710000.0
    to_px = Affine(1, 0, -x0, 0, -1, y0)  # metres -> pixels, north up
    img = Image.new("RGB", (260, 230), (0, 0, 0))
    frame = (0.0, 0.0, 200.0, 200.0)
    labels = draw_graticule(img, to_px=to_px, crs="EPSG:32652", frame=frame)
    lat_labels = [t for t in labels if t.endswith("°N")]
    assert lat_labels, labels
    lat = float(lat_labels[0][:-2])
    to_utm = Transformer.from_crs("EPSG:4326", "EPSG:32652", always_xy=True)
    mx, my = to_utm.transform(129.0, lat)
    col, row = to_px * (mx, my)
    arr = np.asarray(img).astype(int)
    assert 0 <= row < 200
    assert arr[int(round(row)) - 1 : int(round(row)) + 2, int(col)].max() > 150  # line drawn
    assert arr[int(round(row)) + 12, int(col) + 7].max() == 0  # nothing between lines
    assert graticule_step(0.06) == 0.02 and graticule_step(0.007) == 0.002


def test_render_overview_without_aoi_has_one_panel(make_raster):
    from borderwatch.engine import detect

    rng = np.random.default_rng(5)
    data = rng.integers(100, 1000, (4, 64, 64)).astype(np.uint16)
    # The same pixels on both dates (allowed on purpose): coverage does not depend on change.
    run = detect(
        make_raster("b.tif", data, nodata=0),
        make_raster("a.tif", data, nodata=0),
        allow_reversed=True,
    )
    info = {"before": scene_info(run.before), "after": scene_info(run.after)}
    assert info["after"]["synthetic"] is False
    rendered = render_overview(run, run.objects, info=info)
    assert len(rendered.to_px) == 1
    assert SYNTHETIC_BANNER not in rendered.texts
    assert "Imaged area" in rendered.texts and "no valid imagery" in rendered.texts
    assert "AOI" not in rendered.texts


@pytest.mark.parametrize(
    ("lat", "lon", "text"),
    [(42.5, 129.0, "42.500000°N 129.000000°E"), (-1.25, -70.5, "1.250000°S 70.500000°W")],
)
def test_format_lonlat(lat, lon, text):
    assert format_lonlat(lat, lon) == text


def test_chip_prints_the_coordinate_lines_and_marks_the_point():
    from borderwatch.products.evidence import render_chip

    rgb = np.full((3, 40, 40), 90, np.uint8)
    notes = ["+ centroid 42.541025°N 129.005629°E", "MGRS 52T EN 00462 09848"]
    plain = render_chip(rgb, outline_px=[], pixel_m=1.0, title="A", source="s")
    chip = render_chip(
        rgb,
        outline_px=[],
        pixel_m=1.0,
        title="A",
        source="s",
        notes=notes,
        marker_px=(20.0, 10.0),
        banner=SYNTHETIC_BANNER,
    )
    assert chip.texts[0] == SYNTHETIC_BANNER and chip.texts[3:5] == tuple(notes)
    img = np.asarray(chip.image).astype(int)
    band = chip.image.height - plain.image.height - 32  # banner above, two lines below
    assert band > 20 and (img[:band] == (200, 0, 0)).all(axis=-1).mean() > 0.6
    # Each coordinate line is drawn (dark text on the white caption band).
    (to_px,) = chip.to_px
    bottom = int((to_px * (0, 40))[1])
    for i in (1, 2):
        rows = img[bottom + 4 + 16 * i : bottom + 16 + 16 * i]
        assert (rows.max(axis=-1) < 128).sum() > 30, i
    # The cross sits on the marked point: yellow centre, the grey image around it.
    x, y = (int(round(v)) for v in to_px * (20.0, 10.0))
    assert tuple(img[y, x]) == (255, 255, 0)
    assert tuple(img[y + 12, x + 12]) == (90, 90, 90)


def test_draw_overview_hatches_every_part_of_the_aoi_outside_the_image():
    from borderwatch.products.overview import draw_overview

    # A 10 x 10 px image of 1 m pixels at (500000, 4710000); the AOI is two 200 m squares,
    # the first around the image, the second 600 m east of it.
    transform = Affine(1, 0, 500000.0, 0, -1, 4710000.0)
    rgb = np.zeros((3, 10, 10), np.uint8)
    rgb[0] = 250  # a red image
    first = shapely.box(499900.0, 4709800.0, 500100.0, 4710100.0)
    second = shapely.box(500700.0, 4709800.0, 500900.0, 4710100.0)
    rendered = draw_overview(
        rgb,
        np.ones((10, 10), bool),
        transform,
        crs="EPSG:32652",
        aoi=shapely.MultiPolygon([first, second]),
        detections=[],
        title="t",
        credit="c",
    )
    img = np.asarray(rendered.image)
    (main, detail) = rendered.to_px
    for part in (first, second):
        x, y = main * (part.centroid.x + 37.0, part.centroid.y + 29.0)
        assert tuple(img[int(y), int(x)]) in HATCH_GREYS, part
    x, y = main * (500400.0, 4709950.0)  # between the two parts: outside the AOI
    assert tuple(img[int(y), int(x)]) == (244, 244, 244)
    x, y = detail * (500005.0, 4709995.0)  # the image itself
    assert tuple(img[int(y), int(x)]) == (250, 0, 0)
    assert "Imagery: c" in rendered.texts
