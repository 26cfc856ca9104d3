"""Tests for borderwatch.synthetic and the committed sample tiles it produced."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from geopandas.testing import assert_geodataframe_equal
from numpy.testing import assert_allclose, assert_array_equal
from pyproj import Transformer
from rasterio.features import rasterize
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from borderwatch.errors import InputError, OutputExistsError
from borderwatch.synthetic import BAND_NAMES, DATES, SyntheticPair, make_pair, write_pair

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "data" / "sample_tiles"
LON, LAT = 129.0039, 42.5403
CLEAN = {"illumination": False, "season": False, "shift_px": (0.0, 0.0), "noise_sigma": 0.0}


@pytest.fixture(scope="module")
def pair() -> SyntheticPair:
    return make_pair()


def footprint_mask(truth: gpd.GeoDataFrame, p: SyntheticPair) -> np.ndarray:
    return rasterize(
        ((g, 1) for g in truth.geometry),
        out_shape=p.before.shape[1:],
        transform=p.transform,
        fill=0,
        dtype="uint8",
    ).astype(bool)


def read_tif(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


# --------------------------------------------------------------------- determinism


@pytest.mark.slow
def test_same_seed_gives_identical_arrays() -> None:
    a, b = make_pair(seed=3), make_pair(seed=3)
    assert_array_equal(a.before, b.before)
    assert_array_equal(a.after, b.after)
    assert_geodataframe_equal(a.truth, b.truth)


def test_different_seed_gives_different_arrays(pair: SyntheticPair) -> None:
    other = make_pair(seed=1)
    assert not np.array_equal(pair.before, other.before)
    assert not np.array_equal(pair.after, other.after)


def test_no_global_rng_use() -> None:
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    make_pair(seed=5)
    assert_array_equal(np.random.random(3), expected)


# ------------------------------------------------------------ shapes, dtype, CRS


def test_arrays_shape_dtype_and_nodata(pair: SyntheticPair) -> None:
    for arr in (pair.before, pair.after):
        assert arr.shape == (4, 512, 512)
        assert arr.dtype == np.uint16
        assert arr.min() >= 1  # 0 is nodata
        assert not arr.flags.writeable
        med = np.median(arr, axis=(1, 2))
        assert np.all((med > 200) & (med < 3000))
    assert pair.band_names == BAND_NAMES == ("blue", "green", "red", "nir")
    assert pair.dates == DATES == ("2019-06-14", "2021-09-02")
    assert pair.nodata == 0


def test_georeferencing(pair: SyntheticPair) -> None:
    t = pair.transform
    assert pair.crs.to_epsg() == 32652
    assert (t.a, t.b, t.d, t.e) == (1.0, 0.0, 0.0, -1.0)
    assert t.c == round(t.c) and t.f == round(t.f)
    cx, cy = t * (256, 256)
    lon, lat = Transformer.from_crs(32652, 4326, always_xy=True).transform(cx, cy)
    assert_allclose((lon, lat), (LON, LAT), atol=2e-5)  # within ~2 m


@pytest.mark.slow
def test_pixel_size_and_larger_scene() -> None:
    p = make_pair(size=1024, pixel_m=0.5, **CLEAN)
    assert p.before.shape == (4, 1024, 1024)
    assert (p.transform.a, p.transform.e) == (0.5, -0.5)
    ref = make_pair(**CLEAN)
    assert_allclose(p.truth.area_m2, ref.truth.area_m2)
    big = make_pair(size=700, **CLEAN)
    scene = shapely.box(*rasterio.transform.array_bounds(700, 700, big.transform))
    assert big.truth.within(scene).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"size": 256},
        {"size": 0},
        {"pixel_m": 0.0},
        {"shift_px": (5.0, 0.0)},
        {"noise_sigma": -1.0},
        {"centre_lonlat": (2.35, 48.85)},
    ],
)
def test_invalid_arguments_raise_input_error(kwargs: dict) -> None:
    with pytest.raises(InputError):
        make_pair(**kwargs)


# ------------------------------------------------------------------------ truth


def test_truth_schema_and_planted_objects(pair: SyntheticPair) -> None:
    truth = pair.truth
    assert truth.crs.to_epsg() == 32652
    assert list(truth.columns) == ["id", "class", "area_m2", "length_m", "geometry"]
    assert truth["id"].is_unique
    assert set(truth["class"]) == {"building", "fence_or_wall"}
    buildings = truth[truth["class"] == "building"]
    fences = truth[truth["class"] == "fence_or_wall"]
    assert len(buildings) >= 6  # >= 5 buildings plus the watchtower
    assert buildings.area_m2.min() == pytest.approx(16.0)  # 4 x 4 m watchtower
    assert buildings.area_m2.max() == pytest.approx(800.0)  # 40 x 20 m warehouse
    assert buildings.length_m.isna().all()
    assert len(fences) == 1
    fence = fences.geometry.iloc[0]
    assert len(fence.interiors) == 1  # a closed ring
    assert fences.length_m.iloc[0] == pytest.approx(280.0)  # 2 x (80 + 60) m centreline
    assert fences.area_m2.iloc[0] == pytest.approx(280.0 * 3.0)  # 3 m wide strip
    assert_allclose(truth.area_m2, truth.geometry.area, rtol=1e-6)
    assert truth.geometry.is_valid.all()


def test_truth_inside_scene(pair: SyntheticPair) -> None:
    scene = shapely.box(*rasterio.transform.array_bounds(512, 512, pair.transform))
    assert pair.truth.geometry.within(scene).all()


def test_truth_matches_painted_pixels(pair: SyntheticPair) -> None:
    mask = footprint_mask(pair.truth, pair)
    assert abs(mask.sum() - pair.truth.area_m2.sum()) < 0.05 * pair.truth.area_m2.sum()


@pytest.mark.slow
def test_new_structures_do_not_overlap_each_other_for_several_seeds() -> None:
    for seed in range(5):
        geoms = list(make_pair(seed=seed, **CLEAN).truth.geometry)
        for i, a in enumerate(geoms):
            for b in geoms[i + 1 :]:
                assert a.distance(b) > 3.0


# ------------------------------------------------------- changes and confounders


def test_changes_false_has_empty_truth() -> None:
    p = make_pair(changes=False)
    assert len(p.truth) == 0
    assert p.truth.crs.to_epsg() == 32652
    assert list(p.truth.columns) == ["id", "class", "area_m2", "length_m", "geometry"]


def test_difference_in_footprints_is_change_not_confounders(pair: SyntheticPair) -> None:
    unchanged = make_pair(changes=False)
    assert_array_equal(unchanged.before, pair.before)
    inside = footprint_mask(pair.truth, pair)

    def mean_abs_diff(p: SyntheticPair) -> float:
        d = p.after.astype(np.float64) - p.before.astype(np.float64)
        return float(np.abs(d[:, inside]).mean())

    with_change, without = mean_abs_diff(pair), mean_abs_diff(unchanged)
    assert with_change > 4 * without
    # confounders alone still change the image noticeably everywhere
    assert without > 50


def test_without_confounders_only_planted_area_changes() -> None:
    p = make_pair(**CLEAN)
    assert_array_equal(make_pair(changes=False, **CLEAN).after, p.before)
    # footprints, their shadows (up to ~7 m) and the blur halo
    near = ndimage.binary_dilation(footprint_mask(p.truth, p), iterations=10)
    differs = np.any(p.after != p.before, axis=0)
    assert differs.any()
    assert not differs[~near].any()


def test_each_new_structure_contrasts_in_two_bands() -> None:
    p = make_pair(**CLEAN)
    for geom in p.truth.geometry:
        core = footprint_mask(gpd.GeoDataFrame(geometry=[geom], crs=p.truth.crs), p)
        core = ndimage.binary_erosion(core) if core.sum() > 20 else core
        before = p.before[:, core].astype(np.float64).mean(axis=1)
        after = p.after[:, core].astype(np.float64).mean(axis=1)
        assert (np.abs(after - before) / before > 0.2).sum() >= 2, (before, after)


def test_sub_pixel_shift_is_recovered() -> None:
    p = make_pair(
        changes=False, illumination=False, season=False, noise_sigma=0.0, shift_px=(0.35, -0.25)
    )
    shift, _, _ = phase_cross_correlation(
        p.after[2].astype(np.float64), p.before[2].astype(np.float64), upsample_factor=100
    )
    assert_allclose(shift, (0.35, -0.25), atol=0.05)


def test_illumination_gain_within_range() -> None:
    p = make_pair(changes=False, season=False, shift_px=(0.0, 0.0), noise_sigma=0.0)
    b, a = p.before.astype(np.float64), p.after.astype(np.float64)
    slope = np.array([np.polyfit(b[i].ravel(), a[i].ravel(), 1)[0] for i in range(4)])
    assert np.all((slope > 0.84) & (slope < 1.16))
    assert np.abs(slope - 1).max() > 0.01


def test_season_lowers_vegetation_nir_smoothly() -> None:
    p = make_pair(changes=False, illumination=False, shift_px=(0.0, 0.0), noise_sigma=0.0)
    b, a = p.before.astype(np.float64), p.after.astype(np.float64)
    ndvi = (b[3] - b[2]) / (b[3] + b[2])
    veg = ndvi > 0.6
    assert (a[3][veg] / b[3][veg]).mean() < 0.95
    ratio = ndimage.uniform_filter(np.where(veg, a[3] / b[3], np.nan), 1)
    # no abrupt jump between neighbouring vegetated pixels (not a blocky region)
    jumps = np.abs(np.diff(ratio, axis=1))
    assert np.nanpercentile(jumps, 99.9) < 0.05


def test_sensor_noise_is_independent_per_date() -> None:
    p = make_pair(
        changes=False, illumination=False, season=False, shift_px=(0.0, 0.0), noise_sigma=20.0
    )
    d = p.after.astype(np.float64) - p.before.astype(np.float64)
    assert d.std() == pytest.approx(20.0 * math.sqrt(2), rel=0.05)


# ------------------------------------------------------------------------ writing


def test_write_pair_files_and_metadata(pair: SyntheticPair, tmp_path: Path) -> None:
    paths = write_pair(pair, tmp_path / "out", prefix="x_")
    assert paths == {
        "before": tmp_path / "out" / "x_before.tif",
        "after": tmp_path / "out" / "x_after.tif",
        "truth": tmp_path / "out" / "x_truth.geojson",
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in paths.values()
    )  # no temporary files left behind
    for key, date, arr in (("before", DATES[0], pair.before), ("after", DATES[1], pair.after)):
        with rasterio.open(paths[key]) as src:
            assert src.count == 4 and src.dtypes == ("uint16",) * 4
            assert src.nodata == 0
            assert src.crs.to_epsg() == 32652
            assert src.transform == pair.transform
            assert src.descriptions == BAND_NAMES
            assert src.block_shapes[0] == (256, 256)
            structure = src.tags(ns="IMAGE_STRUCTURE")
            assert structure["COMPRESSION"] == "DEFLATE" and structure["PREDICTOR"] == "2"
            tags = src.tags()
            assert tags["ACQUISITION_DATE"] == date
            assert tags["TIFFTAG_DATETIME"].startswith(date.replace("-", ":"))
            assert_array_equal(src.read(), arr)


def test_write_pair_refuses_to_overwrite(pair: SyntheticPair, tmp_path: Path) -> None:
    write_pair(pair, tmp_path)
    with pytest.raises(OutputExistsError):
        write_pair(pair, tmp_path)
    write_pair(pair, tmp_path, overwrite=True)


def test_truth_geojson_round_trip(pair: SyntheticPair, tmp_path: Path) -> None:
    path = write_pair(pair, tmp_path)["truth"]
    back = gpd.read_file(path)
    assert back.crs.to_epsg() == 4326
    assert list(back["id"]) == list(pair.truth["id"])
    assert list(back["class"]) == list(pair.truth["class"])
    assert_allclose(back["area_m2"], pair.truth["area_m2"])
    assert_allclose(back["length_m"], pair.truth["length_m"])  # NaN == NaN here
    expected = pair.truth.to_crs(4326).geometry
    for got, want in zip(back.geometry, expected, strict=True):
        assert got.normalize().equals_exact(want.normalize(), tolerance=1e-7)
    centre = back.geometry.union_all().centroid
    assert abs(centre.x - LON) < 0.003 and abs(centre.y - LAT) < 0.003
    text = path.read_text()
    assert '"crs"' not in text  # RFC 7946 has no crs member


# ---------------------------------------------------------- committed sample tiles


def load_generate_script():
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLE_DIR / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_committed_sample_tiles_match_generator(tmp_path: Path) -> None:
    assert load_generate_script().main(["--out", str(tmp_path)]) == 0
    for name in ("before.tif", "after.tif"):
        committed, fresh = SAMPLE_DIR / name, tmp_path / name
        assert_array_equal(
            read_tif(committed),
            read_tif(fresh),
            err_msg=f"{name} drifted; rerun python data/sample_tiles/generate.py",
        )
        with rasterio.open(committed) as a, rasterio.open(fresh) as b:
            assert a.transform == b.transform and a.crs == b.crs
            assert a.tags()["ACQUISITION_DATE"] == b.tags()["ACQUISITION_DATE"]
    committed_truth = gpd.read_file(SAMPLE_DIR / "truth.geojson")
    fresh_truth = gpd.read_file(tmp_path / "truth.geojson")
    assert_geodataframe_equal(committed_truth, fresh_truth)


def test_committed_sample_tiles_size_and_readme() -> None:
    files = [SAMPLE_DIR / n for n in ("before.tif", "after.tif", "truth.geojson")]
    assert sum(f.stat().st_size for f in files) < 5 * 1024 * 1024
    readme = (SAMPLE_DIR / "README.md").read_text().lower()
    assert "synthetic" in readme
