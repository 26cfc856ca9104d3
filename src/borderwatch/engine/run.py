"""The one stage sequence: plan -> fit -> apply per block -> merge -> classify -> rasters.

:func:`detect` is the whole detection of one pair at any scene size. A small scene is
one block whose sample is the whole scene; a large one is many blocks, fitted on a
documented sample (:func:`borderwatch.engine.plan.sample_windows`). The same task
functions run on every executor (:mod:`borderwatch.engine.executors`). Memory is
bounded by ``(workers + prefetch) x block working set`` plus the tile cache and
GDAL's block cache, whatever the scene size.

The score COG (``score_out``) is written from the object pass's blocks as they come
back; the mask COG (``mask_out``) is the final detections rasterised block by block
(no block is scored twice).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
import shapely
from affine import Affine
from threadpoolctl import threadpool_limits

from borderwatch.aoi import AOI
from borderwatch.engine.apply import BlockResult, preview_step, task_block
from borderwatch.engine.executors import Executor, executor_for
from borderwatch.engine.fit import (
    SceneModel,
    densest_window,
    fit_plan,
    fit_scene,
    gives_probability,
    joint_valid,
    redraw_mask,
    task_align,
    task_sample,
    valid_sample_windows,
)
from borderwatch.engine.params import DetectParams
from borderwatch.engine.plan import SAMPLE_PX, Plan, Win, block_halo, clip_window, make_plan
from borderwatch.engine.pool import Progress, each
from borderwatch.engine.read import TileReader, stripe_order
from borderwatch.engine.result import ChangeInfo, DateRef, DetectionRun, Preview
from borderwatch.errors import InputError, InternalError
from borderwatch.imagery import ImageryOptions
from borderwatch.io import DateSource, Grid
from borderwatch.objects.construction import classify_merged
from borderwatch.objects.merge import merge_blocks
from borderwatch.objects.rerank import Reranker, apply_reranker, load_reranker
from borderwatch.products.export import check_writable
from borderwatch.remote import input_sha256 as hash_input
from borderwatch.remote import remote_env

__all__ = ["TILE_CACHE_MB", "detect", "run_plan"]

log = logging.getLogger(__name__)

#: Default memory for decoded tiles awaiting reuse by later halos, MB (see
#: :func:`borderwatch.engine.read.stripe_order`).
TILE_CACHE_MB = 192

PathLike = str | os.PathLike[str]


def _stripe_px(plan: Plan, tile_cache_mb: float) -> int:
    """Stripe width whose decoded tiles (about three tile rows, both dates) fit the budget."""
    src = plan.source
    th, tw = src.tile if min(src.tile) >= 16 else (256, 256)
    itemsize = 4
    if src.native is not None:
        with rasterio.open(src.before.paths[0]) as db, rasterio.open(src.after.paths[0]) as da:
            itemsize = max(np.dtype(dt).itemsize for dt in (*db.dtypes, *da.dtypes))
    per_col = 3 * th * src.bands * 2 * itemsize
    block_w = max((w for _, (_, _, _, w) in plan.blocks), default=tw)
    cols = int(tile_cache_mb * 2**20 // per_col)
    return max(block_w, cols // block_w * block_w)


@dataclass
class _LocalReads:
    """Blocks in visiting order and their halo windows, decoded once by a tile reader."""

    order: list[tuple[tuple[int, int], Win]]
    bigs: list[Win]
    reader: TileReader


def _local_reads(
    plan: Plan, ex: Executor, halo: int, stack: ExitStack, tile_cache_mb: float
) -> _LocalReads | None:
    """Open the tile reader of a local run with native reads (else None).

    Its first blocks' tiles start decoding at once, so they are read while the sample
    is fitted.
    """
    src = plan.source
    if not (ex.local and src.native is not None and len(plan.blocks) > 1):
        return None
    # Column stripes that fit the tile cache; each input tile decoded once per stripe.
    stripe = _stripe_px(plan, tile_cache_mb)
    order = [plan.blocks[k] for k in stripe_order(plan.blocks, stripe_px=stripe)]
    bigs = [clip_window(w, halo, src.grid.shape)[0] for _, w in order]
    groups = [w[1] // stripe for _, w in order]
    reader = stack.enter_context(TileReader(src, bigs, threads=ex.workers, groups=groups))
    for big in bigs[: ex.workers + 1]:
        reader.prefetch(big)
    return _LocalReads(order, bigs, reader)


def _blocks(
    plan: Plan,
    scene: SceneModel,
    ex: Executor,
    progress: Progress | None,
    reads: _LocalReads | None,
    opts: dict[str, Any],
) -> tuple[list[tuple[tuple[int, int], Win]], Any]:
    """Blocks in visiting order and the iterator of their results."""
    src = plan.source
    if reads is None:
        fn = functools.partial(task_block, src, scene, **opts)  # picklable for Dask
        args = [(ij, w) for ij, w in plan.blocks]
        return plan.blocks, each(ex.map, fn, args, progress, "blocks")
    order, bigs, reader = reads.order, reads.bigs, reads.reader

    def one(k: int) -> BlockResult:
        if k + 1 < len(bigs):  # decode the next block's tiles meanwhile
            reader.prefetch(bigs[k + 1])
        return task_block(src, scene, *order[k], reader.read(bigs[k]), **opts)

    return order, each(ex.map, one, [(k,) for k in range(len(order))], progress, "blocks")


def _cog(stack: ExitStack, path: PathLike, grid: Grid, kind: str, overwrite: bool) -> Any:
    from borderwatch.products.rasterout import cog_writer

    if kind == "score":
        return stack.enter_context(
            cog_writer(
                path,
                grid,
                dtype="float32",
                nodata=float("nan"),
                resampling="average",
                overwrite=overwrite,
            )
        )
    return stack.enter_context(
        cog_writer(
            path, grid, dtype="uint8", nodata=None, resampling="nearest", overwrite=overwrite
        )
    )


def rasterise_objects(objects: Any, grid: Grid, win: Win) -> np.ndarray:
    """``uint8 (rows, cols)`` mask of the objects' polygons in a grid window.

    Polygons traced from pixels have their edges on pixel edges, so a pixel is inside
    exactly when it was one of the object's pixels.
    """
    r0, c0, h, w = win
    transform = grid.transform * Affine.translation(c0, r0)
    if not len(objects):
        return np.zeros((h, w), np.uint8)
    left, top = transform * (0, 0)
    right, bottom = transform * (w, h)
    box = shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
    # The frame's spatial index (built once, kept by geopandas) picks the block's objects.
    geoms = objects.geometry.values[objects.sindex.query(box, predicate="intersects")]
    if not len(geoms):
        return np.zeros((h, w), np.uint8)
    return rasterio.features.rasterize(
        [(g, 1) for g in geoms], out_shape=(h, w), transform=transform, fill=0, dtype="uint8"
    )


def _check_reranker(reranker: Reranker, scene: SceneModel, p: DetectParams) -> None:
    """Refuse a re-ranker fitted on another kind of score than the run's."""
    kind = "probability" if gives_probability(p, scene.method) else "standardised"
    if kind != reranker.score_kind:
        raise InputError(
            f"{p.reranker}: re-ranker fitted on {reranker.score_kind} scores, but this "
            f"run's {scene.name} score is {kind}; fit one on reviews of this method"
        )


