"""Fit: co-registration, the scene sample, and every method's global statistics.

1. *Co-registration* (:func:`task_align`): one global shift, estimated with
   :func:`borderwatch.engine.align.coregister` on the plan's alignment window
   (:func:`borderwatch.engine.align.centre_window`: the 1024 px square at the centre of the
   grid, the whole grid when it is smaller). With fewer than ``MIN_ALIGN_PIXELS``
   pixels valid in both dates there (``MIN_SHIFT_SIDE_PX`` squared on a whole small
   grid), or a window narrower than ``MIN_SHIFT_SIDE_PX``, the run is not
   co-registered and says so (``align_skipped``, also logged as a warning), unless
   the window holding the most valid pixels (:func:`densest_window`) has enough.
2. *Sample* (:func:`task_sample`): each sample window is read and shifted; only its
   interior (the window less the shift's and the score's context, except at grid
   edges) enters the statistics, so the sample's values equal the whole scene's at
   the same pixels. A sparse scene (valid pixels in a corner or a strip) whose data
   the uniform draw mostly missed (:func:`redraw_mask`) is sampled again from the
   windows that hold valid pixels (:func:`valid_sample_windows`).
3. *Fit* (:func:`fit_scene`): the normaliser (``--normalise``), then the score method
   (:mod:`borderwatch.methods`), the threshold from the sample's scores (``ki``,
   ``otsu``, ``chi2``, or a number), and, with classification, the direction
   statistics. The result, :class:`SceneModel`, is small and picklable: it is what
   every block task receives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from borderwatch.engine.align import (
    MIN_ALIGN_PIXELS,
    MIN_SHIFT_SIDE_PX,
    apply_shift,
    coregister,
)
from borderwatch.engine.params import DetectParams
from borderwatch.engine.plan import (
    CleanParams,
    PairSource,
    Plan,
    Win,
    block_halo,
    sample_windows,
    shift_halo_px,
)
from borderwatch.engine.read import Pair, coarse_valid, read_pair
from borderwatch.errors import InputError
from borderwatch.methods import (
    Fitted,
    FittedNormaliser,
    Method,
    choose_method,
    get_method,
    get_normaliser,
)
from borderwatch.methods.arrays import pixels_at
from borderwatch.methods.thresholds import threshold_score
from borderwatch.objects.construction import ClassifyContext, DirectionModel, fit_direction

__all__ = [
    "AlignResult",
    "Sample",
    "densest_window",
    "joint_valid",
    "SceneModel",
    "fit_plan",
    "fit_scene",
    "gives_probability",
    "plan_method",
    "plan_method_name",
    "redraw_mask",
    "shifted",
    "task_align",
    "task_sample",
    "valid_sample_windows",
]

#: Probability above which a learned model's pixel is change, unless a number is given.
MODEL_PROBABILITY = 0.5
#: A drawn sample holding fewer valid pixels than this share of the sample budget may
#: be redrawn from windows that hold valid pixels (:func:`redraw_mask`).
SPARSE_SAMPLE_SHARE = 1 / 2
#: ... and is redrawn when it also holds fewer than this share of the scene's valid
#: pixels (estimated from the coarse valid mask): a scene whose data fit the budget is
#: fitted on nearly all of them, as it would be with no nodata around it.
SPARSE_VALID_SHARE = 3 / 4
#: Cell of the coarse valid-data mask the redraw uses, pixels (divides the 256 px windows).
VALID_STEP_PX = 16


@dataclass(frozen=True)
class AlignResult:
    """Global co-registration of a run.

    Attributes
    ----------
    shift : tuple of float or None
        ``(row, col)`` shift applied to every block's after date; None = not shifted.
    info : dict
        Provenance: ``align``, ``shift_px``, ``residual_shift_rc_px``,
        ``residual_shift_px`` and ``align_window`` ``[row0, col0, rows, cols]``.
    """

    shift: tuple[float, float] | None
    info: dict[str, object]


def _not_aligned(**extra: object) -> dict[str, object]:
    return {
        "align": False,
        **extra,
        "shift_px": [0.0, 0.0],
        "residual_shift_rc_px": None,
        "residual_shift_px": None,
    }


def task_align(src: PairSource, win: Win | None) -> AlignResult:
    """Estimate the global shift on ``win`` (None: co-registration off)."""
    if win is None:
        return AlignResult(None, _not_aligned())
    p = read_pair(src, win)
    overlap = int((p.valid_before & p.valid_after).sum())
    # A small scene is measured whole, down to the fewest pixels phase correlation needs.
    whole = tuple(win[2:]) == tuple(src.grid.shape)
    need = MIN_SHIFT_SIDE_PX**2 if whole else MIN_ALIGN_PIXELS
    if overlap < need or min(win[2:]) < MIN_SHIFT_SIDE_PX:
        where = "whole grid" if whole else "centre window"
        skipped = (
            f"{overlap} pixels valid in both dates in the {win[2]} x {win[3]} px {where} "
            f"{list(win)}, fewer than {need} or narrower than {MIN_SHIFT_SIDE_PX} px: "
            f"{src.after.paths[0]} not co-registered to {src.before.paths[0]}"
        )
        return AlignResult(None, _not_aligned(align_skipped=skipped))
    reg = coregister(p.before, p.after, p.valid_before, p.valid_after, window_px=None)
    # coregister leaves the after image untouched when the shift is negligible (it
    # records the estimate anyway) or implausible; blocks do the same.
    info: dict[str, object] = {
        "align": True,
        "shift_px": [round(v, 3) for v in reg.shift_px],
        "residual_shift_rc_px": [round(v, 3) for v in reg.residual_px],
        "residual_shift_px": round(reg.residual_norm_px, 3),
        "align_window": list(win),
    }
    return AlignResult(reg.shift_px if reg.applied else None, info)


def shifted(p: Pair, shift: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """After date on the before grid and the joint valid mask."""
    if shift is None:
        return p.after, p.valid_before & p.valid_after
    after, va = apply_shift(p.after, p.valid_after, shift)
    return after, p.valid_before & va


@dataclass(frozen=True)
class Sample:
    """One sample window, shifted: arrays of the window and the interior slices."""

    before: np.ndarray
    after: np.ndarray
    valid: np.ndarray
    core: tuple[slice, slice]


def task_sample(src: PairSource, win: Win, align: AlignResult, score_halo: int) -> Sample:
    """Read and shift one sample window (its interior: see the module docstring)."""
    context = shift_halo_px(align.shift) + score_halo
    p = read_pair(src, win)
    after, valid = shifted(p, align.shift)
    rows, cols = src.grid.shape
    r0, c0, h, w = win
    top = 0 if r0 == 0 else context
    left = 0 if c0 == 0 else context
    bottom = h if r0 + h == rows else max(h - context, top)
    right = w if c0 + w == cols else max(w - context, left)
    return Sample(p.before, after, valid, (slice(top, bottom), slice(left, right)))


def redraw_mask(
    plan: Plan, samples: Sequence[Sample], valid: np.ndarray | None = None
) -> np.ndarray | None:
    """Return the coarse valid mask to draw the sample again on, or None if the draw will do.

    A drawn sample is redrawn (:func:`valid_sample_windows`) when its valid interior
    pixels are fewer than ``min(SPARSE_SAMPLE_SHARE * plan.sample_px,
    SPARSE_VALID_SHARE * V)``, ``V`` the pixels of the coarse cells valid in both dates
    (:func:`joint_valid`, a slight overestimate at the data's edges). So a scene mostly
    of nodata is fitted on the valid pixels its budget allows, not on the few the
    uniform draw happened to hit. Never for a whole-scene sample (nothing to redraw);
    the mask is read only when the sample holds under half the budget.

    Parameters
    ----------
    plan : Plan
        The run's plan.
    samples : sequence of Sample
        The drawn sample, read (:func:`task_sample`).
    valid : numpy.ndarray, optional
        :func:`joint_valid` of the plan when already read.

    Returns
    -------
    numpy.ndarray or None
        The mask (``valid`` or newly read) when the sample must be redrawn.
    """
    if len(plan.sample) == 1 and tuple(plan.sample[0][2:]) == tuple(plan.grid.shape):
        return None
    held = sum(int(s.valid[s.core].sum()) for s in samples)
    if held >= plan.sample_px * SPARSE_SAMPLE_SHARE:
        return None
    valid = joint_valid(plan) if valid is None else valid
    scene_px = int(valid.sum()) * VALID_STEP_PX**2
    return valid if held < SPARSE_VALID_SHARE * scene_px else None


def joint_valid(plan: Plan) -> np.ndarray:
    """Coarse mask of where both dates hold valid pixels, :data:`VALID_STEP_PX` cells.

    See :func:`borderwatch.engine.read.coarse_valid`.
    """
    src, step = plan.source, VALID_STEP_PX
    return coarse_valid(src.before, src.grid, step) & coarse_valid(src.after, src.grid, step)


def valid_sample_windows(plan: Plan, valid: np.ndarray | None = None) -> list[Win]:
    """Sample windows drawn only among those holding pixels valid in both dates.

    As :func:`borderwatch.engine.plan.sample_windows` (same size and seed), on the
    coarse mask ``valid`` (default :func:`joint_valid`).
    """
    src = plan.source
    return sample_windows(
        src.grid.shape,
        src.tile,
        sample_px=plan.sample_px,
        seed=plan.seed,
        valid=joint_valid(plan) if valid is None else valid,
        valid_step=VALID_STEP_PX,
    )


def densest_window(valid: np.ndarray, shape: tuple[int, int], *, size: int) -> Win:
    """Return the window of at most ``size`` px a side holding the most valid cells.

    Parameters
    ----------
    valid : numpy.ndarray
        Coarse mask, one value per :data:`VALID_STEP_PX` grid pixels (:func:`joint_valid`).
    shape : tuple of int
        Grid ``(rows, cols)``.
    size : int
        Window side, grid pixels.

    Returns
    -------
    tuple of int
        ``(row0, col0, rows, cols)`` in grid pixels, inside the grid.

    Examples
    --------
    >>> valid = np.zeros((100, 100), bool)
    >>> valid[90:, 5:10] = True
    >>> densest_window(valid, (1600, 1600), size=160)
    (1440, 0, 160, 160)
    """
    step = VALID_STEP_PX
    h, w = min(size, shape[0]), min(size, shape[1])
    kh, kw = max(min(h // step, valid.shape[0]), 1), max(min(w // step, valid.shape[1]), 1)
    # Sums of every kh x kw block of cells from the summed-area table.
    table = np.pad(valid.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = table[kh:, kw:] - table[:-kh, kw:] - table[kh:, :-kw] + table[:-kh, :-kw]
    i, j = np.unravel_index(int(np.argmax(sums)), sums.shape)
    return (min(int(i) * step, shape[0] - h), min(int(j) * step, shape[1] - w), h, w)


@dataclass(frozen=True)
class SceneModel:
    """Everything a block needs: fitted method, threshold, shift (small, picklable).

    Attributes
    ----------
    method : Fitted
        The fitted score (:mod:`borderwatch.methods`).
    normaliser : FittedNormaliser or None
        Fitted normalisation of the after date.
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
    method_reason : str
        Why this method scored the run (:func:`borderwatch.methods.choose_method`).
    """

    method: Fitted
    normaliser: FittedNormaliser | None
    threshold: float
    shift: tuple[float, float] | None
    direction: DirectionModel | None
    clean: CleanParams
    pixel_m: float
    sample: dict[str, object]
    align: dict[str, object]
    method_reason: str = ""

    @property
    def name(self) -> str:
        """Method name."""
        return self.method.name

    @property
    def classify_context(self) -> ClassifyContext:
        """What object classification needs of the run."""
        residual = self.align.get("residual_shift_px")
        return ClassifyContext(
            self.pixel_m,
            self.threshold,
            float(residual) if isinstance(residual, (int, float)) else None,
            self.name,
            getattr(self.method, "calibration", None),
        )

    @property
    def halo(self) -> int:
        """Halo read around every block, pixels."""
        return block_halo(
            self.shift,
            score_halo=self.method.halo_px,
            opening_px=self.clean.opening_px,
            closing_px=self.clean.closing_px,
        )

    def prepare(self, p: Pair) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Before, shifted and normalised after, and joint valid mask of a window."""
        after, valid = shifted(p, self.shift)
        if self.normaliser is not None:
            after = self.normaliser.apply(after)
        return p.before, after, valid


def plan_method_name(plan: Plan) -> tuple[str, str]:
    """Return the method a plan uses and why (``auto`` resolved on its grid and bands)."""
    src, p = plan.source, plan.params
    return choose_method(
        p.method,
        pixel_m=math.sqrt(plan.grid.pixel_area),
        band_names=src.before.band_names,
        n_bands=len(src.before.band_names),
        model=p.model,
        fixed_threshold=not isinstance(p.threshold, str),
    )


def plan_method(plan: Plan) -> Method:
    """Return the unfitted method of a plan."""
    return get_method(plan_method_name(plan)[0], model=plan.params.model)


def fit_plan(plan: Plan) -> tuple[Win | None, list[Win], int]:
    """Alignment window (None: off), sample windows and score halo of a plan."""
    pixel_m = math.sqrt(plan.grid.pixel_area)
    return plan.align_window, plan.sample, plan_method(plan).halo_px(pixel_m)


def _pixels(samples: Sequence[Sample], which: str) -> np.ndarray:
    """Gather the valid interior pixels of all samples as ``(bands, n, 1)``."""
    parts = [
        pixels_at(getattr(s, which)[:, s.core[0], s.core[1]], np.flatnonzero(s.valid[s.core]))
        for s in samples
    ]
    return np.concatenate(parts, axis=1)[:, :, None]


def gives_probability(params: DetectParams, fitted: Fitted) -> bool:
    """Whether a run's score is a probability (a model file's, or a method that says so)."""
    return params.model is not None or bool(getattr(fitted, "probability", False))


def _fixed_threshold(plan: Plan, fitted: Fitted) -> bool:
    """Whether the threshold is :data:`MODEL_PROBABILITY` (a model's, rule by name)."""
    return gives_probability(plan.params, fitted) and isinstance(plan.params.threshold, str)


def _threshold(
    plan: Plan, fitted: Fitted, scores: list[np.ndarray], valids: list[np.ndarray]
) -> float:
    p = plan.params
    rule: str | float = p.threshold
    if len(scores) == 1:
        return threshold_score(scores[0], valids[0], rule, dof=fitted.dof, p_value=p.p_value)
    flat = np.concatenate([sc[vv] for sc, vv in zip(scores, valids, strict=True)])
    return threshold_score(flat, np.ones(flat.shape, bool), rule, dof=fitted.dof, p_value=p.p_value)


def fit_scene(
    plan: Plan,
    align: AlignResult,
    samples: Sequence[Sample],
    *,
    windows: Sequence[Win] | None = None,
) -> SceneModel:
    """Fit normaliser, score, threshold and direction statistics on the sample.

    Parameters
    ----------
    plan : Plan
        The run's plan.
    align : AlignResult
        The co-registration.
    samples : sequence of Sample
        The sample windows, read (:func:`task_sample`).
    windows : sequence of tuple, optional
        The windows ``samples`` were read from when they are not ``plan.sample``
        (redrawn by :func:`valid_sample_windows`).

    Raises
    ------
    InputError
        No valid pixel in the sample (the message names the inputs).
    """
    src, p = plan.source, plan.params
    pixel_m = math.sqrt(plan.grid.pixel_area)
    band_names = src.before.band_names
    whole = len(samples) == 1
    if whole:  # the whole grid (small scenes): the same arrays as one block
        s = samples[0]
        b, a = s.before[:, s.core[0], s.core[1]], s.after[:, s.core[0], s.core[1]]
        v = s.valid[s.core]
    else:
        b, a = _pixels(samples, "before"), _pixels(samples, "after")
        v = np.ones(b.shape[1:], bool)
    redrawn = windows is not None
    if not v.any():
        where = "windows holding valid pixels" if redrawn else "windows"
        raise InputError(
            f"no pixel valid in both dates in the sample of the scene ({len(samples)} {where}) "
            f"of {src.before.paths[0]} and {src.after.paths[0]}; check nodata and overlap"
        )
    norm_method = get_normaliser(p.normalise)
    normaliser = norm_method.fit(b, a, v) if norm_method is not None else None
    if normaliser is not None:
        a = normaliser.apply(a)
        samples = [Sample(s.before, normaliser.apply(s.after), s.valid, s.core) for s in samples]
    method_name, reason = plan_method_name(plan)
    fitted = get_method(method_name, model=p.model).fit(
        b, a, v, band_names=band_names, pixel_m=pixel_m
    )
    if _fixed_threshold(plan, fitted):  # a probability: no need to score the sample
        value = MODEL_PROBABILITY
    else:
        scores = [fitted.score(s.before, s.after, s.valid)[s.core] for s in samples]
        valids = [s.valid[s.core] for s in samples]
        value = _threshold(plan, fitted, scores, valids)
    direction = fit_direction(b, a, v, band_names=band_names) if p.classify else None
    wins = list(windows) if windows is not None else plan.sample
    info: dict[str, Any] = {
        "windows": len(wins),
        "pixels": int(sum(w[2] * w[3] for w in wins)),
        "sample_px": plan.sample_px,
        "seed": plan.seed,
        "whole_scene": whole,
        "valid_pixels": int(v.sum()) if whole else int(b.shape[1]),
        "redrawn_on_valid": redrawn,
    }
    align_info = {**align.info, "normalise": p.normalise}
    return SceneModel(
        fitted,
        normaliser,
        value,
        align.shift,
        direction,
        plan.clean(value),
        pixel_m,
        info,
        align_info,
        reason,
    )
