"""Blockwise detection equals the in-memory reference (issue 4)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import Point

from borderwatch.blocks import block_layout, run_detect_blocks
from borderwatch.blockstats import BandMoments, Extremes, histogram_block, otsu_from_histogram
from borderwatch.change import otsu_threshold
from borderwatch.cli import main
from borderwatch.errors import InputError
from borderwatch.io import choose_grid, open_date
from borderwatch.pipeline import DetectParams, run_detect

TILE = 64
#: The in-memory reference without the whole-scene steps that blockwise runs skip.
WHOLE_OFF = {"align": False, "normalise": "none", "classify": False}
BLOCK = 128
ORIGIN = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4720000.0)


def write_scene(path: Path, data: np.ndarray, *, nodata: float | None = 0) -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:32652",
        "transform": ORIGIN,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def make_pair(tmp_path: Path, rows: int = 600, cols: int = 700, seed: int = 4):
    """Textured 4-band pair with planted changes across block edges (every 128 px)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    base = 800 + 300 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    before = np.stack([base * g for g in (1.0, 1.1, 0.9, 1.6)])
    before = before + rng.normal(0, 25, before.shape)
    gain = np.array([1.05, 1.02, 0.98, 1.1])[:, None, None]
    after = before * gain + rng.normal(0, 25, before.shape)
    planted = [
        (110, 150, 90, 170),  # crosses the row edge 128 and the col edge 128
        (250, 262, 240, 270),  # crosses the corner (256, 256)
        (380, 386, 20, 660),  # a long thin wall over five blocks
        (500, 530, 500, 520),  # inside one block
        (120, 132, 380, 390),  # small: split by the edge at 128, kept only as a whole
    ]
    for r0, r1, c0, c1 in planted:
        after[:, r0:r1, c0:c1] += np.array([900, 1000, 1200, -600])[:, None, None]
    before = np.clip(before, 1, 65535).astype(np.uint16)
    after = np.clip(after, 1, 65535).astype(np.uint16)
    after[:, 560:, 640:] = 0  # nodata corner in one date only
    b = write_scene(tmp_path / "before_20190614.tif", before)
    a = write_scene(tmp_path / "after_20210902.tif", after)
    return b, a, planted


@pytest.fixture
def pair(tmp_path: Path):
    return make_pair(tmp_path)


def _grid(b: Path, a: Path):
    bs, as_ = open_date(b), open_date(a)
    return choose_grid([bs, as_], match=bs)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.mark.parametrize("threshold", [3.0, pytest.param("otsu", marks=pytest.mark.slow)])
def test_blockwise_equals_in_memory(pair, tmp_path: Path, threshold: str | float) -> None:
    b, a, planted = pair
    grid = _grid(b, a)
    params = DetectParams(method="cva", threshold=threshold, min_area_m2=100.0, **WHOLE_OFF)
    ref = run_detect(b, a, params=params, grid=grid)
    run = run_detect_blocks(
        b,
        a,
        params=params,
        grid=grid,
        block_size=BLOCK,
        score_out=tmp_path / "score.tif",
        mask_out=tmp_path / "mask.tif",
    )
    assert run.blocks == 30  # 5 x 6 blocks of 128 px: objects cross many edges
    # Thresholds: exact, also for Otsu (streamed exact percentiles and histogram).
    assert run.change.threshold == ref.change.threshold
    np.testing.assert_array_equal(_read(tmp_path / "mask.tif").astype(bool), ref.change.mask)
    np.testing.assert_array_equal(_read(tmp_path / "score.tif"), ref.change.score)
    got, want = run.objects, ref.objects
    assert len(got) == len(want) >= len(planted) - 1
    assert list(got.columns) == list(want.columns)
    np.testing.assert_array_equal(got["n_pixels"], want["n_pixels"])
    np.testing.assert_array_equal(got["area_m2"], want["area_m2"])
    np.testing.assert_allclose(got["mean_score"], want["mean_score"], rtol=1e-12)
    np.testing.assert_array_equal(got["max_score"], want["max_score"])
    for g, w in zip(got.geometry, want.geometry, strict=True):
        assert g.equals(w)
    assert got.crs == want.crs


