"""Plan a run: AOI -> grid -> block layout -> sample windows -> halo.

A *plan* says where every pixel comes from (:class:`PairSource`), how the grid is
cut into blocks (edges on the inputs' internal tiles, so blocks read without
resampling when the grid lies on the input pixel grid), which windows form the
scene sample the methods are fitted on (:func:`sample_windows`), and the window the
co-registration is measured on. A small scene is one block, and its sample is the
whole scene.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from borderwatch.aoi import AOI, aoi_polygon_lonlat, get_aoi
from borderwatch.engine.align import centre_window
from borderwatch.engine.params import DetectParams
from borderwatch.errors import InputError, InternalError
from borderwatch.imagery import ImageryOptions, check_pair, with_options
from borderwatch.io import DateSource, Grid, check_size, choose_grid, open_date
from borderwatch.objects.morphology import clean_mask, default_cleanup_px

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "SAMPLE_PX",
    "BlockLayout",
    "CleanParams",
    "PairSource",
    "Plan",
    "Win",
    "block_halo",
    "block_layout",
    "clean_groups",
    "clean_halo_px",
    "clip_window",
    "make_plan",
    "rename_bands",
    "pair_source",
    "sample_windows",
    "shift_halo_px",
]

#: Default block edge, pixels (aligned up to the input tile size). A scene whose
#: grid fits in one block is processed as one block.
DEFAULT_BLOCK_SIZE = 1024
#: Default sample size, pixels (about 1 Mpx: a 1024 x 1024 scene is fitted whole).
SAMPLE_PX = 1 << 20

Win = tuple[int, int, int, int]  # row0, col0, rows, cols
PathLike = str | os.PathLike[str]
Block = tuple[tuple[int, int], Win]


# --------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class PairSource:
    """Where a block's pixels come from (picklable, shared by every executor).

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
    """

    before: DateSource
    after: DateSource
    grid: Grid
    native: tuple[int, int] | None
    tile: tuple[int, int]

    @property
    def bands(self) -> int:
        """Number of bands per date."""
        return len(self.before.band_names)


def _native_offset(date: DateSource, grid: Grid) -> tuple[tuple[int, int] | None, tuple[int, int]]:
    if len(date.paths) != 1:
        return None, (1, 1)
    with rasterio.open(date.paths[0]) as src:
        shape = src.block_shapes[0] if src.block_shapes else (1, 1)
        tile = (int(shape[0]), int(shape[1]))
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
            return None, tile
        col = (gt.c - tr.c) / tr.a
        row = (gt.f - tr.f) / tr.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None, tile
    return (round(row), round(col)), tile


def pair_source(before: DateSource, after: DateSource, grid: Grid) -> PairSource:
    """Describe how blocks of ``before``/``after`` are read on ``grid``."""
    nb, tb = _native_offset(before, grid)
    na, _ = _native_offset(after, grid)
    native = nb if nb is not None and nb == na else None
    return PairSource(before, after, grid, native, tb)


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class BlockLayout:
    """A regular cut of a grid into blocks.

    Attributes
    ----------
    shape : tuple of int
        Grid ``(rows, cols)``.
    row_edges, col_edges : tuple of int
        Block boundaries in grid pixels, starting at 0 and ending at rows/cols.
    """

    shape: tuple[int, int]
    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]

    def blocks(self) -> list[Block]:
        """``((block_row, block_col), (row0, col0, rows, cols))`` in raster order."""
        out = []
        for i, (r0, r1) in enumerate(zip(self.row_edges[:-1], self.row_edges[1:], strict=True)):
            for j, (c0, c1) in enumerate(zip(self.col_edges[:-1], self.col_edges[1:], strict=True)):
                out.append(((i, j), (r0, c0, r1 - r0, c1 - c0)))
        return out

    def __len__(self) -> int:
        return (len(self.row_edges) - 1) * (len(self.col_edges) - 1)


def _edges(n: int, size: int, offset: int) -> tuple[int, ...]:
    first = (-offset) % size
    cuts = [0] + [p for p in range(first, n, size) if p > 0] + [n]
    return tuple(cuts)


def block_layout(
    shape: tuple[int, int],
    *,
    block_size: int = DEFAULT_BLOCK_SIZE,
    tile: tuple[int, int] = (1, 1),
    offset: tuple[int, int] = (0, 0),
) -> BlockLayout:
    """Cut a grid into blocks whose edges fall on the input's tile edges.

    Parameters
    ----------
    shape : tuple of int
        Grid ``(rows, cols)``.
    block_size : int
        Wanted block edge in pixels; rounded up to a multiple of the tile size.
    tile : tuple of int
        Internal tile ``(rows, cols)`` of the input files.
    offset : tuple of int
        Grid origin in input pixels ``(row, col)``; block edges are placed where
        ``offset + edge`` is a multiple of the block edge.

    Returns
    -------
    BlockLayout

    Examples
    --------
    >>> block_layout((1000, 600), block_size=300, tile=(256, 256)).row_edges
    (0, 512, 1000)
    """
    if block_size < 1:
        raise InputError(f"block size must be >= 1 pixel, got {block_size}")
    bh = math.ceil(block_size / tile[0]) * tile[0]
    bw = math.ceil(block_size / tile[1]) * tile[1]
    return BlockLayout(shape, _edges(shape[0], bh, offset[0]), _edges(shape[1], bw, offset[1]))


def clip_window(win: Win, halo: int, shape: tuple[int, int]) -> tuple[Win, tuple[slice, slice]]:
    """Grow ``win`` by ``halo`` inside ``shape``; return it and the core's slices in it."""
    r0, c0, h, w = win
    R0, C0 = max(r0 - halo, 0), max(c0 - halo, 0)
    R1, C1 = min(r0 + h + halo, shape[0]), min(c0 + w + halo, shape[1])
    core = (slice(r0 - R0, r0 - R0 + h), slice(c0 - C0, c0 - C0 + w))
    return (R0, C0, R1 - R0, C1 - C0), core


