"""Block-by-block detection: any scene size at bounded memory, equal to the in-memory path.

:func:`run_detect_blocks` computes what :func:`borderwatch.pipeline.run_detect`
computes, without ever holding a whole scene:

1. *Layout*: the analysis grid is cut into blocks of ``block_size`` pixels whose
   edges fall on the inputs' internal tile edges when the grid lies on the input
   pixel grid (then blocks are read without resampling).
2. *Moments pass*: each block is read once; per-band moments of the difference
   (for the standardisation of CVA) are merged exactly
   (:class:`~borderwatch.blockstats.BandMoments`). With the local scheduler the
   per-band difference goes to an uncompressed, block-contiguous scratch file, so
   later passes never decode the inputs again.
3. *Score pass*: scores per block (to a scratch file, locally) and, for Otsu, the
   exact extremes needed for its clipping percentiles; then a histogram pass.
   Thresholds are therefore *exact* (equal to the whole-array value), not sampled.
4. *Objects pass*: each block is read with a halo of
   ``2 * (opening_px + closing_px)`` pixels so that the morphological clean-up
   equals the whole-array result in the block core; connected objects are merged
   across block edges (:mod:`borderwatch.blockmerge`).
5. *Raster pass* (only with ``score_out``/``mask_out``): blocks streamed to Cloud
   Optimized GeoTIFFs (:mod:`borderwatch.rasterout`).

Every pass maps one top-level function over blocks. The local scheduler runs them on
a thread pool with a bounded number of blocks in flight (reading, which releases the
GIL, overlaps computing); :mod:`borderwatch.dask_run` runs the *same* functions as
dask tasks. Memory is bounded by ``(workers + prefetch) x block working set`` plus
the GDAL block cache, which is capped at
:data:`borderwatch.blocktasks.GDAL_CACHE_MB`.

Methods that run blockwise are listed in :data:`borderwatch.blocktasks.BLOCK_METHODS`
(``cva``, with a fixed or ``otsu`` threshold); the whole-scene steps of ``run_detect``
in :data:`BLOCK_UNSUPPORTED` (co-registration, normalisation, classification) must be
switched off. Anything else raises :class:`~borderwatch.errors.InputError`: it is never
silently replaced.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from threadpoolctl import threadpool_limits

from borderwatch.align import centre_window
from borderwatch.aoi import AOI, aoi_polygon_lonlat, get_aoi
from borderwatch.blockclassify import classify_merged
from borderwatch.blockexec import Progress, each, local_mapper
from borderwatch.blockmerge import merge_blocks
from borderwatch.blockpass import (
    ONE_PASS_METHODS,
    SAMPLE_PX,
    AlignResult,
    Sample,
    SceneModel,
    block_halo,
    fit_scene,
    sample_windows,
    task_align,
    task_block,
    task_block_raster,
    task_sample,
)
from borderwatch.blockread import TileReader, stripe_order
from borderwatch.blockstats import BandMoments, Extremes, merge_histograms
from borderwatch.blocktasks import (
    BLOCK_METHODS,
    CleanParams,
    PairSource,
    Win,
    clip_window,
    create_cache,
    fit_model,
    merge_extremes,
    otsu_bounds,
    pair_source,
    promote_cache,
    task_histogram,
    task_moments,
    task_objects,
    task_raster,
    task_score,
    threshold_from_histogram,
)
from borderwatch.change import THRESHOLDS, combined_halo_px, threshold_score
from borderwatch.errors import InputError, InternalError
from borderwatch.export import check_writable, sha256_file
from borderwatch.io import DateSource, Grid, choose_grid, open_date

__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "BLOCK_UNSUPPORTED",
    "BlockJob",
    "BlockLayout",
    "BlockRun",
    "IN_MEMORY_MAX_PIXELS",
    "block_layout",
    "needs_blocks",
    "finish_run",
    "fit_job",
    "fit_plan",
    "prepare_job",
    "resolve_threshold",
    "run_detect_blocks",
    "write_rasters",
]

#: Default memory for decoded tiles awaiting reuse by later halos, MB (see
#: :func:`borderwatch.blockread.stripe_order`).
TILE_CACHE_MB = 192
#: Default block edge, pixels (aligned up to the input tile size).
DEFAULT_BLOCK_SIZE = 1024
#: Whole-scene steps of ``run_detect`` that do not run block by block yet, with the
#: value that switches each off (co-registration, radiometric normalisation, object
#: classification).
BLOCK_UNSUPPORTED: dict[str, Any] = {"align": False, "normalise": "none", "classify": False}
#: Grids with more pixels than this run block by block in ``detect`` even without
#: ``--block-size``: the in-memory path needs about 50 bytes per pixel or more for a
#: 4-band pair (3.4 GB at 8192 x 8192); this keeps it to about 1 GB (a 4096-pixel
#: square input with its margin still runs in memory).
IN_MEMORY_MAX_PIXELS = 20_000_000

PathLike = str | os.PathLike[str]
Block = tuple[tuple[int, int], Win]


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

    def blocks(self) -> list[tuple[tuple[int, int], Win]]:
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


# --------------------------------------------------------------------------- driver
@dataclass(frozen=True)
class BlockJob:
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
        Constant attributes of every detection (as in ``run_detect``).
    block_size : int
        Requested block edge, pixels.
    started_utc : str
        When the job was prepared.
    stats : {"sample", "exact"}
        Global statistics from a sample in one pass (:mod:`borderwatch.blockpass`), or
        exact streaming passes (``cva`` without co-registration or classification).
    sample_px : int
        Sample size, pixels (``stats="sample"``).
    seed : int
        Seed of the random sample windows.
    """

    source: PairSource
    blocks: list[Block]
    params: Any
    aoi: AOI | None
    attrs: dict[str, Any]
    block_size: int
    started_utc: str
    stats: str = "sample"
    sample_px: int = SAMPLE_PX
    seed: int = 0


