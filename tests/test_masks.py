"""Cloud masks (borderwatch.masks) and the Sentinel-2 baseline 04.00 offset (radiometry).

Every fixture is written by the test in the provider's file layout and naming, with
known answers: SCL classes, QA_PIXEL bit patterns, a user mask in another CRS and
resolution, L1C band files with a bright cloud patch, and S2 products either side of
baseline 04.00 holding the same reflectance.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.windows
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from borderwatch import masks
from borderwatch.engine.plan import pair_source
from borderwatch.engine.read import TileReader, read_pair
from borderwatch.errors import InputError, MissingDependencyError, RasterReadError
from borderwatch.io import Grid, choose_grid, open_date, read_scene
from borderwatch.masks import (
    MASK_CLEAR,
    MASK_CLOUD,
    MASK_SHADOW,
    MASK_SNOW,
    MaskSpec,
    find_mask,
    read_mask,
)
from borderwatch.radiometry import offset_record

X0, Y0 = 500000.0, 4710000.0  # UTM 52N, near Helong
UTM_EPSG = "EPSG:32652"
UTM = CRS.from_epsg(32652)
SAFE_L2A = "S2B_MSIL2A_20220301T023549_N0400_R089_T52TDK_20220301T060012.SAFE"
GRANULE = "GRANULE/L2A_T52TDK_A026000_20220301T023551/IMG_DATA"
HAVE_S2CLOUDLESS = importlib.util.find_spec("s2cloudless") is not None


@pytest.fixture
def write(make_raster: Callable[..., Path]) -> Callable[..., Path]:
    """Write ``data`` at pixel size ``res`` from ``origin`` (JP2 lossless by suffix)."""

    def _write(
        path: Path,
        data: np.ndarray,
        *,
        res: float,
        crs: str = UTM_EPSG,
        origin: tuple[float, float] = (X0, Y0),
        **kw: object,
    ) -> Path:
        transform = Affine(res, 0, origin[0], 0, -res, origin[1])
        return make_raster(str(path), np.asarray(data), crs=crs, transform=transform, **kw)

    return _write


def _grid(res: float, rows: int, cols: int) -> Grid:
    return Grid(UTM, Affine(res, 0, X0, 0, -res, Y0), (rows, cols))


def _up(a: np.ndarray, k: int) -> np.ndarray:
    return np.repeat(np.repeat(a, k, axis=0), k, axis=1)


# --------------------------------------------------------------------------- SCL
def _scl_product(write: Callable[..., Path], root: Path) -> tuple[Path, np.ndarray]:
    """An L2A SAFE granule: B04 at 10 m (R10m), SCL at 20 m (R20m); returns B04, SCL."""
    scl = np.full((20, 20), 4, np.uint8)  # vegetation
    scl[:, 5:10] = 9  # cloud high probability
    scl[:, 10:15] = 3  # cloud shadow
    scl[:, 15:] = 11  # snow
    scl[0, :] = 0  # no data
    scl[1, :] = 10  # thin cirrus
    scl[2, :] = 8  # cloud medium probability
    scl[3, :] = 1  # saturated or defective
    scl[4, :] = 7  # unclassified
    scl[5, :] = 2  # dark area pixels
    scl[6, :] = 6  # water
    img = root / SAFE_L2A / GRANULE
    write(img / "R20m" / "T52TDK_20220301T023551_SCL_20m.jp2", scl, res=20.0)
    b04 = np.full((40, 40), 1500, np.uint16)
    path = write(img / "R10m" / "T52TDK_20220301T023551_B04_10m.jp2", b04, res=10.0)
    return path, scl


def _scl_expected(scl: np.ndarray) -> np.ndarray:
    lut = {0: 1, 1: 1, 3: 2, 8: 1, 9: 1, 10: 1, 11: 3}
    return np.vectorize(lambda v: lut.get(int(v), 0))(scl).astype(np.uint8)


def test_scl_found_in_the_granules_r20m_folder_and_read_onto_10m(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    b04, scl = _scl_product(write, tmp_path)
    spec = find_mask([b04])
    assert spec.kind == "scl"
    assert spec.paths[0].endswith("R20m/T52TDK_20220301T023551_SCL_20m.jp2")
    assert "beside" in spec.detail
    got = read_mask(spec, _grid(10.0, 40, 40))
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, _up(_scl_expected(scl), 2))
    # Each class as documented: vegetation, dark area, water, unclassified are clear.
    assert got[20, 0] == MASK_CLEAR and got[20, 12] == MASK_CLOUD
    assert got[20, 22] == MASK_SHADOW and got[20, 32] == MASK_SNOW
    assert set(np.unique(got[8:14, :10])) == {MASK_CLEAR}  # classes 7, 2 and 6
    assert (got[0:8, :10] == MASK_CLOUD).all()  # 0 no data, 10 cirrus, 8 medium, 1 defective


def test_scl_window_is_the_slice_of_the_whole_and_outside_is_clear(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    b04, scl = _scl_product(write, tmp_path)
    spec = find_mask([b04])
    grid = _grid(10.0, 40, 40)
    whole = read_mask(spec, grid)
    win = rasterio.windows.Window(col_off=7, row_off=3, width=21, height=30)
    np.testing.assert_array_equal(read_mask(spec, grid, win), whole[3:33, 7:28])
    # A grid larger than the SCL file: outside it the mask says nothing (clear).
    big = Grid(UTM, Affine(10.0, 0, X0 - 100, 0, -10.0, Y0), (40, 60))
    got = read_mask(spec, big)
    assert (got[:, :10] == MASK_CLEAR).all() and (got[:, 50:] == MASK_CLEAR).all()
    np.testing.assert_array_equal(got[:, 10:50], whole)


def test_scl_band_described_in_a_multiband_file(write: Callable[..., Path], tmp_path: Path) -> None:
    data = np.zeros((2, 8, 8), np.uint16)
    data[0] = 1500
    data[1] = 4
    data[1, :4] = 9
    path = write(tmp_path / "stacked.tif", data, res=10.0, descriptions=("B04", "SCL"))
    spec = find_mask([path])
    assert spec.kind == "scl" and "described" in spec.detail
    got = read_mask(spec, _grid(10.0, 8, 8))
    assert (got[:4] == MASK_CLOUD).all() and (got[4:] == MASK_CLEAR).all()


# --------------------------------------------------------------------------- QA_PIXEL
def test_landsat_qa_pixel_bits(write: Callable[..., Path], tmp_path: Path) -> None:
    prefix = "LC08_L2SP_118032_20220301_20220308_02_T1"
    # Known Collection 2 values: 21824 clear land (bits 6, 8, 10, 12, 14), 22280 cloud
    # (bit 3 + high confidence), 23888 cloud shadow (bit 4), 30048 snow (bit 5), 1 fill,
    # 21826 dilated cloud (bit 1), 55052 cirrus (bit 2 + cloud bit 3), and a pixel with
    # shadow and snow (shadow wins) and one with cloud and snow (cloud wins).
    values = [21824, 22280, 23888, 30048, 1, 21826, 55052, (1 << 4) | (1 << 5), 8 | 32, 1 << 2]
    expected = [0, 1, 2, 3, 1, 1, 1, 2, 1, 1]
    qa = np.array([values] * 4, np.uint16)
    sr = np.full((4, len(values)), 9000, np.uint16)
    band = write(tmp_path / f"{prefix}_SR_B4.TIF", sr, res=30.0, nodata=0)
    write(tmp_path / f"{prefix}_QA_PIXEL.TIF", qa, res=30.0, nodata=1)
    # Another scene's QA in the same folder must not be taken.
    write(tmp_path / "LC09_L2SP_999999_20220401_20220402_02_T1_QA_PIXEL.TIF", qa * 0, res=30.0)
    spec = find_mask([band])
    assert spec.kind == "qa_pixel"
    assert Path(spec.paths[0]).name == f"{prefix}_QA_PIXEL.TIF"
    got = read_mask(spec, _grid(30.0, 4, len(values)))
    np.testing.assert_array_equal(got, np.array([expected] * 4, np.uint8))
    # On a 10 m grid each 30 m pixel becomes 3 x 3 (nearest).
    np.testing.assert_array_equal(read_mask(spec, _grid(10.0, 12, 3 * len(values))), _up(got, 3))


# --------------------------------------------------------------------------- user masks
def test_user_mask_in_another_crs_and_resolution(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    grid = _grid(10.0, 60, 60)
    to_ll = Transformer.from_crs(UTM, "EPSG:4326", always_xy=True)
    lon0, lat0 = to_ll.transform(X0 - 50, Y0 + 50)
    lon1, lat1 = to_ll.transform(X0 + 650, Y0 - 650)
    res = 4e-5  # about 3.4 m x 4.4 m
    rows, cols = int((lat0 - lat1) / res) + 1, int((lon1 - lon0) / res) + 1
    mask = np.zeros((rows, cols), np.uint8)
    mask[rows // 4 : rows // 2, cols // 5 : cols // 2] = 7  # any nonzero value is cloud
    mask[-10:, -10:] = 255  # declared nodata: the mask says nothing there
    path = write(
        tmp_path / "clouds_2021-05-03.tif",
        mask,
        res=res,
        crs="EPSG:4326",
        origin=(lon0, lat0),
        nodata=255,
    )
    spec = find_mask(["ignored_B04.tif"], user_mask=path)
    assert spec == MaskSpec("user", (str(path),), spec.detail)
    assert "nonzero = cloud" in spec.detail
    got = read_mask(spec, grid)
    # Expected: the mask pixel under each grid pixel's centre (nearest neighbour).
    r, c = np.mgrid[0:60, 0:60]
    lon, lat = to_ll.transform(X0 + (c + 0.5) * 10, Y0 - (r + 0.5) * 10)
    mr, mc = ((lat0 - lat) / res).astype(int), ((lon - lon0) / res).astype(int)
    value = mask[mr, mc]
    expected = np.where((value > 0) & (value != 255), MASK_CLOUD, MASK_CLEAR)
    assert (got != expected).sum() <= 3  # at most the odd pixel centre on an edge
    assert 200 < (got == MASK_CLOUD).sum() < 900
    assert got[-1, -1] == MASK_CLEAR  # nodata corner


def test_user_mask_with_codes_tag_keeps_shadow_and_snow(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    codes = np.array([[0, 1, 2, 3, 9]], np.uint8)
    path = write(tmp_path / "mask.tif", codes, res=10.0, tags={masks.USER_MASK_TAG[0]: "codes"})
    spec = find_mask([], user_mask=path)
    assert "mask codes" in spec.detail
    got = read_mask(spec, _grid(5.0, 2, 10))
    np.testing.assert_array_equal(got[0], [0, 0, 1, 1, 2, 2, 3, 3, 1, 1])


def test_user_mask_missing_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RasterReadError, match="nope.tif: no such file"):
        find_mask([], user_mask=tmp_path / "nope.tif")


def test_user_mask_wins_and_none_says_why(write: Callable[..., Path], tmp_path: Path) -> None:
    b04, _ = _scl_product(write, tmp_path)
    user = write(tmp_path / "m.tif", np.ones((4, 4), np.uint8), res=10.0)
    assert find_mask([b04], user_mask=user).kind == "user"
    plain = write(tmp_path / "plain" / "scene.tif", np.ones((4, 4), np.uint16), res=10.0)
    spec = find_mask([plain.parent])  # a folder, as detect takes it
    assert spec.kind == "none" and "scene.tif" in spec.detail
    assert find_mask(str(b04)).kind == "scl"  # one path, not a sequence of characters
    assert (read_mask(spec, _grid(10.0, 3, 5)) == MASK_CLEAR).all()
    with pytest.raises(InputError, match="unknown mask kind"):
        MaskSpec("fmask")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- s2cloudless
#: Typical top-of-atmosphere reflectance of clear vegetated land and of thick cloud.
_LAND = dict(
    B01=0.13, B02=0.10, B03=0.09, B04=0.07, B05=0.12, B06=0.25, B07=0.28, B08=0.30,
    B8A=0.32, B09=0.10, B10=0.004, B11=0.18, B12=0.09,
)  # fmt: skip
_CLOUD = dict(
    B01=0.48, B02=0.47, B03=0.46, B04=0.47, B05=0.49, B06=0.52, B07=0.53, B08=0.54,
    B8A=0.54, B09=0.26, B10=0.06, B11=0.40, B12=0.30,
)  # fmt: skip


def _l1c_granule(write: Callable[..., Path], root: Path, *, date: str = "20220301") -> Path:
    """L1C band files at 20 m, 2.4 km square, a 600 m bright cloud in the middle.

    Sensed after baseline 04.00, so the DNs carry +1000 (RADIO_ADD_OFFSET -1000): read
    without harmonisation, the clear land (+0.1 reflectance) has a cloud probability
    near 1, so the clear-land assertion also checks the offset.
    """
    folder = root / "L1C_T52TDK_A026000_20220301T023551" / "IMG_DATA"
    n = 120
    cloud = np.zeros((n, n), bool)
    cloud[45:75, 45:75] = True
    for band, land in _LAND.items():
        refl = np.where(cloud, _CLOUD[band], land)
        dn = (refl * 10000 + 1000).astype(np.uint16)
        write(folder / f"T52TDK_{date}T023551_{band}.tif", dn, res=20.0)
    return folder / f"T52TDK_{date}T023551_B04.tif"


def test_l1c_without_the_clouds_extra_is_kind_none_with_the_reason(
    write: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    b04 = _l1c_granule(write, tmp_path)
    monkeypatch.setattr(masks, "_have_s2cloudless", lambda: False)
    with caplog.at_level(logging.WARNING, logger="borderwatch.masks"):
        spec = find_mask([b04])
    assert spec.kind == "none"
    assert "pip install 'borderwatch[clouds]'" in spec.detail
    assert "s2cloudless is not installed" in caplog.text
    # Bands missing beside the file: not an L1C date for the detector.
    (b04.parent / "T52TDK_20220301T023551_B10.tif").unlink()
    monkeypatch.setattr(masks, "_have_s2cloudless", lambda: True)
    assert find_mask([b04]).kind == "none"


def test_asking_for_s2cloudless_without_the_extra_is_one_clear_error(
    write: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b04 = _l1c_granule(write, tmp_path)
    monkeypatch.setitem(sys.modules, "s2cloudless", None)  # import fails as if absent
    masks._detector.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"pip install 'borderwatch\[clouds\]'"):
            read_mask(MaskSpec("s2cloudless", (str(b04),)), _grid(10.0, 8, 8))
    finally:
        masks._detector.cache_clear()


@pytest.mark.skipif(not HAVE_S2CLOUDLESS, reason="s2cloudless (extra 'clouds') not installed")
def test_s2cloudless_flags_a_bright_cloud_and_not_clear_land(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    b04 = _l1c_granule(write, tmp_path)
    spec = find_mask([b04])
    assert spec.kind == "s2cloudless" and len(spec.paths) == 10
    grid = _grid(10.0, 240, 240)
    got = read_mask(spec, grid)
    assert set(np.unique(got)) == {MASK_CLEAR, MASK_CLOUD}
    assert (got[100:140, 100:140] == MASK_CLOUD).mean() == 1.0  # the cloud's core
    far = np.ones(got.shape, bool)
    far[40:200, 40:200] = False  # more than 400 m from the cloud
    assert (got[far] == MASK_CLEAR).mean() == 1.0
    win = rasterio.windows.Window(col_off=64, row_off=80, width=70, height=50)
    np.testing.assert_array_equal(read_mask(spec, grid, win), got[80:130, 64:134])


# --------------------------------------------------------------------------- baseline 04.00
_REFL = np.array([[0.05, 0.12, 0.30], [0.01, 0.25, 0.50]])  # 0.01: below the offset


def _pair_across_baseline(write: Callable[..., Path], root: Path) -> tuple[Path, Path]:
    before = root / "S2A_MSIL2A_20211215T023551_N0301_R089_T52TDK_20211215T050000.SAFE"
    after = root / SAFE_L2A
    dn = (_REFL * 10000).astype(np.uint16)
    b = write(before / "T52TDK_20211215T023551_B04_10m.tif", dn, res=10.0)
    a = write(after / "T52TDK_20220301T023551_B04_10m.tif", dn + 1000, res=10.0)
    return b, a


def test_products_either_side_of_baseline_04_read_the_same(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    b, a = _pair_across_baseline(write, tmp_path)
    sb, sa = open_date([b]), open_date([a])
    assert sb.offsets == () and sa.offsets == (-1000.0,)
    assert sa.offset_source == "Sentinel-2 product name (baseline 04.00)"
    grid = _grid(10.0, 2, 3)
    vb, va = read_scene(sb, grid).data, read_scene(sa, grid).data
    np.testing.assert_array_equal(vb, va)
    np.testing.assert_allclose(va[0], np.round(_REFL * 10000), atol=0.5)
    # A non-Sentinel-2 file with the same numbers is untouched.
    other = write(
        tmp_path / "worldview_2022-03-01.tif", (_REFL * 10000 + 1000).astype(np.uint16), res=10.0
    )
    so = open_date([other])
    assert so.offsets == ()
    np.testing.assert_allclose(read_scene(so, grid).data[0], _REFL * 10000 + 1000, atol=0.5)
    assert offset_record(sa.band_names, sa.offsets, sa.offset_source) == {
        "offset_dn": {"band1": -1000.0},
        "source": "Sentinel-2 product name (baseline 04.00)",
        "formula": "value = max(DN + offset, 0)",
    }
    assert offset_record(sb.band_names, sb.offsets, sb.offset_source) is None


def test_offset_clips_at_zero_and_keeps_nodata(write: Callable[..., Path], tmp_path: Path) -> None:
    dn = np.array([[0, 500, 1000, 2500]], np.uint16)
    path = write(tmp_path / SAFE_L2A / "T52TDK_20220301T023551_B08_10m.tif", dn, res=10.0, nodata=0)
    data = read_scene(open_date([path]), _grid(10.0, 1, 4)).data[0, 0]
    assert np.isnan(data[0])  # nodata stays nodata
    np.testing.assert_array_equal(data[1:], [0.0, 0.0, 1500.0])


def test_offset_from_mtd_xml_tags_and_sensing_date(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    dn = np.full((2, 2), 2000, np.uint16)
    # A renamed granule (no product name) with the product metadata five folders up.
    root = tmp_path / "granule_copy"
    band = write(root / "GRANULE" / "L2A" / "IMG_DATA" / "R10m" / "B04.tif", dn, res=10.0)
    offsets = "".join(
        f'<BOA_ADD_OFFSET band_id="{i}">{-1000 if i != 3 else -900}</BOA_ADD_OFFSET>'
        for i in range(13)
    )
    (root / "MTD_MSIL2A.xml").write_text(
        f"<n1:Level-2A_User_Product xmlns:n1='https://psd-14.sentinel2.eo.esa.int'>"
        f"<General_Info><Product_Info><PROCESSING_BASELINE>04.00</PROCESSING_BASELINE>"
        f"</Product_Info></General_Info><BOA_ADD_OFFSET_VALUES_LIST>{offsets}"
        f"</BOA_ADD_OFFSET_VALUES_LIST></n1:Level-2A_User_Product>"
    )
    src = open_date([band])
    assert src.offsets == (-900.0,) and src.offset_source == "MTD_MSIL2A.xml BOA_ADD_OFFSET"
    two = write(root / "GRANULE" / "L2A" / "IMG_DATA" / "R10m" / "x_B04.tif", dn, res=10.0)
    three = write(root / "GRANULE" / "L2A" / "IMG_DATA" / "R10m" / "x_B02.tif", dn, res=10.0)
    both = open_date([three, two])
    assert both.band_names == ("B02", "B04") and both.offsets == (-1000.0, -900.0)
    # Tags win over the product name: a harmonised export says offset 0.
    tagged = write(
        tmp_path / SAFE_L2A / "T52TDK_20220301T023551_B04_10m.tif",
        dn,
        res=10.0,
        tags={"BOA_ADD_OFFSET": "0"},
    )
    assert open_date([tagged]).offsets == ()
    # Tile names only: the sensing date decides (>= 2022-01-25: baseline >= 04.00).
    late = write(tmp_path / "T52TDK_20220126T023551_B04.tif", dn, res=10.0)
    early = write(tmp_path / "T52TDK_20220124T023551_B04.tif", dn, res=10.0)
    assert open_date([late]).offsets == (-1000.0,)
    assert "assumed from the sensing date 2022-01-26" in str(open_date([late]).offset_source)
    assert open_date([early]).offsets == ()
    # The SCL (a classification) is never shifted.
    scl = write(tmp_path / SAFE_L2A / "T52TDK_20220301T023551_SCL_20m.tif", dn, res=20.0)
    assert open_date([scl]).offsets == ()


def test_native_block_reads_are_harmonised_too(write: Callable[..., Path], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    refl = rng.uniform(0.05, 0.4, (64, 64))
    dn = (refl * 10000).astype(np.uint16)
    before = tmp_path / "S2A_MSIL2A_20211215T023551_N0301_R089_T52TDK_20211215T050000.SAFE"
    b = write(before / "T52TDK_20211215T023551_B04_10m.tif", dn, res=10.0)
    a = write(tmp_path / SAFE_L2A / "T52TDK_20220301T023551_B04_10m.tif", dn + 1000, res=10.0)
    sb, sa = open_date([b]), open_date([a])
    grid = choose_grid([sb, sa], match=sb)
    src = pair_source(sb, sa, grid)
    assert src.native == (0, 0)
    p = read_pair(src, (4, 8, 32, 16))
    np.testing.assert_array_equal(p.before, p.after)
    with TileReader(src, [(0, 0, 40, 40), (20, 20, 44, 44)]) as reader:
        for win in [(0, 0, 40, 40), (20, 20, 44, 44)]:
            q = reader.read(win)
            np.testing.assert_array_equal(q.before, q.after)
            r0, c0, h, w = win
            np.testing.assert_array_equal(q.after[0], dn[r0 : r0 + h, c0 : c0 + w])


def test_run_metadata_records_the_offset_per_date(
    write: Callable[..., Path], tmp_path: Path
) -> None:
    from borderwatch.engine import detect, run_metadata

    rng = np.random.default_rng(1)
    dn = rng.integers(500, 3000, (4, 48, 48)).astype(np.uint16)
    before = tmp_path / "S2A_MSIL2A_20211215T023551_N0301_R089_T52TDK_20211215T050000.SAFE"
    b = write(before / "T52TDK_20211215T023551_10m.tif", dn, res=10.0)
    a = write(tmp_path / SAFE_L2A / "T52TDK_20220301T023551_10m.tif", dn + 1000, res=10.0)
    run = detect(b, a)
    meta = run_metadata(run, hash_inputs=False)
    assert meta["inputs"]["before"]["radiometric_offset"] is None
    after = meta["inputs"]["after"]["radiometric_offset"]
    assert after["offset_dn"] == {f"band{i}": -1000.0 for i in range(1, 5)}
    assert after["source"] == "Sentinel-2 product name (baseline 04.00)"
    assert len(run.objects) == 0  # same reflectance once harmonised: nothing changed


@pytest.mark.realdata
@pytest.mark.skipif(not HAVE_S2CLOUDLESS, reason="s2cloudless (extra 'clouds') not installed")
def test_s2cloudless_on_real_oscd_l1c_scenes(shared_data: Path) -> None:
    """OSCD (Daudt et al. 2018) L1C tiles, 13 single-band GeoTIFFs per date.

    Paris 2017-11-07 has two small cumulus clouds (seen in its RGB quicklook, at about
    row 70 / col 335 and row 545 / col 205 of the 10 m grid); Rennes 2015-08-21 and
    Beihai 2018-03-09 are cloud-free.
    """
    from scipy import ndimage

    root = shared_data / "oscd" / "Onera Satellite Change Detection dataset - Images"

    def cloud(city: str, imgs: str) -> np.ndarray:
        b04 = sorted((root / city / imgs).glob("*_B04.tif"))[0]
        spec = find_mask([b04])
        assert spec.kind == "s2cloudless", spec.detail
        return read_mask(spec, choose_grid([open_date([b04])])) == MASK_CLOUD

    paris = cloud("paris", "imgs_2")
    labels, n = ndimage.label(paris)
    assert n == 2
    centres = sorted(ndimage.center_of_mass(paris, labels, [1, 2]))
    np.testing.assert_allclose(centres, [(70, 335), (545, 205)], atol=10)
    assert 0.03 < paris.mean() < 0.10
    assert not cloud("rennes", "imgs_1").any()
    assert not cloud("beihai", "imgs_2").any()
