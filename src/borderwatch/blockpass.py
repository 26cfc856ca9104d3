"""Single-pass blockwise detection with global statistics from a documented sample.

The default ``detect`` (method ``combined``, threshold ``ki``, co-registration and
classification on) and ``cva`` run block by block in *one* read of the inputs:

1. *Co-registration* (``align``): one global shift, estimated with
   :func:`borderwatch.align.coregister` on the alignment window
   (:func:`borderwatch.align.centre_window`: the ``ALIGN_WINDOW_PX`` (1024 px) square at the
   centre of the grid, the window the in-memory path measures on; the whole grid when
   it is smaller). With fewer than
   ``MIN_ALIGN_PIXELS`` pixels valid in both dates there, the run is not co-registered
   and says so (``align_skipped``). Every block's after date is shifted with
   :func:`borderwatch.align.apply_shift` (bilinear) inside a halo of
   :func:`shift_halo_px` pixels, as the in-memory path shifts the whole scene. The
   shift, the residual and the window are recorded like ``prepare_pair`` records them.
2. *Sample* (:func:`sample_windows`): when the grid has at most ``sample_px`` pixels the
   sample is the whole grid, and every statistic equals the in-memory one. Otherwise
   it is a uniform random choice (``numpy.random.default_rng(seed)``, seed 0 by
   default, without replacement) of tile-aligned windows (the input's internal tile,
   256 px if the input is not tiled) until ``sample_px`` pixels are covered. The
   windows are read, shifted, and scored whole; only their interior (the window less
   the context halo, except at grid edges) enters the statistics, so the sample values
   equal those of the whole-scene computation at the same pixels.
3. *Fit* (:func:`fit_scene`): the score model (:func:`borderwatch.change.fit_combined`,
   or the CVA moments), the threshold (``ki``/``otsu`` of the sample's scores, or a
   number), and, with classification, the direction statistics
   (:func:`borderwatch.blockclassify.fit_direction`).
4. *Blocks* (:func:`task_block`): each block is read once with a halo of
   :attr:`SceneModel.halo` pixels (shift + score smoothing + morphological clean-up),
   shifted, scored with :func:`borderwatch.change.apply_combined`, thresholded,
   cleaned and summarised (objects, edges; objects inside the block are classified
   there, the others keep pixel crops). Objects are merged across block edges and the
   ones that crossed an edge are classified after the merge.

Statistics from a sample differ from whole-scene ones by sampling error only; the
size of that difference on a scene much larger than its sample is stated and tested
in ``tests/test_blocks_default.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from borderwatch.align import (
    MIN_ALIGN_PIXELS,
    apply_shift,
    coregister,
)
from borderwatch.blockclassify import (
    ClassifyContext,
    DirectionModel,
    apply_direction,
    fit_direction,
)
from borderwatch.blockmerge import BlockObjects, BlockSummary, block_objects, summarise_block
from borderwatch.blockread import Pair, read_pair
from borderwatch.blocktasks import (
    CleanParams,
    ScoreModel,
    clean_groups,
    clip_window,
    cva_block,
    halo_px,
)
from borderwatch.change import (
    CombinedModel,
    apply_combined,
    by_row_strips,
    combined_halo_px,
    fit_combined,
    pixels_at,
    rank_verification,
    threshold_score,
)
from borderwatch.errors import InputError

__all__ = [
    "ONE_PASS_METHODS",
    "SAMPLE_PX",
    "AlignResult",
    "SceneModel",
    "fit_scene",
    "sample_windows",
    "shift_halo_px",
    "task_align",
    "task_block",
    "task_block_raster",
    "task_sample",
]

#: Methods the single pass scores.
ONE_PASS_METHODS = ("combined", "cva")
#: Default sample size, pixels (about 1 Mpx: a 1024 x 1024 scene is fitted whole).
SAMPLE_PX = 1 << 20

Win = tuple[int, int, int, int]


# --------------------------------------------------------------------------- windows
def sample_windows(
    shape: tuple[int, int],
    tile: tuple[int, int],
    *,
    sample_px: int = SAMPLE_PX,
    seed: int = 0,
) -> list[Win]:
    """Windows of the scene sample (see the module docstring), in raster order."""
    rows, cols = shape
    if rows * cols <= sample_px:
        return [(0, 0, rows, cols)]
    th, tw = tile if min(tile) >= 16 else (256, 256)
    cells = [
        (r, c, min(th, rows - r), min(tw, cols - c))
        for r in range(0, rows, th)
        for c in range(0, cols, tw)
    ]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cells))
    chosen, total = [], 0
    for k in order:
        chosen.append(int(k))
        total += cells[k][2] * cells[k][3]
        if total >= sample_px:
            break
    return [cells[k] for k in sorted(chosen)]


def shift_halo_px(shift: tuple[float, float] | None) -> int:
    """Pixels of context a bilinear shift by ``shift`` needs (0 when not shifting)."""
    if shift is None:
        return 0
    return int(math.ceil(max(abs(shift[0]), abs(shift[1])))) + 1


def block_halo(
    shift: tuple[float, float] | None, *, score_halo: int, opening_px: int, closing_px: int
) -> int:
    """Halo read around every block, pixels: the shift's, the score's and the clean-up's."""
    clean = halo_px(opening_px=opening_px, closing_px=closing_px)
    return shift_halo_px(shift) + score_halo + clean