def test_objects_crossing_edges_are_one_polygon(pair) -> None:
    b, a, planted = pair
    grid = _grid(b, a)
    params = DetectParams(method="cva", threshold=3.0, min_area_m2=100.0, **WHOLE_OFF)
    run = run_detect_blocks(b, a, params=params, grid=grid, block_size=BLOCK)
    wall = planted[2]
    # The wall spans five blocks; it must come back as one polygon of its full length.
    left, top = grid.transform * (wall[2], wall[0])
    hits = run.objects[run.objects.intersects(Point(left + 300, top - 3))]
    assert len(hits) == 1
    minx, _, maxx, _ = hits.geometry.iloc[0].bounds
    assert maxx - minx >= (wall[3] - wall[2]) - 2
    # The small object split by the row edge 128 (each part < 100 m2) is kept whole.
    small = planted[4]
    x, y = grid.transform * (small[2] + 5, small[0] + 6)
    assert run.objects.intersects(Point(x, y)).sum() == 1


@pytest.mark.slow
def test_resampled_grid_matches(pair) -> None:
    """A grid that is not the input pixel grid (2 m) goes through read_scene per block."""
    b, a, _ = pair
    bs, as_ = open_date(b), open_date(a)
    grid = choose_grid([bs, as_], resolution=2.0)
    params = DetectParams(method="cva", threshold=2.5, min_area_m2=40.0, **WHOLE_OFF)
    ref = run_detect(b, a, params=params, grid=grid)
    run = run_detect_blocks(b, a, params=params, grid=grid, block_size=64)
    assert run.blocks > 4
    np.testing.assert_array_equal(run.objects["n_pixels"], ref.objects["n_pixels"])


def test_block_layout_follows_tiles() -> None:
    lay = block_layout((1000, 600), block_size=300, tile=(256, 256), offset=(2, 0))
    assert lay.row_edges == (0, 510, 1000)  # file row 512 = grid row 510
    assert lay.col_edges == (0, 512, 600)
    assert len(lay) == 4
    assert sum(h * w for _, (_, _, h, w) in lay.blocks()) == 1000 * 600


def test_unsupported_method_is_an_error_not_a_fallback(pair) -> None:
    b, a, _ = pair
    with pytest.raises(InputError, match="cannot run block by block"):
        run_detect_blocks(
            b, a, params=DetectParams(method="no_such_method", **WHOLE_OFF), block_size=BLOCK
        )


@pytest.mark.parametrize("n", [1, 2, 3, 10, 999, 10_001, 54_321])
def test_exact_percentile_matches_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    v = rng.gamma(2.0, 1.5, n).astype(np.float32)
    k = Extremes.needed_k(n)
    parts = [Extremes.of(chunk, k) for chunk in np.array_split(v, 7) if chunk.size]
    ext = parts[0]
    for p in parts[1:]:
        ext = ext.merge(p)
    for q in (0.01, 99.99, 0.0, 100.0):
        assert ext.percentile(q) == np.percentile(v[np.isfinite(v)].astype(np.float64), q)


def test_streamed_otsu_and_moments_equal_whole_array() -> None:
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(1, 0.3, 50_000), rng.normal(5, 0.8, 3_000)]).astype(np.float32)
    chunks = np.array_split(v, 9)
    k = Extremes.needed_k(v.size)
    ext = Extremes.of(chunks[0], k)
    for c in chunks[1:]:
        ext = ext.merge(Extremes.of(c, k))
    lo, hi = ext.percentile(0.01), ext.percentile(99.99)
    hist = sum(histogram_block(c, lo, hi) for c in chunks)
    assert otsu_from_histogram(hist, lo, hi) == otsu_threshold(v)
    x = rng.normal(300, 40, (4, 40_000)).astype(np.float32)
    m = BandMoments.total(BandMoments.of(c) for c in np.array_split(x, 6, axis=1))
    np.testing.assert_allclose(m.mean, x.mean(axis=1, dtype=np.float64), rtol=1e-13)
    np.testing.assert_allclose(m.std, x.std(axis=1, dtype=np.float64), rtol=1e-12)