# --------------------------------------------------------------------------- sample
def sample_windows(
    shape: tuple[int, int],
    tile: tuple[int, int],
    *,
    sample_px: int = SAMPLE_PX,
    seed: int = 0,
    valid: np.ndarray | None = None,
    valid_step: int = 1,
) -> list[Win]:
    """Windows of the scene sample, in raster order.

    The whole grid when it has at most ``sample_px`` pixels (then every statistic is
    the whole scene's); otherwise a uniform random choice
    (``numpy.random.default_rng(seed)``, without replacement) of tile-aligned windows
    (the input's internal tile, 256 px if it is not tiled) until ``sample_px`` pixels
    are covered.

    With ``valid`` (a coarse valid-data mask, one value per ``valid_step`` x
    ``valid_step`` grid pixels, see :func:`borderwatch.engine.read.coarse_valid`), only
    windows holding a valid pixel are drawn: a sparse scene's sample then falls on its
    data.
    """
    rows, cols = shape
    if rows * cols <= sample_px:
        return [(0, 0, rows, cols)]
    th, tw = tile if min(tile) >= 16 else (256, 256)
    cells = [
        (r, c, min(th, rows - r), min(tw, cols - c))
        for r in range(0, rows, th)
        for c in range(0, cols, tw)
    ]
    if valid is not None:
        k = valid_step
        cells = [
            cell
            for cell in cells
            if valid[
                cell[0] // k : -(-(cell[0] + cell[2]) // k),
                cell[1] // k : -(-(cell[1] + cell[3]) // k),
            ].any()
        ]
    order = np.random.default_rng(seed).permutation(len(cells))
    chosen, total = [], 0
    for k in order:
        chosen.append(int(k))
        total += cells[k][2] * cells[k][3]
        if total >= sample_px:
            break
    return [cells[k] for k in sorted(chosen)]


# --------------------------------------------------------------------------- halos
def shift_halo_px(shift: tuple[float, float] | None) -> int:
    """Pixels of context a bilinear shift by ``shift`` needs (0 when not shifting)."""
    if shift is None:
        return 0
    return int(math.ceil(max(abs(shift[0]), abs(shift[1])))) + 1


