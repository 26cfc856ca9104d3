from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from numpy.testing import assert_allclose, assert_array_equal
from shapely.geometry import box

from borderwatch.errors import InputError, NoOverlapError, RasterReadError
from borderwatch.io import Grid, choose_grid, load_pair, open_date, read_scene

UTM = "EPSG:32652"
ORIGIN = Affine(1.0, 0, 500000.0, 0, -1.0, 4710000.0)


def coord_image(rows: int, cols: int) -> np.ndarray:
    """Each pixel encodes its own (row, col): value = row * 1000 + col."""
    r, c = np.mgrid[0:rows, 0:cols]
    return (r * 1000 + c).astype(np.float32)


def test_same_grid_read_is_exact(make_raster):
    img = coord_image(40, 50)
    path = make_raster("a.tif", np.stack([img, img + 1]), transform=ORIGIN)
    src = open_date(path)
    grid = Grid(src_crs := rasterio.crs.CRS.from_string(UTM), ORIGIN, (40, 50))
    assert src.band_names == ("band1", "band2")
    scene = read_scene(src, grid)
    assert scene.valid.all()
    assert_array_equal(scene.data[0], img)
    assert scene.grid.crs == src_crs


def test_subwindow_lands_where_its_coordinates_say(make_raster):
    img = coord_image(100, 100)
    path = make_raster("a.tif", img, transform=ORIGIN)
    # A grid 10 px right and 20 px down of the file origin, 30 x 25 px.
    sub = Grid(rasterio.crs.CRS.from_string(UTM), ORIGIN @ Affine.translation(10, 20), (30, 25))
    scene = read_scene(path, sub)
    assert_array_equal(scene.data[0], img[20:50, 10:35])


def test_reads_only_the_needed_window(make_raster, monkeypatch):
    img = coord_image(300, 300)
    path = make_raster("big.tif", img, transform=ORIGIN)
    seen = []
    orig = rasterio.io.DatasetReader.read

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("window"))
        return orig(self, *args, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetReader, "read", spy)
    sub = Grid(rasterio.crs.CRS.from_string(UTM), ORIGIN @ Affine.translation(100, 100), (20, 20))
    read_scene(path, sub)
    assert seen and all(w is not None for w in seen)
    assert all(w.width <= 30 and w.height <= 30 for w in seen)


def test_upsampled_band_and_mixed_resolutions(make_raster):
    fine = np.full((20, 20), 100, np.uint16)
    coarse = np.full((10, 10), 7, np.uint16)
    p1 = make_raster("x_B02.tif", fine, transform=ORIGIN)
    p2 = make_raster("x_B11.tif", coarse, transform=Affine(2.0, 0, 500000.0, 0, -2.0, 4710000.0))
    src = open_date([p1, p2])
    assert src.band_names == ("B02", "B11")
    assert src.min_res_m == pytest.approx(1.0)
    grid = Grid(rasterio.crs.CRS.from_string(UTM), ORIGIN, (20, 20))
    scene = read_scene(src, grid)
    assert scene.data.shape == (2, 20, 20)
    assert_allclose(scene.data[1][scene.valid], 7)


def test_nodata_is_carried_as_invalid(make_raster):
    img = np.full((10, 10), 50, np.uint16)
    img[2:4, 2:4] = 0
    path = make_raster("n.tif", img, nodata=0)
    grid = Grid(rasterio.crs.CRS.from_string(UTM), ORIGIN, (10, 10))
    scene = read_scene(path, grid)
    assert not scene.valid[2:4, 2:4].any()
    assert scene.valid.sum() == 96
    assert np.isnan(scene.data[0, 2, 2])


def test_reprojection_from_geographic(make_raster):
    # A lon/lat raster around Helong read onto a UTM 52N grid keeps its values.
    tr = Affine(1e-4, 0, 129.0, 0, -1e-4, 42.55)
    path = make_raster("geo.tif", np.full((100, 100), 42, np.uint16), crs="EPSG:4326", transform=tr)
    src = open_date(path)
    grid = choose_grid([src, src], aoi=box(129.002, 42.542, 129.006, 42.546))
    assert grid.crs.to_epsg() == 32652
    assert grid.res[0] == pytest.approx(src.min_res_m)
    scene = read_scene(src, grid)
    assert scene.valid.all()
    assert_allclose(scene.data[0], 42)


def test_date_from_tags_and_names(make_raster):
    p = make_raster("s.tif", np.ones((3, 3), np.uint16), tags={"ACQUISITION_DATE": "2021-09-02"})
    assert open_date(p).date == "2021-09-02"
    q = make_raster("T52TFN_20190614T021609_B02.tif", np.ones((3, 3), np.uint16))
    assert open_date(q).date == "2019-06-14"


def test_errors_name_the_file(make_raster, tmp_path: Path):
    with pytest.raises(RasterReadError, match="missing.tif: no such file"):
        open_date(tmp_path / "missing.tif")
    junk = tmp_path / "junk.tif"
    junk.write_text("not a raster")
    with pytest.raises(RasterReadError, match="junk.tif"):
        open_date(junk)
    nocrs = make_raster("nocrs.tif", np.ones((3, 3), np.uint16), crs=None)
    with pytest.raises(InputError, match=r"nocrs.tif: not georeferenced \(no CRS\)"):
        open_date(nocrs)


def test_band_count_mismatch_and_no_overlap(make_raster):
    a = make_raster("a.tif", np.ones((2, 5, 5), np.uint16))
    b = make_raster("b.tif", np.ones((3, 5, 5), np.uint16))
    with pytest.raises(InputError, match="b.tif: after date has 3 bands"):
        load_pair(a, b)
    far = make_raster(
        "far.tif", np.ones((2, 5, 5), np.uint16), transform=Affine(1, 0, 600000.0, 0, -1, 4710000.0)
    )
    with pytest.raises(NoOverlapError, match="far.tif does not overlap"):
        load_pair(a, far)
    with pytest.raises(NoOverlapError, match="area of interest"):
        load_pair(a, a, aoi=box(0, 0, 1, 1))


def test_truncated_geotiff_is_a_read_error(make_raster, tmp_path: Path):
    rng = np.random.default_rng(0)
    good = make_raster("t.tif", rng.integers(0, 4000, (4, 200, 200), dtype=np.uint16))
    data = good.read_bytes()
    bad = tmp_path / "trunc.tif"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(RasterReadError, match="trunc.tif"):
        load_pair(bad, good)


@pytest.mark.slow
def test_oscd_city_onto_one_grid(shared_data: Path):
    city = shared_data / "oscd" / "Onera Satellite Change Detection dataset - Images" / "hongkong"
    b, a = open_date(city / "imgs_1"), open_date(city / "imgs_2")
    assert len(b.band_names) == 13 and b.band_names == a.band_names
    assert (b.date, a.date) == ("2016-09-27", "2018-03-23")
    # Default grid: UTM 50N at the finest (10 m) resolution, 13 bands from 10/20/60 m files.
    sb, sa = load_pair(b, a)
    assert sb.grid.crs.to_epsg() == 32650 and sb.grid == sa.grid
    assert 9.0 < sb.grid.res[0] < 10.5
    assert sb.data.shape[0] == 13
    both = sb.valid & sa.valid
    assert both.mean() > 0.9
    # Native before grid: the label grid (540 x 695); the 2 px smaller after date
    # covers the same extent, so it is resampled onto it and stays valid.
    nb, na = load_pair(b, a, match_before=True)
    assert nb.grid.shape == (695, 540)
    assert (nb.valid & na.valid).all()
    assert np.isfinite(na.data).all()