def run_plan(
    plan: Plan,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    score_out: PathLike | None = None,
    mask_out: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    tile_cache_mb: float = TILE_CACHE_MB,
    raw_mask: bool = False,
) -> DetectionRun:
    """Run a plan: fit, apply per block, merge, classify, write the rasters."""
    src, p = plan.source, plan.params
    reranker = load_reranker(p.reranker) if p.reranker is not None else None  # before the work
    with ExitStack() as stack:
        ex = stack.enter_context(executor_for(scheduler, workers=workers))
        hasher = stack.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderwatch-hash")
        )
        # Blocks are the parallelism: BLAS threads inside them only oversubscribe.
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        # Local files whole; remote ones by the window read (never downloaded whole).
        hashes = {
            q: hasher.submit(hash_input, q, src.grid) for q in (*src.before.paths, *src.after.paths)
        }
        align_win, wins, score_halo = fit_plan(plan)
        align = next(iter(ex.map(task_align, [(src, align_win)])))
        valid = None  # coarse valid mask of both dates, read only for a sparse scene
        if align_win is not None and "align_skipped" in align.info:
            if tuple(align_win[2:]) != tuple(src.grid.shape):  # measure where the data are
                valid = joint_valid(plan)
                dense = densest_window(valid, src.grid.shape, size=max(align_win[2:]))
                if dense != tuple(align_win):
                    align = next(iter(ex.map(task_align, [(src, dense)])))
        log.info("co-registration: %s", {k: align.info[k] for k in ("align", "shift_px")})
        if "align_skipped" in align.info:
            log.warning("%s", align.info["align_skipped"])
        # The blocks' halo is known once the shift is: their first tiles decode meanwhile.
        opening, closing = plan.cleanup_px()
        halo = block_halo(
            align.shift, score_halo=score_halo, opening_px=opening, closing_px=closing
        )
        reads = _local_reads(plan, ex, halo, stack, tile_cache_mb)
        args = [(src, w, align, score_halo) for w in wins]
        samples = list(each(ex.map, task_sample, args, progress, "sample"))
        redrawn = None
        valid = redraw_mask(plan, samples, valid)
        if valid is not None:  # the draw missed most of a sparse scene's data
            redrawn = valid_sample_windows(plan, valid)
            log.info(
                "%s, %s: the sample held few valid pixels; drawn again from the %d windows "
                "holding valid pixels",
                src.before.paths[0],
                src.after.paths[0],
                len(redrawn),
            )
            args = [(src, w, align, score_halo) for w in redrawn]
            samples = list(each(ex.map, task_sample, args, progress, "sample (valid)"))
        scene = fit_scene(plan, align, samples, windows=redrawn)
        if reranker is not None:  # before the blocks
            _check_reranker(reranker, scene, p)
        del samples
        if scene.halo != halo:  # the reads above assumed this halo
            raise InternalError(f"block halo {scene.halo} px differs from the {halo} px read")
        n_wins = len(redrawn if redrawn is not None else wins)
        log.info("fit: %s threshold %.4g (%d windows)", scene.name, scene.threshold, n_wins)
        score_w = _cog(stack, score_out, src.grid, "score", overwrite) if score_out else None
        raw = np.zeros(src.grid.shape, bool) if raw_mask else None
        valid = np.zeros(src.grid.shape, bool) if raw_mask else None
        preview = Preview.empty(src.grid.shape, src.bands, preview_step(src.grid.shape))
        opts = {"want_score": score_w is not None, "want_raw": raw is not None}
        order, results = _blocks(plan, scene, ex, progress, reads, opts)
        summaries = []
        for (_, w), res in zip(order, results, strict=True):
            summaries.append(res.summary)
            preview.add(res.preview)
            if score_w is not None:
                score_w.write(res.score, w)
            if raw is not None and valid is not None:
                raw[w[0] : w[0] + w[2], w[1] : w[1] + w[3]] = res.raw_mask
                valid[w[0] : w[0] + w[2], w[1] : w[1] + w[3]] = res.valid
        log.info("blocks: %d done, merging objects", len(summaries))
        merged = merge_blocks(summaries, src.grid, min_area_m2=p.min_area_m2, attrs=plan.attrs)
        objects = merged.objects
        if p.classify:
            objects = classify_merged(
                objects, merged.crops, scene.classify_context, known=merged.known
            )
        if reranker is not None:
            objects = apply_reranker(objects, reranker)
        log.info("objects: %d detections", len(objects))
        outputs: dict[str, Path] = {}
        if score_out is not None:
            outputs["score"] = Path(score_out)
        if mask_out is not None:
            mask_w = _cog(stack, mask_out, src.grid, "mask", overwrite)
            for _, w in plan.blocks:
                mask_w.write(rasterise_objects(objects, src.grid, w), w)
            outputs["mask"] = Path(mask_out)
        input_sha256 = {q: f.result() for q, f in hashes.items()}
    change_params: dict[str, object] = {
        "method": scene.name,
        "method_requested": p.method if p.model is None else "model",
        "method_reason": scene.method_reason,
        "threshold": p.threshold,
        "threshold_value": scene.threshold,
        "min_area_m2": p.min_area_m2,
        "opening_px": p.opening_px,
        "closing_px": p.closing_px,
        "p_value": p.p_value,
        **scene.align,
        "blockwise": {
            "block_size": plan.block_size,
            "blocks": len(plan.blocks),
            "scheduler": ex.name,
            "sample": scene.sample,
        },
    }
    if reranker is not None:
        change_params["reranker"] = str(p.reranker)
        change_params["reranker_sha256"] = reranker.sha256
        change_params["reranker_reviews"] = {
            "place": reranker.place,
            "confirmed": reranker.confirmed,
            "rejected": reranker.rejected,
        }
    sha = getattr(scene.method, "model_sha256", None)
    if sha is not None:
        model = p.model if p.model is not None else getattr(scene.method, "model_file", None)
        change_params.update(model=str(model), model_sha256=sha)
    return DetectionRun(
        DateRef(src.before, src.grid),
        DateRef(src.after, src.grid),
        ChangeInfo(scene.threshold, scene.name, change_params),
        objects,
        plan.aoi,
        p,
        plan,
        scene,
        plan.started_utc,
        outputs,
        input_sha256,
        preview,
        raw,
        valid,
    )


