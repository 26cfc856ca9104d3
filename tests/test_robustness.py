"""Inputs a new user tries: tiny, thin, un-georeferenced and sparse rasters; unsafe review places.

Each case goes through the CLI and must end in one clear line naming the file (exit 2)
or a run that says what it skipped, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import rasterio
import rasterio.windows
import shapely
from click.testing import CliRunner
from scipy import ndimage

from borderwatch.cli import main
from borderwatch.errors import InputError
from borderwatch.io import MIN_INPUT_PX
from borderwatch.products.review import check_place, place_key

SRC = Path(__file__).resolve().parents[1] / "src"


def _texture(shape: tuple[int, int], seed: int = 0, bands: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(300, 1500, (bands, *shape)).astype(np.uint16)


def _detect(tmp_path: Path, before: Path, after: Path, *extra: str):
    out = tmp_path / "out.gpkg"
    args = ["detect", "--before", str(before), "--after", str(after), "--out", str(out), *extra]
    return CliRunner().invoke(main, args), out


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The CLI in its own interpreter: pytest's warning filters do not apply there."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-m", "borderwatch.cli", *args]
    opts = {"capture_output": True, "text": True, "timeout": 300, "check": False}
    return subprocess.run(cmd, env=env, cwd=cwd, **opts)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 60), (60, 1), (3, 200)])
def test_tiny_or_one_row_raster_is_one_clear_line(tmp_path, make_raster, shape):
    before = make_raster("before.tif", _texture(shape))
    after = make_raster("after.tif", _texture(shape, seed=1))
    r, out = _detect(tmp_path, before, after)
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line == (
        f"borderwatch: error: {before}: {shape[0]} x {shape[1]} pixels is too small to assess "
        f"(needs at least {MIN_INPUT_PX} x {MIN_INPUT_PX} pixels)"
    )
    assert not out.exists()


def test_small_scene_runs_with_alignment_skipped_and_says_so(tmp_path, make_raster):
    # 24 x 24 px, but only 10 x 10 px valid in the after date: too few to correlate
    # (fewer than 16 x 16), enough to assess.
    base = _texture((24, 24))
    after = base.copy()
    after[:, 5:15, 5:15] += 3000  # a planted change inside the valid part
    after[:, 10:, :] = 0
    after[:, :, 10:] = 0
    b = make_raster("before.tif", base)
    a = make_raster("after.tif", after, nodata=0)
    proc = _cli("detect", "--before", str(b), "--after", str(a), "--out", "o.gpkg", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "after.tif not co-registered to" in proc.stderr
    assert "fewer than 256" in proc.stderr
    assert (tmp_path / "o.gpkg").exists()


def test_not_georeferenced_inputs_give_our_message_not_rasterio_warning(tmp_path, make_raster):
    b = make_raster("plain_b.tif", _texture((64, 64)), crs=None, transform=None)
    a = make_raster("plain_a.tif", _texture((64, 64), seed=1), crs=None, transform=None)
    proc = _cli("detect", "--before", str(b), "--after", str(a), "--out", "o.gpkg", cwd=tmp_path)
    assert proc.returncode == 2
    assert "NotGeoreferencedWarning" not in proc.stderr
    assert proc.stderr.strip() == (
        f"borderwatch: error: {b}: not georeferenced (no CRS); georeference it first "
        "(plain images: borderwatch evaluate --pixel-size)"
    )


def test_evaluate_on_png_and_plain_tiff_prints_no_rasterio_warning(tmp_path, make_raster):
    from PIL import Image

    before = _texture((96, 96), bands=3).astype(np.uint8)
    after = before.copy()
    after[:, 30:50, 30:50] = 255
    Image.fromarray(np.moveaxis(before, 0, -1)).save(tmp_path / "b.png")
    Image.fromarray(np.moveaxis(after, 0, -1)).save(tmp_path / "a.png")
    truth = np.zeros((96, 96), np.uint8)
    truth[30:50, 30:50] = 1
    make_raster("truth.tif", truth, crs=None, transform=None)  # a label without georeferencing
    proc = _cli(
        "evaluate",
        "--before",
        "b.png",
        "--after",
        "a.png",
        "--truth",
        "truth.tif",
        "--pixel-size",
        "1",
        *("--method", "combined"),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "NotGeoreferencedWarning" not in proc.stderr
    assert "recall 1.000" in proc.stdout


def _sparse_pair(tmp_path: Path, *, size: int = 3000, patch: int = 200, corner: int = 20):
    """Mostly-nodata ``size`` x ``size`` pair: one valid ``patch`` square near the top left.

    Smooth texture; the after date is shifted one row down and has a 20 x 30 m bright
    roof planted in the patch at rows/cols (90-110, 80-110) of the patch. 1 m pixels,
    tiled 256 px, nodata 0.
    """
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.normal(800, 60, (4, patch + 4, patch + 4)), (0, 1.5, 1.5))
    before = field[:, 2:-2, 2:-2].astype(np.float32)
    # The after date sits one row lower: after[r] = before[r - 1] (a 1 m misregistration).
    after = field[:, 1:-3, 2:-2] + rng.normal(0, 2, before.shape)
    after = after.astype(np.float32)
    after[:, 90:110, 80:110] += 900
    paths = []
    for name, arr in (("sparse_before.tif", before), ("sparse_after.tif", after)):
        path = tmp_path / name
        profile = {
            "driver": "GTiff",
            "height": size,
            "width": size,
            "count": 4,
            "dtype": "uint16",
            "nodata": 0,
            "crs": "EPSG:32652",
            "transform": rasterio.Affine(1.0, 0, 500000.0, 0, -1.0, 4710000.0),
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        with rasterio.open(path, "w", **profile) as dst:
            window = rasterio.windows.Window(corner, corner, patch, patch)
            dst.write(np.clip(arr, 1, 60000).astype(np.uint16), window=window)
        paths.append(path)
    return paths


@pytest.mark.slow
def test_sparse_scene_whose_valid_patch_the_sample_misses_is_still_assessed(tmp_path):
    from borderwatch.engine import detect, make_plan

    before, after = _sparse_pair(tmp_path)
    patch = shapely.box(500020.0, 4709780.0, 500220.0, 4709980.0)  # x, y in EPSG:32652
    plan = make_plan(before, after)
    gt = plan.grid.transform

    def bounds(win):
        r0, c0, h, w = win
        return shapely.box(
            gt.c + c0 * gt.a, gt.f + (r0 + h) * gt.e, gt.c + (c0 + w) * gt.a, gt.f + r0 * gt.e
        )

    # The default uniform draw misses the patch, and so does the centre alignment window:
    assert len(plan.sample) > 1 and not any(bounds(w).intersects(patch) for w in plan.sample)
    assert not bounds(plan.align_window).intersects(patch)
    run = detect(before, after)
    params = run.change.params
    assert params["blockwise"]["sample"]["redrawn_on_valid"] is True
    # Co-registered on the patch: the after date moved up one row.
    assert params["align"] is True and "align_skipped" not in params
    assert params["shift_px"] == pytest.approx([-1.0, 0.0], abs=0.1)
    # The roof: x 500100-500130 m, y 4709870-4709890 m (patch origin at pixel (20, 20)).
    roof = shapely.box(500100.0, 4709870.0, 500130.0, 4709890.0)
    hits = run.objects[run.objects.geometry.intersects(roof)]
    assert len(hits) == 1, run.objects
    assert hits.geometry.iloc[0].intersection(roof).area / roof.area > 0.8


def _tiles_on_nodata_canvas(tmp_path: Path, size: int) -> list[Path]:
    """The demo tiles pasted into the top-left corner of a ``size`` px nodata canvas.

    Same CRS, resolution, origin, band names and tags as the tiles; the rest is nodata.
    """
    from borderwatch.sample_data import sample_tiles_dir

    paths = []
    for name in ("before", "after"):
        with rasterio.open(sample_tiles_dir() / f"{name}.tif") as src:
            arr, profile, tags, names = src.read(), src.profile, src.tags(), src.descriptions
        profile.update(height=size, width=size, tiled=True, blockxsize=256, blockysize=256)
        path = tmp_path / f"canvas_{name}.tif"
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(arr, window=rasterio.windows.Window(0, 0, arr.shape[2], arr.shape[1]))
            dst.update_tags(**tags)
            dst.descriptions = names
        paths.append(path)
    return paths


@pytest.mark.slow
def test_tiles_in_a_corner_of_a_nodata_canvas_give_the_plain_tiles_result(tmp_path):
    """A sparse scene is fitted on the valid pixels its budget allows, not on a few.

    The 1100 px canvas (just over the 1 Mpx sample budget) has the tiles' 261,121
    valid pixels in its corner; the uniform draw held 179,594 of them and fitted a
    threshold 9 % off the plain tiles' (1.29 against 1.18).
    """
    from borderwatch.engine import DetectParams, detect
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    combined = DetectParams(method="combined")  # its halo and threshold; not auto's model
    plain = detect([tiles / "before.tif"], [tiles / "after.tif"], params=combined)
    before, after = _tiles_on_nodata_canvas(tmp_path, 1100)
    sparse = detect([before], [after], params=combined)
    sample = sparse.change.params["blockwise"]["sample"]
    assert sample["whole_scene"] is False and sample["redrawn_on_valid"] is True
    plain_valid = plain.change.params["blockwise"]["sample"]["valid_pixels"]
    assert sample["valid_pixels"] > 0.9 * plain_valid  # all but the windows' edges
    assert len(sparse.objects) == len(plain.objects) == 8
    assert sparse.change.threshold == pytest.approx(plain.change.threshold, rel=0.03)
    assert sparse.total_area_m2 == pytest.approx(plain.total_area_m2, rel=0.02)


def test_sample_windows_with_a_valid_mask_draw_only_windows_holding_data():
    from borderwatch.engine.plan import sample_windows

    valid = np.zeros((3000 // 16 + 1, 3000 // 16 + 1), bool)
    valid[1:14, 1:14] = True  # grid pixels 16-224: the top-left window only
    wins = sample_windows((3000, 3000), (256, 256), valid=valid, valid_step=16)
    assert wins == [(0, 0, 256, 256)]


@pytest.mark.parametrize(
    ("place", "why"),
    [
        ("../elsewhere", "contains a path separator"),
        ("a/b", "contains a path separator"),
        ("a\\b", "contains a path separator"),
        ("..", "contains '..'"),
        ("x..y", "contains '..'"),
        (".hidden", "is not a plain name"),
        ("-rf", "is not a plain name"),
        ("two words", "is not a plain name"),
        ("", "is not a plain name"),
    ],
)
def test_review_import_refuses_an_unsafe_place(tmp_path, place, why):
    store = tmp_path / "store"
    gpkg = tmp_path / "d.gpkg"
    gpkg.write_bytes(b"")  # never read: the place is checked first
    r = CliRunner().invoke(
        main, ["review", "import", str(gpkg), "--place", place, "--reviews", str(store)]
    )
    assert r.exit_code == 2
    assert r.output.strip().startswith(f"borderwatch: error: --place {place!r} {why};")
    assert not store.exists() and not (tmp_path / "elsewhere.reviews.geojson").exists()


def test_place_keys_from_layers_are_always_safe():
    aoi = gpd.GeoDataFrame({"id": ["../../etc"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326)
    key = place_key({"aoi": aoi})
    assert check_place(key) == key == "____etc"
    with pytest.raises(InputError, match="contains a path separator"):
        check_place("x/y")


def test_review_import_refuses_layers_without_geometry_or_crs(tmp_path):
    store = tmp_path / "store"
    no_geom = tmp_path / "no_geometry.gpkg"
    pyogrio.write_dataframe(
        pd.DataFrame({"id": ["bw-1"], "review": ["confirmed"]}), no_geom, layer="detections"
    )
    no_crs = tmp_path / "no_crs.gpkg"
    frame = gpd.GeoDataFrame(
        {"id": ["bw-1"], "review": ["confirmed"]}, geometry=[shapely.box(0, 0, 10, 10)]
    )
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        pyogrio.write_dataframe(frame, no_crs, layer="detections")
    for path, problem in ((no_geom, "has no geometry"), (no_crs, "has no CRS")):
        for extra in ([], ["--place", "p1"]):
            r = CliRunner().invoke(
                main, ["review", "import", str(path), "--reviews", str(store), *extra]
            )
            assert r.exit_code == 2, r.output
            assert r.output.strip().startswith(
                f"borderwatch: error: {path}: layer 'detections' {problem};"
            ), r.output
    assert not store.exists()


def test_evaluate_on_tiny_images_names_the_users_file_not_a_temporary_copy(tmp_path):
    from PIL import Image

    image = np.moveaxis(_texture((10, 12), bands=3).astype(np.uint8), 0, -1)
    for name in ("b.png", "a.png"):
        Image.fromarray(image).save(tmp_path / name)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(tmp_path / "t.png")
    args = ["evaluate", "--before", str(tmp_path / "b.png"), "--after", str(tmp_path / "a.png")]
    r = CliRunner().invoke(main, [*args, "--truth", str(tmp_path / "t.png"), "--pixel-size", "1"])
    assert r.exit_code == 2
    assert r.output.strip() == (
        f"borderwatch: error: {tmp_path / 'b.png'}: 10 x 12 pixels is too small to assess "
        f"(needs at least {MIN_INPUT_PX} x {MIN_INPUT_PX} pixels)"
    )


def test_gcp_only_raster_is_told_to_be_warped(tmp_path):
    from rasterio.control import GroundControlPoint

    path = tmp_path / "gcps.tif"
    gcps = [
        GroundControlPoint(row=r, col=c, x=500000.0 + c, y=4710000.0 - r)
        for r, c in ((0, 0), (0, 63), (63, 0), (63, 63))
    ]
    profile = {"driver": "GTiff", "height": 64, "width": 64, "count": 4, "dtype": "uint16"}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(_texture((64, 64)))
        dst.gcps = (gcps, rasterio.crs.CRS.from_epsg(32652))
    proc = _cli(
        "detect", "--before", str(path), "--after", str(path), "--out", "o.gpkg", cwd=tmp_path
    )
    assert proc.returncode == 2
    assert "NotGeoreferencedWarning" not in proc.stderr
    assert proc.stderr.strip() == (
        f"borderwatch: error: {path}: georeferenced by ground control points or RPCs only; "
        "warp it onto a map grid first (e.g. gdalwarp)"
    )