def prepare_job(
    before: Sequence[PathLike] | PathLike,
    after: Sequence[PathLike] | PathLike,
    *,
    aoi: AOI | str | None = None,
    params: Any = None,
    grid: Grid | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    stats: str = "sample",
    sample_px: int = SAMPLE_PX,
    seed: int = 0,
) -> BlockJob:
    """Open the inputs, pick the grid (as ``run_detect`` does) and cut it into blocks.

    Raises
    ------
    InputError
        The method, threshold or a whole-scene step cannot run block by block, or
        band counts differ.
    NoOverlapError
        The inputs do not overlap each other or the AOI.
    """
    from borderwatch.pipeline import DetectParams

    params = params or DetectParams()
    if stats == "sample":
        _check_sampled(params)
    elif stats == "exact":
        _check_exact(params)
    else:
        raise InputError(f"unknown statistics mode {stats!r}; use 'sample' or 'exact'")
    if sample_px < 1024:
        raise InputError(f"sample of {sample_px} pixels is too small; give at least 1024")
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    area = get_aoi(aoi) if isinstance(aoi, (str, os.PathLike)) else aoi
    b_src, a_src = open_date(before), open_date(after)
    if len(b_src.band_names) != len(a_src.band_names):
        raise InputError(
            f"{a_src.paths[0]}: after date has {len(a_src.band_names)} bands but before date "
            f"({b_src.paths[0]}) has {len(b_src.band_names)}; give the same bands for both dates"
        )
    if grid is None:
        grid = choose_grid(
            [b_src, a_src],
            aoi=aoi_polygon_lonlat(area) if area is not None else None,
            crs=params.crs,
            resolution=params.resolution,
            margin_m=params.margin_m,
        )
    src = pair_source(b_src, a_src, grid)
    layout = block_layout(
        grid.shape, block_size=block_size, tile=src.tile, offset=src.native or (0, 0)
    )
    attrs = {
        "aoi_id": area.id if area is not None else None,
        "before": ";".join(Path(p).name for p in b_src.paths),
        "after": ";".join(Path(p).name for p in a_src.paths),
        "before_date": b_src.date,
        "after_date": a_src.date,
    }
    return BlockJob(
        src, layout.blocks(), params, area, attrs, block_size, started, stats, sample_px, seed
    )