def detect(
    before: Sequence[PathLike] | PathLike | DateSource,
    after: Sequence[PathLike] | PathLike | DateSource,
    *,
    aoi: AOI | str | os.PathLike[str] | None = None,
    params: DetectParams | None = None,
    grid: Grid | None = None,
    block_size: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    score_out: PathLike | None = None,
    mask_out: PathLike | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
    sample_px: int = SAMPLE_PX,
    seed: int = 0,
    tile_cache_mb: float = TILE_CACHE_MB,
    raw_mask: bool = False,
    imagery: Mapping[str, ImageryOptions] | None = None,
    allow_reversed: bool = False,
) -> DetectionRun:
    """Detect new structures between two dates, at any scene size.

    Parameters
    ----------
    before, after : path, sequence of paths or DateSource
        One multi-band raster, one file per band, or a folder of band files per date.
    aoi : AOI, str or path, optional
        Catalogue id/name, AOI file or :class:`~borderwatch.aoi.AOI`; default the
        inputs' overlap.
    params : DetectParams, optional
        Detection parameters.
    grid : Grid, optional
        Analysis grid; default :func:`borderwatch.io.choose_grid`.
    block_size : int, optional
        Block edge in pixels (rounded up to the input tile size); default
        :data:`borderwatch.engine.plan.DEFAULT_BLOCK_SIZE`.
    scheduler : str, optional
        ``None``/``"local"`` (thread pool), ``"threads"``, ``"processes"``,
        ``"synchronous"`` (Dask) or a dask.distributed address.
    workers : int, optional
        Local threads (default: CPU count).
    score_out, mask_out : path, optional
        Cloud Optimized GeoTIFFs of the score (float32, NaN invalid) and of the final
        detections (uint8, 1 = detection).
    overwrite : bool
        Replace existing output rasters.
    progress : Progress, optional
        Progress sink (:mod:`borderwatch.progress`).
    sample_px, seed : int
        Size (pixels) and seed of the scene sample the methods are fitted on.
    tile_cache_mb : float
        Memory for decoded input tiles kept for later blocks' halos (local runs).
    raw_mask : bool
        Keep the cleaned pixel mask before object filters (``DetectionRun.raw_mask``;
        a whole-grid boolean array, for evaluation on small scenes).
    imagery : mapping, optional
        ``{"before": ImageryOptions, "after": ImageryOptions}``: acquisition dates,
        credits and scene ids given by the user, put over what the files say.
    allow_reversed : bool
        Accept a before date later than the after date, and identical inputs
        (refused by default, before any pixel is read).

    Returns
    -------
    DetectionRun

    Raises
    ------
    InputError
        Bad parameters, band counts that differ, no valid pixel, swapped dates or
        identical inputs.
    NoOverlapError
        The inputs do not overlap each other or the AOI.
    OutputExistsError
        An output exists and ``overwrite`` is False.
    """
    for out in (score_out, mask_out):
        if out is not None:
            check_writable(out, overwrite=overwrite)
    with remote_env([before, after]):  # GDAL settings for URL inputs
        plan = make_plan(
            before,
            after,
            aoi=aoi,
            params=params,
            grid=grid,
            block_size=block_size,
            sample_px=sample_px,
            seed=seed,
            imagery=imagery,
            allow_reversed=allow_reversed,
        )
        log.info(
            "plan: grid %s x %s px at %.3g m, %d blocks, %d sample windows",
            *plan.grid.shape,
            plan.grid.res[0],
            len(plan.blocks),
            len(plan.sample),
        )
        return run_plan(
            plan,
            scheduler=scheduler,
            workers=workers,
            score_out=score_out,
            mask_out=mask_out,
            overwrite=overwrite,
            progress=progress,
            tile_cache_mb=tile_cache_mb,
            raw_mask=raw_mask,
        )
