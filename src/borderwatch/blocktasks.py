"""Block tasks: the per-block functions every scheduler runs, and their reductions.

Each ``task_*`` function is a pure top-level function of a picklable
:class:`PairSource`, a window and small parameters, returning a small result, so the
same function runs on the local thread pool (:mod:`borderwatch.blocks`) and as a dask
task (:mod:`borderwatch.dask_run`). With the local scheduler, the first pass writes
decoded blocks to an uncompressed scratch cache and later passes read it instead of
decoding the inputs again; dask tasks always read the inputs (no shared scratch).

Scores are computed with the same arithmetic, in the same precision, as
:mod:`borderwatch.change`, from whole-scene statistics, so blockwise scores are
bit-identical to the in-memory ones.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import rasterio
import rasterio.errors
import rasterio.windows
from affine import Affine

from borderwatch.blockmerge import BlockSummary, block_objects, summarise_block
from borderwatch.blockstats import (
    OTSU_PERCENTILES,
    BandMoments,
    Extremes,
    histogram_block,
    otsu_from_histogram,
)
from borderwatch.change import clean_mask
from borderwatch.errors import CacheIOError
from borderwatch.io import DateSource, Grid, read_scene
from borderwatch.objects import label_objects

__all__ = [
    "BLOCK_METHODS",
    "GDAL_CACHE_MB",
    "CleanParams",
    "PairSource",
    "clean_groups",
    "clip_window",
    "cva_block",
    "ScoreModel",
    "Win",
    "create_cache",
    "fit_model",
    "merge_extremes",
    "promote_cache",
    "halo_px",
    "otsu_bounds",
    "pair_source",
    "read_diff",
    "task_histogram",
    "task_moments",
    "task_objects",
    "task_raster",
    "task_score",
    "threshold_from_histogram",
]

#: GDAL raster block cache while reading blocks, MB (GDAL's default is 5% of RAM).
GDAL_CACHE_MB = 64

Win = tuple[int, int, int, int]  # row0, col0, rows, cols


def halo_px(*, opening_px: int, closing_px: int, score_halo: int = 0) -> int:
    """Halo (pixels) that makes per-block clean-up equal to the whole-array one.

    Opening (erosion then dilation, radius ``o``) reaches ``2 o`` pixels; closing
    likewise ``2 c``; the score's own footprint adds ``score_halo``.
    """
    return 2 * max(opening_px, 0) + 2 * max(closing_px, 0) + score_halo


@dataclass(frozen=True)
class PairSource:
    """Where a block's pixels come from (picklable, shared by all schedulers).

    Attributes
    ----------
    before, after : DateSource
        The two dates.
    grid : Grid
        The analysis grid.
    native : tuple or None
        ``(row_off, col_off)`` of the grid in both input files when each date is one
        file lying on the grid (same CRS, pixel size and pixel edges): blocks are then
        read directly without resampling. ``None`` means resample with
        :func:`borderwatch.io.read_scene`.
    tile : tuple of int
        Internal tile ``(rows, cols)`` of the inputs (``(1, 1)`` if unknown).
    cache_dir : str or None
        Scratch folder of decoded blocks (local scheduler only).
    """

    before: DateSource
    after: DateSource
    grid: Grid
    native: tuple[int, int] | None
    tile: tuple[int, int]
    cache_dir: str | None = None

    @property
    def bands(self) -> int:
        """Number of bands per date."""
        return len(self.before.band_names)


def _native_offset(date: DateSource, grid: Grid) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    if len(date.paths) != 1:
        return None, (1, 1)
    with rasterio.open(date.paths[0]) as src:
        tile = tuple(src.block_shapes[0]) if src.block_shapes else (1, 1)
        tr, gt = src.transform, grid.transform
        same = (
            src.crs == grid.crs
            and math.isclose(tr.a, gt.a, rel_tol=1e-9)
            and math.isclose(tr.e, gt.e, rel_tol=1e-9)
            and tr.b == gt.b == 0
            and tr.d == gt.d == 0
            and [b for _, b in date.file_bands] == list(range(1, src.count + 1))
        )
        if not same:
            return None, tile  # type: ignore[return-value]
        col = (gt.c - tr.c) / tr.a
        row = (gt.f - tr.f) / tr.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None, tile  # type: ignore[return-value]
    return (round(row), round(col)), tile  # type: ignore[return-value]


def pair_source(before: DateSource, after: DateSource, grid: Grid) -> PairSource:
    """Describe how blocks of ``before``/``after`` are read on ``grid``."""
    nb, tb = _native_offset(before, grid)
    na, _ = _native_offset(after, grid)
    native = nb if nb is not None and nb == na else None
    return PairSource(before, after, grid, native, tb)


def _read_native(path: str, bands: int, offset: tuple[int, int], win: Win) -> np.ndarray:
    """Read a window of one file on its own pixel grid; NaN outside the file or invalid."""
    r0, c0, h, w = win
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(path) as src:
        want = rasterio.windows.Window(c0 + offset[1], r0 + offset[0], w, h)
        full = rasterio.windows.Window(0, 0, src.width, src.height)
        try:
            got = want.intersection(full)
        except rasterio.errors.WindowError:
            return np.full((bands, h, w), np.nan, np.float32)
        gr, gc = int(got.row_off - want.row_off), int(got.col_off - want.col_off)
        gh, gw = int(got.height), int(got.width)
        idx = list(range(1, bands + 1))
        data = src.read(idx, window=got, out_dtype="float32")
        if src.nodata is not None or any(f.name != "all_valid" for f in src.mask_flag_enums[0]):
            ok = np.ones((gh, gw), bool)
            for b in idx:
                ok &= src.read_masks(b, window=got) > 0
            if not ok.all():
                data[:, ~ok] = np.nan
    if (gh, gw) == (h, w):
        return data
    out = np.full((bands, h, w), np.nan, np.float32)
    out[:, gr : gr + gh, gc : gc + gw] = data
    return out


def _read_source(src: PairSource, win: Win) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if src.native is not None:
        b = _read_native(src.before.paths[0], src.bands, src.native, win)
        a = _read_native(src.after.paths[0], src.bands, src.native, win)
    else:
        r0, c0, h, w = win
        g = src.grid
        sub = Grid(g.crs, g.transform @ Affine.translation(c0, r0), (h, w))
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            b = read_scene(src.before, sub).data
            a = read_scene(src.after, sub).data
    valid = np.isfinite(b).all(axis=0) & np.isfinite(a).all(axis=0)
    if not valid.all():
        b[:, ~valid] = np.nan
        a[:, ~valid] = np.nan
    return b, a, valid


def _cache_file(src: PairSource, name: str) -> Path:
    assert src.cache_dir is not None
    return Path(src.cache_dir) / f"{name}.f32"


def _full_io(fd: int, buf: np.ndarray, offset: int, *, write: bool) -> None:
    done = 0
    view = memoryview(buf.data).cast("B")
    while done < view.nbytes:
        if write:
            n = os.pwrite(fd, view[done:], offset + done)
        else:
            n = os.preadv(fd, [view[done:]], offset + done)
        if n <= 0:
            raise CacheIOError(f"scratch cache I/O stopped at byte {offset + done}")
        done += n


def _block_io(
    src: PairSource, name: str, bands: int, win: Win, data: np.ndarray | None
) -> np.ndarray:
    """Read or write one *layout block* of a block-contiguous float32 scratch file.

    Blocks of a regular layout are stored one after the other in raster order, so a
    block is one contiguous read or write (no page faults, no strided copies).
    """
    r0, c0, h, w = win
    offset = 4 * bands * (r0 * src.grid.shape[1] + c0 * h)
    fd = os.open(_cache_file(src, name), os.O_RDONLY if data is None else os.O_WRONLY)
    try:
        if data is None:
            out = np.empty((bands, h, w), np.float32)
            _full_io(fd, out, offset, write=False)
            return out
        _full_io(fd, np.ascontiguousarray(data, np.float32), offset, write=True)
        return data
    finally:
        os.close(fd)


def _rows_io(src: PairSource, name: str, win: Win, data: np.ndarray | None) -> np.ndarray:
    """Read or write any window of a row-major single-band float32 scratch raster."""
    r0, c0, h, w = win
    cols = src.grid.shape[1]
    fd = os.open(_cache_file(src, name), os.O_RDONLY if data is None else os.O_WRONLY)
    try:
        buf = (
            np.empty((h, w), np.float32) if data is None else np.ascontiguousarray(data, np.float32)
        )
        for i in range(h):
            _full_io(fd, buf[i], 4 * ((r0 + i) * cols + c0), write=data is not None)
        return buf
    finally:
        os.close(fd)


def create_cache(src: PairSource, names: dict[str, int]) -> None:
    """Create empty (sparse) float32 scratch rasters ``name -> bands`` on the grid."""
    rows, cols = src.grid.shape
    for name, bands in names.items():
        with open(_cache_file(src, name), "wb") as fh:
            fh.truncate(4 * bands * rows * cols)


def promote_cache(src: PairSource, names: list[str]) -> None:
    """Make complete scratch files readable (``name_tmp`` -> ``name``).

    Later passes read a cache only once it is complete, never a half-written one.
    """
    for name in names:
        os.replace(_cache_file(src, f"{name}_tmp"), _cache_file(src, name))


def clip_window(win: Win, halo: int, shape: tuple[int, int]) -> tuple[Win, tuple[slice, slice]]:
    """Grow ``win`` by ``halo`` inside ``shape``; return it and the core's slices in it."""
    r0, c0, h, w = win
    R0, C0 = max(r0 - halo, 0), max(c0 - halo, 0)
    R1, C1 = min(r0 + h + halo, shape[0]), min(c0 + w + halo, shape[1])
    core = (slice(r0 - R0, r0 - R0 + h), slice(c0 - C0, c0 - C0 + w))
    return (R0, C0, R1 - R0, C1 - C0), core