@pytest.mark.slow
def test_memory_below_block_budget(tmp_path: Path) -> None:
    """A scene 5x larger than the budget runs with a traced peak below the budget."""
    rows = cols = 1536
    rng = np.random.default_rng(0)
    for name in ("before", "after"):
        profile = {
            "driver": "GTiff",
            "width": cols,
            "height": rows,
            "count": 4,
            "dtype": "uint16",
            "crs": "EPSG:32652",
            "transform": ORIGIN,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
        }
        with rasterio.open(tmp_path / f"{name}.tif", "w", **profile) as ds:
            for r in range(0, rows, 256):
                block = rng.integers(500, 900, (4, 256, cols), dtype=np.uint16)
                ds.write(block, window=rasterio.windows.Window(0, r, cols, 256))
    budget = 16 * 2**20  # bytes
    whole_scene = 2 * 4 * rows * cols * 4  # the float32 pair alone, in memory: 75 MB
    assert whole_scene > 4 * budget
    grid = _grid(tmp_path / "before.tif", tmp_path / "after.tif")
    tracemalloc.start()
    try:
        run = run_detect_blocks(
            tmp_path / "before.tif",
            tmp_path / "after.tif",
            params=DetectParams(method="cva", threshold="otsu", **WHOLE_OFF),
            grid=grid,
            block_size=256,
            workers=1,
            sample_px=1 << 16,  # statistics from 4% of the scene: a fixed, small cost
            tile_cache_mb=4,  # decoded tiles kept for halos: stripes one block wide
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert run.blocks == 36
    assert peak < budget, f"traced peak {peak / 2**20:.1f} MiB"


@pytest.mark.slow
def test_cli_detect_blockwise(pair, tmp_path: Path) -> None:
    b, a, _ = pair
    out = tmp_path / "det.geojson"
    mask = tmp_path / "mask.tif"
    res = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(b),
            "--after",
            str(a),
            "--method",
            "cva",
            "--threshold",
            "3",
            "--min-area",
            "100",
            "--block-size",
            "128",
            "--out",
            str(out),
            "--mask-out",
            str(mask),
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists() and mask.exists()
    import json

    meta = json.loads(out.read_text())["borderwatch"]
    assert meta["parameters"]["blockwise"]["blocks"] > 1
    assert len(meta["inputs"]["before"]["files"][0]["sha256"]) == 64
    res = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(b),
            "--after",
            str(a),
            "--method",
            "nope",
            "--block-size",
            "128",
        ],
    )
    assert res.exit_code == 2
    assert "cannot run block by block" in res.output


def test_progress_is_silent_when_quiet_or_not_a_terminal() -> None:
    import io

    from borderwatch.progress import progress_reporter, wants_progress

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert not wants_progress(quiet=False, stream=io.StringIO())
    assert not wants_progress(quiet=True, stream=Tty())
    assert wants_progress(quiet=False, stream=Tty())
    with progress_reporter(quiet=False, stream=io.StringIO()) as p:
        assert p is None
    tty = Tty()
    with progress_reporter(quiet=False, stream=tty) as p:
        assert p is not None
        advance = p.stage("reading", 2)
        advance()
        advance()
    assert "reading" in tty.getvalue()


def test_whole_scene_steps_are_refused_not_skipped(pair) -> None:
    b, a, _ = pair
    with pytest.raises(InputError, match="align"):
        run_detect_blocks(
            b,
            a,
            params=DetectParams(method="cva", threshold="otsu", classify=False),
            block_size=BLOCK,
            stats="exact",
        )
    with pytest.raises(InputError, match="normalise"):
        run_detect_blocks(b, a, params=DetectParams(normalise="irmad"), block_size=BLOCK)