def _unknown_threshold(params: Any) -> None:
    if isinstance(params.threshold, str) and params.threshold not in THRESHOLDS:
        threshold_score(np.zeros(1), np.ones(1, bool), params.threshold)  # InputError


def _check_sampled(params: Any) -> None:
    """Refuse what the single pass cannot do (never silently replaced)."""
    if getattr(params, "model", None) is not None:
        raise InputError(
            "--model (a trained classifier) cannot run block by block yet; run it in "
            "memory on a scene that fits"
        )
    if params.method not in ONE_PASS_METHODS:
        raise InputError(
            f"method {params.method!r} cannot run block by block yet (blockwise methods: "
            f"{sorted(ONE_PASS_METHODS)}); use --method combined or cva, or run without "
            "--block-size/--scheduler on a scene that fits in memory"
        )
    _unknown_threshold(params)
    if isinstance(params.threshold, str) and params.threshold not in ("ki", "otsu"):
        raise InputError(
            f"threshold {params.threshold!r} cannot run block by block; use ki, otsu or a number"
        )
    if getattr(params, "normalise", "none") != "none":
        raise InputError(
            f"block-by-block runs do not do normalise={params.normalise!r} yet; pass "
            "--normalise none or run in memory on a scene that fits"
        )


def _check_exact(params: Any) -> None:
    if params.method not in BLOCK_METHODS:
        raise InputError(
            f"method {params.method!r} cannot run block by block with exact statistics "
            f"(exact methods: {sorted(BLOCK_METHODS)}); use stats='sample'"
        )
    _unknown_threshold(params)
    if isinstance(params.threshold, str):
        if params.threshold != "otsu":
            raise InputError(
                f"threshold {params.threshold!r} cannot run block by block; use otsu or a number"
            )
    whole_scene = [
        name for name, off in BLOCK_UNSUPPORTED.items() if getattr(params, name, off) != off
    ]
    if whole_scene:
        fix = ", ".join(f"{n}={BLOCK_UNSUPPORTED[n]!r}" for n in whole_scene)
        raise InputError(
            f"exact block-by-block statistics do not do {', '.join(whole_scene)}; pass "
            f"DetectParams({fix}) or use stats='sample'"
        )


@dataclass(frozen=True)
class _DateRef:
    source: DateSource
    grid: Grid


@dataclass(frozen=True)
class _ChangeRef:
    threshold: float
    method: str
    params: dict[str, object]


@dataclass(frozen=True)
class BlockRun:
    """Result of :func:`run_detect_blocks`.

    Shaped like :class:`borderwatch.pipeline.DetectionRun` without the pixel arrays,
    so :func:`borderwatch.pipeline.run_metadata` and the CLI summary accept it.

    Attributes
    ----------
    before, after : object
        ``.source`` (:class:`~borderwatch.io.DateSource`) and ``.grid`` of each date.
    change : object
        ``.threshold``, ``.method`` and ``.params`` (as in ``ChangeResult``).
    objects : geopandas.GeoDataFrame
        One polygon per detection, grid CRS, same columns as the in-memory path.
    aoi : AOI or None
        The area of interest.
    params : DetectParams
        Parameters used.
    started_utc : str
        Start time, ISO 8601 UTC.
    blocks : int
        Number of blocks processed.
    outputs : dict
        ``{"score": path, "mask": path}`` of the rasters written.
    input_sha256 : dict
        SHA-256 of every input file by path, hashed while the blocks were processed.
    """

    before: _DateRef
    after: _DateRef
    change: _ChangeRef
    objects: gpd.GeoDataFrame
    aoi: AOI | None
    params: Any
    started_utc: str = ""
    blocks: int = 0
    outputs: dict[str, Path] = field(default_factory=dict)
    input_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def grid(self) -> Grid:
        """Analysis grid."""
        return self.before.grid

    @property
    def total_area_m2(self) -> float:
        """Total area of all detections, m2."""
        return float(self.objects["area_m2"].sum()) if len(self.objects) else 0.0


def clean_params(job: BlockJob, value: float) -> CleanParams:
    """Threshold value and clean-up settings of ``job``."""
    p = job.params
    return CleanParams(value, p.opening_px, p.closing_px, job.source.grid.pixel_area, p.min_area_m2)


