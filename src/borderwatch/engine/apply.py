"""Apply: score, threshold, clean and summarise one block with the fitted scene model.

Each block is read once with a halo of :attr:`~borderwatch.engine.fit.SceneModel.halo`
pixels (shift + score context + morphological clean-up), shifted, normalised, scored,
thresholded, cleaned and summarised (:mod:`borderwatch.objects.merge`): objects inside
the block are classified there, the others keep pixel crops for the merge.
:func:`task_block` is a pure top-level function of picklable arguments, so every
executor (local threads, Dask, dask.distributed) runs the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from borderwatch.engine.fit import SceneModel
from borderwatch.engine.plan import PairSource, Win, clean_groups, clip_window, shift_halo_px
from borderwatch.engine.read import Pair, read_pair
from borderwatch.methods.arrays import pixels_at
from borderwatch.methods.scores import FittedCombined
from borderwatch.objects.construction import apply_direction
from borderwatch.objects.merge import BlockObjects, BlockSummary, block_objects, summarise_block

__all__ = ["PREVIEW_PX", "BlockPreview", "BlockResult", "preview_step", "task_block"]

#: Longer side, pixels, of the run's preview: each date's valid footprint and the after
#: date's image, sampled every ``preview_step`` grid pixels during the block pass (so
#: the products never read the inputs again for an overview or a footprint).
PREVIEW_PX = 1024


def preview_step(shape: tuple[int, int], max_px: int = PREVIEW_PX) -> int:
    """Grid pixels per preview pixel for a grid of ``shape`` (1 for small grids)."""
    return max(1, -(-max(shape) // max_px))


@dataclass(frozen=True)
class BlockPreview:
    """One block's part of the preview (every ``step``-th grid row and column).

    Attributes
    ----------
    origin : tuple of int
        ``(row, col)`` of the part in the preview.
    valid_before, valid_after : numpy.ndarray
        ``bool`` valid pixels of each date at the sampled pixels.
    after : numpy.ndarray
        ``float32 (bands, rows, cols)`` after-date values at the sampled pixels.
    counts : tuple of int
        Valid pixels of each date in the whole block core (exact).
    """

    origin: tuple[int, int]
    valid_before: np.ndarray
    valid_after: np.ndarray
    after: np.ndarray
    counts: tuple[int, int]


def _preview(p: Pair, core: tuple[slice, slice], win: Win, step: int) -> BlockPreview:
    r0, c0 = win[0], win[1]
    sr, sc = (-r0) % step, (-c0) % step  # first grid row/col on the preview lattice
    rows = slice(core[0].start + sr, core[0].stop, step)
    cols = slice(core[1].start + sc, core[1].stop, step)
    vb, va = p.valid_before[core], p.valid_after[core]
    return BlockPreview(
        ((r0 + sr) // step, (c0 + sc) // step),
        p.valid_before[rows, cols],
        p.valid_after[rows, cols],
        p.after[:, rows, cols],
        (int(vb.sum()), int(va.sum())),
    )


@dataclass(frozen=True)
class BlockResult:
    """What one block task returns.

    Attributes
    ----------
    summary : BlockSummary
        Objects and edges for the merge.
    score : numpy.ndarray or None
        ``float32 (rows, cols)`` score of the block core, when asked for (``--score-out``).
    preview : BlockPreview
        The block's part of the run's preview.
    raw_mask, valid : numpy.ndarray or None
        ``bool (rows, cols)`` thresholded and cleaned mask of the core before any
        object filter, and the core's pixels valid in both dates, when asked for (the
        evaluation's pixel row).
    """

    summary: BlockSummary
    preview: BlockPreview
    score: np.ndarray | None = None
    raw_mask: np.ndarray | None = None
    valid: np.ndarray | None = None


@dataclass(frozen=True)
class _Core:
    score: np.ndarray
    clean: np.ndarray
    valid: np.ndarray
    preview: BlockPreview
    objs: BlockObjects
    direction: np.ndarray | None = None
    verify: np.ndarray | None = None


def _block(src: PairSource, model: SceneModel, win: Win, data: Pair | None) -> _Core:
    big, in_big = clip_window(win, model.halo, src.grid.shape)
    p = data if data is not None else read_pair(src, big)
    preview = _preview(p, in_big, win, preview_step(src.grid.shape))
    before, after, valid = model.prepare(p)
    # Drop the shift's own context: what is left is exact and, away from nodata, all
    # valid (the shift invalidates the outer ring), which the smoothing's fast path needs.
    inner, core = clip_window(win, model.halo - shift_halo_px(model.shift), src.grid.shape)
    cut = (
        slice(inner[0] - big[0], inner[0] - big[0] + inner[2]),
        slice(inner[1] - big[1], inner[1] - big[1] + inner[3]),
    )
    before, after, valid = before[(slice(None), *cut)], after[(slice(None), *cut)], valid[cut]
    score_at = getattr(model.method, "score_at", None)  # a score on a global pixel phase
    if score_at is not None:
        score = score_at(before, after, valid, origin=(inner[0], inner[1]))
    else:
        score = model.method.score(before, after, valid)
    raw = score > model.threshold  # NaN (invalid) compares False
    score_c = score[core]
    clean = clean_groups(raw, model.clean)[core]
    objs = block_objects(
        clean,
        valid[core],
        pixel_area=model.clean.pixel_area_m2,
        min_area_m2=model.clean.min_area_m2,
    )
    if model.direction is None or not objs.nf:
        return _Core(score_c, clean, valid[core], preview, objs)
    # Direction evidence is per pixel: evaluate it at the object pixels only.
    pick = (slice(None), *core)
    direction = np.zeros(objs.f_lab.shape, np.float32)
    direction.ravel()[objs.pos] = apply_direction(
        model.direction,
        pixels_at(before[pick], objs.pos)[:, :, None],
        pixels_at(after[pick], objs.pos)[:, :, None],
        np.ones((objs.pos.size, 1), bool),
    )[:, 0]
    verify = None
    if isinstance(model.method, FittedCombined):
        # The rank-model peak, needed only where an object can still be kept: it
        # reaches the block edge, or it is big enough and passes the linear peak and
        # direction rules.
        need = objs.may_keep(
            objs.per_object_max(score_c, fill=-np.inf),
            None,
            objs.per_object_mean(direction),
            model.name,
        )
        asked = np.zeros(objs.f_lab.shape, bool)
        asked.ravel()[objs.pos] = need[objs.lab]
        where = np.zeros(valid.shape, bool)
        where[core] = asked
        verify = model.method.verify(before, after, valid, where)[core]
    return _Core(score_c, clean, valid[core], preview, objs, direction, verify)


def task_block(
    src: PairSource,
    model: SceneModel,
    index: tuple[int, int],
    win: Win,
    data: Pair | None = None,
    *,
    want_score: bool = False,
    want_raw: bool = False,
) -> BlockResult:
    """Score, threshold, clean and summarise one block.

    Parameters
    ----------
    src : PairSource
        The pair.
    model : SceneModel
        The fitted scene model.
    index : tuple of int
        ``(block_row, block_col)``.
    win : tuple of int
        The block core ``(row0, col0, rows, cols)``.
    data : Pair, optional
        The block's halo window, when already read (the local tile reader).
    want_score, want_raw : bool
        Return the core's score / cleaned mask too.

    Returns
    -------
    BlockResult
    """
    c = _block(src, model, win, data)
    summary = summarise_block(
        index,
        c.objs,
        c.score,
        row0=win[0],
        col0=win[1],
        grid=src.grid,
        direction=c.direction,
        verify=c.verify,
        classify=model.classify_context if c.direction is not None else None,
    )
    return BlockResult(
        summary,
        c.preview,
        c.score.astype(np.float32, copy=False) if want_score else None,
        c.clean if want_raw else None,
        c.valid if want_raw else None,
    )