# --------------------------------------------------------------------------- align
@dataclass(frozen=True)
class AlignResult:
    """Global co-registration of a blockwise run.

    Attributes
    ----------
    shift : tuple of float or None
        ``(row, col)`` shift applied to every block's after date; None = not shifted.
    info : dict
        Provenance, the keys of :func:`borderwatch.align.prepare_pair`'s ``info`` plus
        ``align_window`` ``[row0, col0, rows, cols]``.
    """

    shift: tuple[float, float] | None
    info: dict[str, object]


def task_align(src: Any, win: Win | None) -> AlignResult:
    """Estimate the global shift on ``win`` (None: co-registration off)."""
    if win is None:
        info: dict[str, object] = {
            "align": False,
            "normalise": "none",
            "shift_px": [0.0, 0.0],
            "residual_shift_rc_px": None,
            "residual_shift_px": None,
        }
        return AlignResult(None, info)
    p = read_pair(src, win)
    overlap = int((p.valid_before & p.valid_after).sum())
    if overlap < MIN_ALIGN_PIXELS and tuple(win[2:]) != tuple(src.grid.shape):
        # The in-memory path measures on the whole scene then; a blockwise run does
        # not hold it, so it says it did not co-register rather than guess.
        info = {
            "align": False,
            "align_skipped": (
                f"{overlap} pixels valid in both dates in the centre window {list(win)}, "
                f"fewer than {MIN_ALIGN_PIXELS}: not co-registered"
            ),
            "normalise": "none",
            "shift_px": [0.0, 0.0],
            "residual_shift_rc_px": None,
            "residual_shift_px": None,
        }
        return AlignResult(None, info)
    reg = coregister(p.before, p.after, p.valid_before, p.valid_after, window_px=None)
    # coregister leaves the after image untouched when the shift is negligible (it
    # records the estimate anyway) or implausible. Blocks must do the same.
    moved = reg.applied
    info = {
        "align": True,
        "normalise": "none",
        "shift_px": [round(v, 3) for v in reg.shift_px],
        "residual_shift_rc_px": [round(v, 3) for v in reg.residual_px],
        "residual_shift_px": round(reg.residual_norm_px, 3),
        "align_window": list(win),
    }
    return AlignResult(reg.shift_px if moved else None, info)