def resolve_threshold(job: BlockJob) -> float | None:
    """Return the fixed threshold value, or ``None`` when it must be computed (otsu)."""
    t = job.params.threshold
    return None if isinstance(t, str) else threshold_score(np.zeros(1), np.ones(1, bool), t)


def finish_run(
    job: BlockJob,
    value: float,
    summaries: Sequence[Any],
    scheduler: str,
    scene: SceneModel | None = None,
) -> tuple[BlockRun, dict[tuple[int, int], np.ndarray]]:
    """Merge block summaries into the run result (shared by every scheduler).

    With ``scene`` (single-pass runs), the merged objects are classified when the
    parameters ask for it, and the co-registration and sample are recorded.
    """
    src, p = job.source, job.params
    merged = merge_blocks(summaries, src.grid, min_area_m2=p.min_area_m2, attrs=job.attrs)
    blockwise: dict[str, object] = {
        "block_size": job.block_size,
        "blocks": len(job.blocks),
        "scheduler": scheduler,
        "statistics": job.stats,
    }
    change_params: dict[str, object] = {
        "method": p.method,
        "threshold": p.threshold,
        "threshold_value": value,
        "min_area_m2": p.min_area_m2,
        "opening_px": p.opening_px,
        "closing_px": p.closing_px,
        "p_value": p.p_value,
    }
    objects = merged.objects
    if scene is None:
        blockwise["not_applied"] = sorted(BLOCK_UNSUPPORTED)
    else:
        change_params.update(scene.align)
        blockwise["sample"] = scene.sample
        if p.classify:
            objects = classify_merged(
                objects, merged.crops, scene.classify_context, known=merged.known
            )
    change_params["blockwise"] = blockwise
    run = BlockRun(
        _DateRef(src.before, src.grid),
        _DateRef(src.after, src.grid),
        _ChangeRef(value, p.method, change_params),
        objects,
        job.aoi,
        p,
        job.started_utc,
        len(job.blocks),
    )
    return run, merged.keep