def clean_halo_px(*, opening_px: int, closing_px: int) -> int:
    """Halo (pixels) that makes per-block clean-up equal to the whole-array one.

    Opening (erosion then dilation, radius ``o``) reaches ``2 o`` pixels; closing
    likewise ``2 c``.
    """
    return 2 * max(opening_px, 0) + 2 * max(closing_px, 0)


def block_halo(
    shift: tuple[float, float] | None, *, score_halo: int, opening_px: int, closing_px: int
) -> int:
    """Halo read around every block, pixels: the shift's, the score's and the clean-up's."""
    clean = clean_halo_px(opening_px=opening_px, closing_px=closing_px)
    return shift_halo_px(shift) + score_halo + clean


@dataclass(frozen=True)
class CleanParams:
    """Threshold and clean-up settings of the object pass."""

    threshold: float
    opening_px: int
    closing_px: int
    pixel_area_m2: float
    min_area_m2: float = 0.0


def clean_groups(raw: np.ndarray, p: CleanParams) -> np.ndarray:
    """Clean a block's raw mask as :func:`~borderwatch.objects.morphology.clean_mask`, no min area.

    The minimum area applies to whole objects, after the merge across block edges.
    """
    return clean_mask(
        raw,
        pixel_area_m2=p.pixel_area_m2,
        min_area_m2=0.0,
        opening_px=p.opening_px,
        closing_px=p.closing_px,
    )


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Plan:
    """One before/after pair on one grid, cut into blocks (picklable).

    Attributes
    ----------
    source : PairSource
        How blocks are read.
    blocks : list
        ``((block_row, block_col), (row0, col0, rows, cols))`` in raster order.
    params : DetectParams
        Detection parameters.
    aoi : AOI or None
        The area of interest.
    attrs : dict
        Constant attributes of every detection.
    block_size : int
        Requested block edge, pixels.
    started_utc : str
        When the plan was made, ISO 8601 UTC.
    sample : list of tuple
        Windows of the scene sample (:func:`sample_windows`).
    align_window : tuple or None
        Window the co-registration is measured on (None: off).
    sample_px, seed : int
        Sample size (pixels) and seed.
    """

    source: PairSource
    blocks: list[Block]
    params: DetectParams
    aoi: AOI | None
    attrs: dict[str, Any]
    block_size: int
    started_utc: str
    sample: list[Win]
    align_window: Win | None
    sample_px: int = SAMPLE_PX
    seed: int = 0

    @property
    def grid(self) -> Grid:
        """The analysis grid."""
        return self.source.grid

    def cleanup_px(self) -> tuple[int, int]:
        """Return the opening and closing radii, pixels (resolved by :func:`make_plan`)."""
        p = self.params
        if p.opening_px is None or p.closing_px is None:
            raise InternalError("the plan's clean-up radii are unresolved (use make_plan)")
        return p.opening_px, p.closing_px

    def clean(self, threshold: float) -> CleanParams:
        """Clean-up settings with the run's threshold."""
        opening, closing = self.cleanup_px()
        return CleanParams(
            threshold, opening, closing, self.grid.pixel_area, self.params.min_area_m2
        )


def resolve_cleanup(params: DetectParams, pixel_m: float) -> DetectParams:
    """``params`` with unset clean-up radii at the pixel-size rule (:func:`default_cleanup_px`)."""
    radius = default_cleanup_px(pixel_m)
    return dataclasses.replace(
        params,
        opening_px=radius if params.opening_px is None else params.opening_px,
        closing_px=radius if params.closing_px is None else params.closing_px,
    )


def rename_bands(src: DateSource, names: Sequence[str]) -> DateSource:
    """``src`` with its bands named ``names`` (``--bands``), one per band in file order.

    Raises
    ------
    InputError
        ``names`` has another length than the date has bands.
    """
    if len(names) != len(src.band_names):
        raise InputError(
            f"{src.paths[0]}: --bands names {len(names)} bands ({','.join(names)}) but the "
            f"file has {len(src.band_names)} ({','.join(src.band_names)})"
        )
    return dataclasses.replace(src, band_names=tuple(names))