def read_diff(src: PairSource, win: Win, *, block: bool) -> tuple[np.ndarray, np.ndarray]:
    """``after - before`` (float32, NaN invalid) and ``valid`` of one window.

    ``block=True`` says ``win`` is a block of the layout, which the scratch cache can
    serve; any other window is read from the inputs.
    """
    if block and src.cache_dir is not None and _cache_file(src, "diff").exists():
        diff = _block_io(src, "diff", src.bands, win, None)
        return diff, np.isfinite(diff).all(axis=0)
    b, a, valid = _read_source(src, win)
    a -= b  # same float32 arithmetic as borderwatch.change.standardised_difference
    return a, valid


# --------------------------------------------------------------------------- scores
@dataclass(frozen=True)
class ScoreModel:
    """Global parameters of a score, fitted from a whole-scene pass.

    Attributes
    ----------
    method : str
        Key of :data:`BLOCK_METHODS`.
    mean, std : numpy.ndarray
        ``float64 (bands,)`` valid-pixel mean and standard deviation of the per-band
        difference ``after - before``.
    """

    method: str
    mean: np.ndarray
    std: np.ndarray


def cva_block(model: ScoreModel, diff: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """CVA score of a block's difference ``after - before`` (overwritten) with ``model``."""
    # Same arithmetic, in the same precision, as borderwatch.change.cva with the
    # whole-scene mean and std, so blockwise scores are bit-identical.
    z = diff  # diff is this block's own array: standardise in place
    z -= model.mean[:, None, None].astype(np.float32)
    z /= model.std[:, None, None].astype(np.float32)
    if valid.all():
        return np.sqrt(np.einsum("brc,brc->rc", z, z) / z.shape[0]).astype(np.float32)
    np.copyto(z, 0.0, where=np.isnan(z))  # as nan_to_num: z is this block's own
    score = np.sqrt(np.einsum("brc,brc->rc", z, z) / z.shape[0]).astype(np.float32)
    score[~valid] = np.nan
    return score


class _BlockScore(Protocol):
    def __call__(self, model: ScoreModel, diff: np.ndarray, valid: np.ndarray) -> np.ndarray: ...


#: Methods that run blockwise: name -> (score function of the per-band difference
#: ``after - before``, score halo in pixels). A score is NaN exactly at invalid pixels.
BLOCK_METHODS: dict[str, tuple[_BlockScore, int]] = {"cva": (cva_block, 0)}


def _score(src: PairSource, model: ScoreModel, win: Win) -> tuple[np.ndarray, np.ndarray]:
    """Score and valid mask of a window (from the score scratch file when present)."""
    if src.cache_dir is not None and _cache_file(src, "score").exists():
        score = _rows_io(src, "score", win, None)
        return score, np.isfinite(score)
    fn, score_halo = BLOCK_METHODS[model.method]
    big, core = clip_window(win, score_halo, src.grid.shape)
    diff, valid = read_diff(src, big, block=score_halo == 0 and big == win)
    return fn(model, diff, valid)[core], valid[core]


# --------------------------------------------------------------------------- block tasks
def task_moments(src: PairSource, win: Win) -> BandMoments:
    """Pass 1: moments of ``after - before`` over valid pixels; fills the scratch cache."""
    b, a, valid = _read_source(src, win)
    a -= b  # the difference, as in borderwatch.change.standardised_difference
    if src.cache_dir is not None:
        _block_io(src, "diff_tmp", src.bands, win, a)
    diff = a.reshape(src.bands, -1)
    return BandMoments.of(diff if valid.all() else diff[:, valid.ravel()])


def task_score(src: PairSource, model: ScoreModel, win: Win, k: int) -> Extremes | None:
    """Pass 2: score a block; write the score scratch when caching; extremes if ``k``."""
    fn, score_halo = BLOCK_METHODS[model.method]
    big, core = clip_window(win, score_halo, src.grid.shape)
    diff, valid = read_diff(src, big, block=score_halo == 0)
    score = fn(model, diff, valid)[core]
    if src.cache_dir is not None:
        _rows_io(src, "score_tmp", win, score)
    return Extremes.of(score, k) if k else None


def task_histogram(
    src: PairSource, model: ScoreModel, win: Win, lo: float, hi: float
) -> np.ndarray:
    """Pass 3: Otsu histogram counts of a block's valid scores."""
    score, valid = _score(src, model, win)
    return histogram_block(score[valid], lo, hi)


@dataclass(frozen=True)
class CleanParams:
    """Threshold and clean-up settings shared by the object and raster passes."""

    threshold: float
    opening_px: int
    closing_px: int
    pixel_area_m2: float
    min_area_m2: float = 0.0


def _clean(src: PairSource, model: ScoreModel, win: Win, p: CleanParams) -> tuple[np.ndarray, ...]:
    halo = halo_px(opening_px=p.opening_px, closing_px=p.closing_px)
    big, core = clip_window(win, halo, src.grid.shape)
    score, valid = _score(src, model, big)
    raw = score > p.threshold  # NaN (invalid) compares False
    return clean_groups(raw, p)[core], valid[core], score[core]


def clean_groups(raw: np.ndarray, p: CleanParams) -> np.ndarray:
    """:func:`borderwatch.change.clean_mask` of a block's raw mask, without the minimum area.

    The minimum area applies to whole objects, after the merge across block edges.
    """
    return clean_mask(
        raw,
        pixel_area_m2=p.pixel_area_m2,
        min_area_m2=0.0,
        opening_px=p.opening_px,
        closing_px=p.closing_px,
    )


def task_objects(
    src: PairSource, model: ScoreModel, index: tuple[int, int], win: Win, p: CleanParams
) -> BlockSummary:
    """Pass 4: clean a block (with halo) and summarise its objects for the merge."""
    clean, valid, score = _clean(src, model, win, p)
    objs = block_objects(clean, valid, pixel_area=p.pixel_area_m2, min_area_m2=p.min_area_m2)
    return summarise_block(index, objs, score, row0=win[0], col0=win[1], grid=src.grid)


def task_raster(
    src: PairSource, model: ScoreModel, win: Win, p: CleanParams, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pass 5: the final mask (uint8) and score (float32) of a block, for writing."""
    clean, valid, score = _clean(src, model, win, p)
    f_lab, _ = label_objects(clean & valid)  # the F labels the summaries numbered
    return keep[f_lab].astype(np.uint8), score.astype(np.float32)


# --------------------------------------------------------------------------- reductions
def fit_model(method: str, moments: BandMoments) -> ScoreModel:
    """Global score model from the merged moments of the first pass."""
    return ScoreModel(method, moments.mean, moments.std)


def merge_extremes(parts: list[Extremes | None]) -> Extremes:
    """Merge the extremes of all blocks."""
    kept = [p for p in parts if p is not None]
    out = kept[0]
    for part in kept[1:]:
        out = out.merge(part)
    return out


def otsu_bounds(ext: Extremes) -> tuple[float, float]:
    """Exact clipping range of :func:`borderwatch.change.otsu_threshold`."""
    return ext.percentile(OTSU_PERCENTILES[0]), ext.percentile(OTSU_PERCENTILES[1])


def threshold_from_histogram(hist: np.ndarray, bounds: tuple[float, float]) -> float:
    """Otsu threshold from the summed histogram over ``bounds``."""
    lo, hi = bounds
    return float(hi) if hi <= lo else otsu_from_histogram(hist, lo, hi)