def run_detect_blocks(
    before: Sequence[PathLike] | PathLike,
    after: Sequence[PathLike] | PathLike,
    *,
    aoi: AOI | str | None = None,
    params: Any = None,
    grid: Grid | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    scheduler: str | None = None,
    score_out: PathLike | None = None,
    mask_out: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    workers: int | None = None,
    scratch_dir: PathLike | None = None,
    stats: str = "sample",
    sample_px: int = SAMPLE_PX,
    seed: int = 0,
    tile_cache_mb: float = TILE_CACHE_MB,
) -> BlockRun:
    """Detect change block by block, with results equal to ``run_detect``.

    Parameters
    ----------
    before, after : path or sequence of paths
        One multi-band raster or several single-band rasters per date.
    aoi : AOI or str, optional
        Area of interest (catalogue id/name, file, or :class:`AOI`).
    params : DetectParams, optional
        Detection parameters (method must be in
        :data:`borderwatch.blocktasks.BLOCK_METHODS`).
    grid : Grid, optional
        Analysis grid; default as :func:`borderwatch.io.choose_grid` picks it.
    block_size : int
        Block edge in pixels (rounded up to the input tile size).
    scheduler : str, optional
        ``None``/``"local"``: this process, thread pool and scratch cache;
        ``"threads"``, ``"processes"``, ``"synchronous"`` or a dask.distributed
        address (``tcp://host:8786``): the same block functions as dask tasks
        (see :mod:`borderwatch.dask_run`).
    score_out, mask_out : path, optional
        Cloud Optimized GeoTIFFs of the score (float32, NaN invalid) and the final
        mask (uint8, 1 = detection).
    overwrite : bool
        Replace existing output rasters.
    progress : Progress, optional
        Progress sink (see :mod:`borderwatch.progress`); local scheduler only.
    workers : int, optional
        Local threads (default: CPU count).
    scratch_dir : path, optional
        Folder for the local scratch cache of ``stats="exact"`` (default: the system
        temp folder). It needs ``4 x (bands + 1)`` bytes per grid pixel, removed at
        the end.
    stats : {"sample", "exact"}
        ``"sample"`` (default): one read of the inputs, global statistics from the
        sample described in :mod:`borderwatch.blockpass` (the whole scene up to
        ``sample_px`` pixels); every method in
        :data:`~borderwatch.blockpass.ONE_PASS_METHODS`, with co-registration and
        classification. ``"exact"``: statistics streamed exactly over all pixels in
        several passes (``cva`` only, no co-registration or classification), so
        masks are identical to the in-memory path for any scene size.
    sample_px : int
        Sample size, pixels.
    seed : int
        Seed of the sample windows.
    tile_cache_mb : float
        Memory for decoded input tiles kept for later blocks' halos (local single
        pass); blocks are visited in column stripes narrow enough to fit it.

    Returns
    -------
    BlockRun

    Raises
    ------
    InputError
        The method or threshold cannot run blockwise, or band counts differ.
    NoOverlapError
        The inputs do not overlap.
    """
    for out in (score_out, mask_out):
        if out is not None:
            check_writable(out, overwrite=overwrite)
    job = prepare_job(
        before,
        after,
        aoi=aoi,
        params=params,
        grid=grid,
        block_size=block_size,
        stats=stats,
        sample_px=sample_px,
        seed=seed,
    )
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderwatch-hash") as hasher,
        # Blocks are the parallelism: BLAS threads inside them only oversubscribe the CPUs.
        threadpool_limits(limits=1, user_api="blas"),
    ):
        # Provenance hashes are computed alongside the blocks, not after them.
        paths = [*job.source.before.paths, *job.source.after.paths]
        hashes = {p: hasher.submit(sha256_file, p) for p in paths}
        run = _run_job(
            job,
            scheduler=scheduler,
            score_out=score_out,
            mask_out=mask_out,
            overwrite=overwrite,
            progress=progress,
            workers=workers,
            scratch_dir=scratch_dir,
            tile_cache_mb=tile_cache_mb,
        )
        return replace(run, input_sha256={p: f.result() for p, f in hashes.items()})


def _run_job(
    job: BlockJob,
    *,
    scheduler: str | None,
    score_out: PathLike | None,
    mask_out: PathLike | None,
    overwrite: bool,
    progress: Progress | None,
    workers: int | None,
    scratch_dir: PathLike | None,
    tile_cache_mb: float,
) -> BlockRun:
    if scheduler not in (None, "local"):
        from borderwatch.dask_run import run_job_dask

        return run_job_dask(
            job, scheduler=scheduler, score_out=score_out, mask_out=mask_out, overwrite=overwrite
        )
    if job.stats == "sample":
        return _run_sampled(
            job,
            tile_cache_mb=tile_cache_mb,
            score_out=score_out,
            mask_out=mask_out,
            overwrite=overwrite,
            progress=progress,
            workers=workers,
        )
    mapper = local_mapper(workers=workers)
    with tempfile.TemporaryDirectory(prefix="borderwatch-blocks-", dir=scratch_dir) as tmp:
        src = PairSource(
            job.source.before,
            job.source.after,
            job.source.grid,
            job.source.native,
            job.source.tile,
            tmp,
        )
        create_cache(src, {"diff_tmp": src.bands, "score_tmp": 1})
        wins = [w for _, w in job.blocks]
        moments = BandMoments.total(
            each(mapper, task_moments, [(src, w) for w in wins], progress, "reading")
        )
        promote_cache(src, ["diff"])
        model = fit_model(job.params.method, moments)
        value = resolve_threshold(job)
        # The score pass also fills the score scratch that the later passes read.
        k = Extremes.needed_k(moments.n) if value is None else 0
        parts = list(
            each(mapper, task_score, [(src, model, w, k) for w in wins], progress, "scoring")
        )
        promote_cache(src, ["score"])
        if value is None:
            ext = merge_extremes(parts)
            bounds = otsu_bounds(ext)
            hist = merge_histograms(
                each(
                    mapper,
                    task_histogram,
                    [(src, model, w, *bounds) for w in wins],
                    progress,
                    "threshold",
                )
            )
            value = threshold_from_histogram(hist, bounds)
        cp = clean_params(job, value)
        summaries = list(
            each(
                mapper,
                task_objects,
                [(src, model, ij, w, cp) for ij, w in job.blocks],
                progress,
                "objects",
            )
        )
        run, keep = finish_run(job, value, summaries, "local")
        args = [(src, model, w, cp, keep[ij]) for ij, w in job.blocks]
        return _with_rasters(
            run, job, mapper, task_raster, args, progress, outs=(score_out, mask_out, overwrite)
        )
    return run