def _shifted(p: Pair, shift: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """After date on the before grid and the joint valid mask (as ``prepare_pair``)."""
    if shift is None:
        return p.after, p.valid_before & p.valid_after
    after, va = apply_shift(p.after, p.valid_after, shift)
    return after, p.valid_before & va


# --------------------------------------------------------------------------- model
@dataclass(frozen=True)
class SceneModel:
    """Everything a block needs: global statistics, threshold, shift (small, picklable).

    Attributes
    ----------
    method : str
        ``combined`` or ``cva``.
    score : CombinedModel or ScoreModel
        Fitted score statistics.
    threshold : float
        Score threshold.
    shift : tuple of float or None
        Shift applied to the after date.
    direction : DirectionModel or None
        Direction statistics (classification on).
    clean : CleanParams
        Clean-up settings.
    pixel_m : float
        Pixel size, metres.
    sample : dict
        Provenance of the sample (windows, pixels, seed).
    align : dict
        Co-registration provenance (:attr:`AlignResult.info`).
    """

    method: str
    score: CombinedModel | ScoreModel
    threshold: float
    shift: tuple[float, float] | None
    direction: DirectionModel | None
    clean: CleanParams
    pixel_m: float
    sample: dict[str, object]
    align: dict[str, object]

    @property
    def score_halo(self) -> int:
        """Context the score needs (smoothing), pixels."""
        return combined_halo_px(self.pixel_m) if self.method == "combined" else 0

    @property
    def classify_context(self) -> ClassifyContext:
        """What object classification needs of the run."""
        residual = self.align.get("residual_shift_px")
        return ClassifyContext(
            self.pixel_m,
            self.threshold,
            float(residual) if residual is not None else None,  # type: ignore[arg-type]
            self.method,
        )

    @property
    def halo(self) -> int:
        """Halo read around every block, pixels."""
        return block_halo(
            self.shift,
            score_halo=self.score_halo,
            opening_px=self.clean.opening_px,
            closing_px=self.clean.closing_px,
        )


def _score(
    method: str,
    model: CombinedModel | ScoreModel,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    pixel_m: float,
) -> np.ndarray:
    if method == "combined":
        return apply_combined(model, before, after, valid, pixel_m=pixel_m)  # type: ignore[arg-type]

    def part(rows: slice) -> np.ndarray:
        diff = after[:, rows] - before[:, rows]  # float32, as change.standardised_difference
        return cva_block(model, diff, valid[rows])  # type: ignore[arg-type]

    return by_row_strips(part, valid.shape)


@dataclass(frozen=True)
class Sample:
    """One sample window, shifted: arrays of the window and the interior slices."""

    before: np.ndarray
    after: np.ndarray
    valid: np.ndarray
    core: tuple[slice, slice]


def task_sample(src: Any, win: Win, align: AlignResult, score_halo: int) -> Sample:
    """Read and shift one sample window.

    Its interior lies ``shift_halo_px + score_halo`` pixels inside the window's inner
    edges (edges on the grid's border are kept), where values equal the whole scene's.
    """
    context = shift_halo_px(align.shift) + score_halo
    p = read_pair(src, win)
    after, valid = _shifted(p, align.shift)
    rows, cols = src.grid.shape
    r0, c0, h, w = win
    top = 0 if r0 == 0 else context
    left = 0 if c0 == 0 else context
    bottom = h if r0 + h == rows else max(h - context, top)
    right = w if c0 + w == cols else max(w - context, left)
    return Sample(p.before, after, valid, (slice(top, bottom), slice(left, right)))


def _pixels(samples: Sequence[Sample], which: str) -> np.ndarray:
    """Gather the valid interior pixels of all samples as ``(bands, n, 1)``."""
    parts = [
        pixels_at(getattr(s, which)[:, s.core[0], s.core[1]], np.flatnonzero(s.valid[s.core]))
        for s in samples
    ]
    return np.concatenate(parts, axis=1)[:, :, None]


def fit_scene(
    samples: Sequence[Sample],
    align: AlignResult,
    *,
    method: str,
    threshold: str | float,
    clean: CleanParams,
    band_names: Sequence[str],
    classify: bool,
    sample_info: dict[str, object],
) -> SceneModel:
    """Fit the score, threshold and direction statistics on the sample.

    Raises
    ------
    InputError
        No valid pixel in the sample, or an unknown threshold.
    """
    pixel_m = math.sqrt(clean.pixel_area_m2)
    if len(samples) == 1:  # the whole grid (small scenes): as in memory, same arrays
        s = samples[0]
        b, a = s.before[:, s.core[0], s.core[1]], s.after[:, s.core[0], s.core[1]]
        v = s.valid[s.core]
    else:
        b, a = _pixels(samples, "before"), _pixels(samples, "after")
        v = np.ones(b.shape[1:], bool)
    if not v.any():
        raise InputError("no valid pixels to compare in the sample of the scene")
    if method == "combined":
        model: CombinedModel | ScoreModel = fit_combined(b, a, v, band_names=band_names)
    else:
        diff = a.astype(np.float32, copy=False) - b.astype(np.float32, copy=False)
        vals = diff.reshape(diff.shape[0], -1) if v.all() else diff[:, v]
        std = vals.std(axis=1, dtype=np.float64)
        std[std == 0] = 1.0
        model = ScoreModel("cva", vals.mean(axis=1, dtype=np.float64), std)
    scores = [_score(method, model, s.before, s.after, s.valid, pixel_m)[s.core] for s in samples]
    valids = [s.valid[s.core] for s in samples]
    if len(scores) == 1:
        value = threshold_score(scores[0], valids[0], threshold, dof=b.shape[0])
    else:
        flat = np.concatenate([sc[vv] for sc, vv in zip(scores, valids, strict=True)])
        value = threshold_score(flat, np.ones(flat.shape, bool), threshold, dof=b.shape[0])
    direction = fit_direction(b, a, v, band_names=band_names) if classify else None
    cp = replace(clean, threshold=value)
    n = int(v.sum()) if len(samples) == 1 else b.shape[1]
    info = {**sample_info, "valid_pixels": n}
    return SceneModel(method, model, value, align.shift, direction, cp, pixel_m, info, align.info)


# --------------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class _Core:
    """One block core: score, labelled objects and, for classification, evidence."""

    score: np.ndarray
    objs: BlockObjects
    direction: np.ndarray | None = None
    verify: np.ndarray | None = None


def _block(src: Any, model: SceneModel, win: Win, data: Pair | None, *, evidence: bool) -> _Core:
    """Score, threshold and clean a block; with ``evidence``, direction and rank peak too."""
    big, _ = clip_window(win, model.halo, src.grid.shape)
    p = data if data is not None else read_pair(src, big)
    after, valid = _shifted(p, model.shift)
    # Drop the shift's own context: what is left is exact and, away from nodata, all
    # valid (the shift invalidates the outer ring), which the smoothing's fast path needs.
    inner, core = clip_window(win, model.halo - shift_halo_px(model.shift), src.grid.shape)
    cut = (slice(inner[0] - big[0], inner[0] - big[0] + inner[2]),)
    cut += (slice(inner[1] - big[1], inner[1] - big[1] + inner[3]),)
    before, after, valid = p.before[(slice(None), *cut)], after[(slice(None), *cut)], valid[cut]
    score = _score(model.method, model.score, before, after, valid, model.pixel_m)
    raw = score > model.threshold  # NaN (invalid) compares False
    score_c = score[core]
    objs = block_objects(
        clean_groups(raw, model.clean)[core],
        valid[core],
        pixel_area=model.clean.pixel_area_m2,
        min_area_m2=model.clean.min_area_m2,
    )
    if not (evidence and model.direction is not None and objs.nf):
        return _Core(score_c, objs)
    # Direction evidence is per pixel: evaluate it at the object pixels only.
    pick = (slice(None), *core)
    direction = np.zeros(objs.f_lab.shape, np.float32)
    direction.ravel()[objs.pos] = apply_direction(  # objs.pos: the object pixels
        model.direction,
        pixels_at(before[pick], objs.pos)[:, :, None],
        pixels_at(after[pick], objs.pos)[:, :, None],
        np.ones((objs.pos.size, 1), bool),
    )[:, 0]
    verify = None
    if model.method == "combined":
        # The rank-model peak the in-memory pipeline checks (find_structures verify=),
        # needed only where an object can still be kept: it reaches the block edge, or
        # it is big enough and passes the linear peak and direction rules.
        need = objs.may_keep(
            objs.per_object_max(score_c, fill=-np.inf),
            None,
            objs.per_object_mean(direction),
            model.method,
        )
        asked = np.zeros(objs.f_lab.shape, bool)
        asked.ravel()[objs.pos] = need[objs.lab]  # gathered at the object pixels only
        where = np.zeros(valid.shape, bool)
        where[core] = asked
        verify = rank_verification(
            model.score,  # type: ignore[arg-type]
            before,
            after,
            valid,
            pixel_m=model.pixel_m,
            where=where,
        )[core]
    return _Core(score_c, objs, direction, verify)


def task_block(
    src: Any, model: SceneModel, index: tuple[int, int], win: Win, data: Pair | None = None
) -> BlockSummary:
    """Score, threshold, clean and summarise one block (``data``: its halo read, if done)."""
    c = _block(src, model, win, data, evidence=True)
    return summarise_block(
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


def task_block_raster(
    src: Any, model: SceneModel, win: Win, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the final mask (uint8, before classification) and score (float32) of a block."""
    c = _block(src, model, win, None, evidence=False)  # the raster needs no evidence
    return keep[c.objs.f_lab].astype(np.uint8), c.score.astype(np.float32)
