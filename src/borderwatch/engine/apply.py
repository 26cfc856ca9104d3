"""Apply: score, threshold, clean and summarise one block with the fitted scene model.

Each block is read once with a halo of :attr:`~borderwatch.engine.fit.SceneModel.halo`
pixels (shift + score context + morphological clean-up), shifted, normalised, scored,
thresholded, cleaned and summarised (:mod:`borderwatch.blockmerge`): objects inside
the block are classified there, the others keep pixel crops for the merge.
:func:`task_block` is a pure top-level function of picklable arguments, so every
executor (local threads, Dask, dask.distributed) runs the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from borderwatch.blockclassify import apply_direction
from borderwatch.blockmerge import BlockObjects, BlockSummary, block_objects, summarise_block
from borderwatch.blockread import Pair, read_pair
from borderwatch.change import pixels_at
from borderwatch.engine.fit import SceneModel
from borderwatch.engine.plan import PairSource, Win, clean_groups, clip_window, shift_halo_px
from borderwatch.methods.scores import FittedCombined

__all__ = ["BlockResult", "task_block"]


@dataclass(frozen=True)
class BlockResult:
    """What one block task returns.

    Attributes
    ----------
    summary : BlockSummary
        Objects and edges for the merge.
    score : numpy.ndarray or None
        ``float32 (rows, cols)`` score of the block core, when asked for (``--score-out``).
    raw_mask : numpy.ndarray or None
        ``bool (rows, cols)`` thresholded and cleaned mask of the core before any
        object filter, when asked for (the evaluation's pixel row).
    """

    summary: BlockSummary
    score: np.ndarray | None = None
    raw_mask: np.ndarray | None = None


@dataclass(frozen=True)
class _Core:
    score: np.ndarray
    clean: np.ndarray
    objs: BlockObjects
    direction: np.ndarray | None = None
    verify: np.ndarray | None = None


def _block(src: PairSource, model: SceneModel, win: Win, data: Pair | None) -> _Core:
    big, _ = clip_window(win, model.halo, src.grid.shape)
    p = data if data is not None else read_pair(src, big)
    before, after, valid = model.prepare(p)
    # Drop the shift's own context: what is left is exact and, away from nodata, all
    # valid (the shift invalidates the outer ring), which the smoothing's fast path needs.
    inner, core = clip_window(win, model.halo - shift_halo_px(model.shift), src.grid.shape)
    cut = (
        slice(inner[0] - big[0], inner[0] - big[0] + inner[2]),
        slice(inner[1] - big[1], inner[1] - big[1] + inner[3]),
    )
    before, after, valid = before[(slice(None), *cut)], after[(slice(None), *cut)], valid[cut]
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
        return _Core(score_c, clean, objs)
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
    return _Core(score_c, clean, objs, direction, verify)


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
        c.score.astype(np.float32, copy=False) if want_score else None,
        c.clean if want_raw else None,
    )