def fit_plan(job: BlockJob) -> tuple[Win | None, list[Win], int]:
    """Alignment window (None: off), sample windows and score halo of a sampled job."""
    src, p = job.source, job.params
    align_win = centre_window(src.grid.shape) if p.align else None
    wins = sample_windows(src.grid.shape, src.tile, sample_px=job.sample_px, seed=job.seed)
    pixel_m = math.sqrt(src.grid.pixel_area)
    score_halo = combined_halo_px(pixel_m) if p.method == "combined" else 0
    return align_win, wins, score_halo


def fit_job(job: BlockJob, align: AlignResult, samples: Sequence[Sample]) -> SceneModel:
    """Fit the scene model of a sampled job from its alignment and samples."""
    p, src = job.params, job.source
    _, wins, _ = fit_plan(job)
    info: dict[str, object] = {
        "windows": len(wins),
        "pixels": int(sum(w[2] * w[3] for w in wins)),
        "sample_px": job.sample_px,
        "seed": job.seed,
        "whole_scene": len(wins) == 1,
    }
    return fit_scene(
        samples,
        align,
        method=p.method,
        threshold=p.threshold,
        clean=clean_params(job, 0.0),
        band_names=src.before.band_names,
        classify=p.classify,
        sample_info=info,
    )


def _stripe_px(job: BlockJob, tile_cache_mb: float) -> int:
    """Stripe width whose decoded tiles (about three tile rows, both dates) fit the budget.

    Tiles are kept in the files' own data type (uint16 takes half of float32), so a
    scene whose rows fit is visited in one stripe and no tile is decoded twice.
    """
    src = job.source
    th, tw = src.tile if min(src.tile) >= 16 else (256, 256)
    itemsize = 4  # float32: the upper bound where the files' type is not at hand
    if src.native is not None:
        with rasterio.open(src.before.paths[0]) as db, rasterio.open(src.after.paths[0]) as da:
            itemsize = max(np.dtype(dt).itemsize for dt in (*db.dtypes, *da.dtypes))
    per_col = 3 * th * src.bands * 2 * itemsize  # bytes per grid column
    block_w = max((w for _, (_, _, _, w) in job.blocks), default=tw)
    cols = int(tile_cache_mb * 2**20 // per_col)
    return max(block_w, cols // block_w * block_w)


def _run_sampled(
    job: BlockJob,
    *,
    tile_cache_mb: float,
    score_out: PathLike | None,
    mask_out: PathLike | None,
    overwrite: bool,
    progress: Progress | None,
    workers: int | None,
) -> BlockRun:
    """Local single-pass run: fit on the sample, then one halo read per block."""
    src, p = job.source, job.params
    align_win, wins, score_halo = fit_plan(job)
    align = task_align(src, align_win)
    # The blocks' halo is known once the shift is: the first blocks' tiles are decoded
    # while the sample is read and the model fitted.
    halo = block_halo(
        align.shift, score_halo=score_halo, opening_px=p.opening_px, closing_px=p.closing_px
    )
    stripe_px = _stripe_px(job, tile_cache_mb)
    order = [job.blocks[k] for k in stripe_order(job.blocks, stripe_px=stripe_px)]
    bigs = [clip_window(w, halo, src.grid.shape)[0] for _, w in order]
    n = workers or os.cpu_count() or 1
    mapper = local_mapper(workers=workers)
    with ExitStack() as stack:
        reader = (
            stack.enter_context(
                TileReader(src, bigs, threads=n, groups=[w[1] // stripe_px for _, w in order])
            )
            if src.native is not None
            else None
        )
        for big in bigs[: n + 1] if reader is not None else []:
            reader.prefetch(big)
        samples = list(
            each(
                mapper, task_sample, [(src, w, align, score_halo) for w in wins], progress, "sample"
            )
        )
        scene = fit_job(job, align, samples)
        del samples
        if scene.halo != halo:  # the reads above assumed this halo
            raise InternalError(f"block halo {scene.halo} px differs from the {halo} px read")

        def one(k: int) -> Any:
            if reader is None:
                return task_block(src, scene, *order[k])
            for ahead in (k + 1,):  # decode the next block's tiles meanwhile
                if ahead < len(bigs):
                    reader.prefetch(bigs[ahead])
            return task_block(src, scene, *order[k], reader.read(bigs[k]))

        summaries = list(each(mapper, one, [(k,) for k in range(len(order))], progress, "blocks"))
    run, keep = finish_run(job, scene.threshold, summaries, "local", scene)
    args = [(src, scene, w, keep[ij]) for ij, w in job.blocks]
    return _with_rasters(
        run, job, mapper, task_block_raster, args, progress, outs=(score_out, mask_out, overwrite)
    )


def _with_rasters(
    run: BlockRun,
    job: BlockJob,
    mapper: Any,
    task: Any,
    args: list[tuple[Any, ...]],
    progress: Progress | None,
    *,
    outs: tuple[PathLike | None, PathLike | None, bool],
) -> BlockRun:
    """Stream the score / mask COGs of a finished run, when asked for; else ``run``."""
    score_out, mask_out, overwrite = outs
    if score_out is None and mask_out is None:
        return run
    outputs = write_rasters(
        job.source.grid,
        [w for _, w in job.blocks],
        each(mapper, task, args, progress, "writing"),
        score_out=score_out,
        mask_out=mask_out,
        overwrite=overwrite,
    )
    return replace(run, outputs=outputs)


def write_rasters(
    grid: Grid,
    wins: Sequence[Win],
    blocks: Iterator[tuple[np.ndarray, np.ndarray]],
    *,
    score_out: PathLike | None,
    mask_out: PathLike | None,
    overwrite: bool,
) -> dict[str, Path]:
    """Stream ``(mask, score)`` blocks, in ``wins`` order, into COGs."""
    from borderwatch.rasterout import cog_writer

    with ExitStack() as stack:
        score_w = mask_w = None
        if score_out is not None:
            score_w = stack.enter_context(
                cog_writer(
                    score_out,
                    grid,
                    dtype="float32",
                    nodata=float("nan"),
                    resampling="average",
                    overwrite=overwrite,
                )
            )
        if mask_out is not None:
            mask_w = stack.enter_context(
                cog_writer(
                    mask_out,
                    grid,
                    dtype="uint8",
                    nodata=None,
                    resampling="nearest",
                    overwrite=overwrite,
                )
            )
        for w, (mask, score) in zip(wins, blocks, strict=True):
            if score_w is not None:
                score_w.write(score, w)
            if mask_w is not None:
                mask_w.write(mask, w)
    out: dict[str, Path] = {}
    if score_out is not None:
        out["score"] = Path(score_out)
    if mask_out is not None:
        out["mask"] = Path(mask_out)
    return out


def needs_blocks(
    before: Sequence[PathLike] | PathLike,
    after: Sequence[PathLike] | PathLike,
    *,
    aoi: AOI | str | None = None,
    params: Any = None,
) -> bool:
    """Whether the analysis grid exceeds :data:`IN_MEMORY_MAX_PIXELS` (headers only)."""
    from borderwatch.pipeline import DetectParams

    params = params or DetectParams()
    area = get_aoi(aoi) if isinstance(aoi, (str, os.PathLike)) else aoi
    b_src, a_src = open_date(before), open_date(after)
    grid = choose_grid(
        [b_src, a_src],
        aoi=aoi_polygon_lonlat(area) if area is not None else None,
        crs=params.crs,
        resolution=params.resolution,
        margin_m=params.margin_m,
    )
    return grid.shape[0] * grid.shape[1] > IN_MEMORY_MAX_PIXELS