def make_plan(
    before: Sequence[PathLike] | PathLike | DateSource,
    after: Sequence[PathLike] | PathLike | DateSource,
    *,
    aoi: AOI | str | os.PathLike[str] | None = None,
    params: DetectParams | None = None,
    grid: Grid | None = None,
    block_size: int | None = None,
    sample_px: int = SAMPLE_PX,
    seed: int = 0,
    imagery: Mapping[str, ImageryOptions] | None = None,
    allow_reversed: bool = False,
) -> Plan:
    """Open the inputs (headers only), pick the grid and cut it into blocks.

    Parameters
    ----------
    before, after : path, sequence of paths or DateSource
        One multi-band raster, several single-band rasters or a folder per date.
    aoi : AOI, str or path, optional
        Catalogue id/name, AOI file or :class:`~borderwatch.aoi.AOI`; default the
        inputs' overlap.
    params : DetectParams, optional
        Detection parameters.
    grid : Grid, optional
        Analysis grid to use as is; default :func:`borderwatch.io.choose_grid`.
    block_size : int, optional
        Block edge in pixels (rounded up to the input tile size); default
        :data:`DEFAULT_BLOCK_SIZE`.
    sample_px, seed : int
        Sample size in pixels and its seed.
    imagery : mapping, optional
        ``{"before": ImageryOptions, "after": ImageryOptions}``: dates, credits and
        scene ids given by the user, put over the files' (:mod:`borderwatch.imagery`).
    allow_reversed : bool
        Accept a before date later than the after date, and identical inputs.

    Returns
    -------
    Plan

    Raises
    ------
    InputError
        Band counts differ, an input file is smaller than
        :data:`borderwatch.io.MIN_INPUT_PX` on a side, the sample is too small, the
        dates are swapped or both dates are the same imagery
        (:func:`borderwatch.imagery.check_pair`).
    NoOverlapError
        The inputs do not overlap each other or the AOI.
    """
    params = params or DetectParams()
    if sample_px < 1024:
        raise InputError(f"sample of {sample_px} pixels is too small; give at least 1024")
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    area = get_aoi(aoi) if isinstance(aoi, (str, os.PathLike)) else aoi
    b_src = before if isinstance(before, DateSource) else open_date(before)
    a_src = after if isinstance(after, DateSource) else open_date(after)
    check_size(b_src)
    check_size(a_src)
    b_src = with_options(b_src, (imagery or {}).get("before"))
    a_src = with_options(a_src, (imagery or {}).get("after"))
    check_pair(b_src, a_src, allow_reversed=allow_reversed)
    if len(b_src.band_names) != len(a_src.band_names):
        raise InputError(
            f"{a_src.paths[0]}: after date has {len(a_src.band_names)} bands but before date "
            f"({b_src.paths[0]}) has {len(b_src.band_names)}; give the same bands for both dates"
        )
    if params.bands is not None:
        b_src, a_src = (rename_bands(s, params.bands) for s in (b_src, a_src))
    if grid is None:
        grid = choose_grid(
            [b_src, a_src],
            aoi=aoi_polygon_lonlat(area) if area is not None else None,
            crs=params.crs,
            resolution=params.resolution,
            margin_m=params.margin_m,
        )
    src = pair_source(b_src, a_src, grid)
    params = resolve_cleanup(params, math.sqrt(grid.pixel_area))
    size = block_size or DEFAULT_BLOCK_SIZE
    if max(grid.shape) <= size:  # a small scene is one block, whatever its tile offset
        layout = BlockLayout(grid.shape, (0, grid.shape[0]), (0, grid.shape[1]))
    else:
        offset = src.native or (0, 0)
        layout = block_layout(grid.shape, block_size=size, tile=src.tile, offset=offset)
    attrs = {
        "aoi_id": area.id if area is not None else None,
        "before": ";".join(Path(p).name for p in b_src.paths),
        "after": ";".join(Path(p).name for p in a_src.paths),
        "before_date": b_src.date,
        "after_date": a_src.date,
    }
    return Plan(
        src,
        layout.blocks(),
        params,
        area,
        attrs,
        size,
        started,
        sample_windows(grid.shape, src.tile, sample_px=sample_px, seed=seed),
        centre_window(grid.shape) if params.align else None,
        sample_px,
        seed,
    )
