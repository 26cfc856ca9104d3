"""Accuracy of a change mask against a reference: pixel and object metrics.

Pixel metrics are computed over the pixels that are both valid and labelled (so
partial reference sampling, e.g. Landsat Taizhou, scores only its samples). The raw
counts ``tp, fp, fn, tn`` are kept so results pool across pairs (:func:`pool`).

References
----------
.. [1] Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
   Psychological Measurement 20(1), 37-46. https://doi.org/10.1177/001316446002000104
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from borderwatch.errors import InputError

__all__ = [
    "Scores",
    "cleanup_radius_px",
    "evaluate_mask",
    "object_recall",
    "pool",
    "predict_pair",
    "scores_from_counts",
]


@dataclass(frozen=True)
class Scores:
    """Accuracy of one mask (or pooled over several).

    Attributes
    ----------
    precision, recall, f1, iou, kappa : float
        Pixel metrics of the change class (0 when undefined, e.g. no predicted change
        gives precision 0).
    object_recall : float or None
        Share of 8-connected truth objects with at least one detected pixel; None
        when pooled or when the truth has no objects.
    tp, fp, fn, tn : int
        Pixel counts over the scored pixels.
    """

    precision: float
    recall: float
    f1: float
    iou: float
    kappa: float
    object_recall: float | None
    tp: int
    fp: int
    fn: int
    tn: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready dict with the keys of the attributes."""
        return asdict(self)


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def scores_from_counts(
    tp: int, fp: int, fn: int, tn: int, *, object_recall: float | None = None
) -> Scores:
    """Precision, recall, F1, IoU and Cohen's kappa from confusion counts.

    Examples
    --------
    >>> s = scores_from_counts(8, 2, 2, 88)
    >>> round(s.f1, 3), round(s.kappa, 3)
    (0.8, 0.778)
    """
    tp, fp, fn, tn = int(tp), int(fp), int(fn), int(tn)
    n = tp + fp + fn + tn
    po = _div(tp + tn, n)
    pe = _div((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn), n * n)
    kappa = _div(po - pe, 1.0 - pe) if pe < 1 else 0.0
    return Scores(
        precision=_div(tp, tp + fp),
        recall=_div(tp, tp + fn),
        f1=_div(2 * tp, 2 * tp + fp + fn),
        iou=_div(tp, tp + fp + fn),
        kappa=kappa,
        object_recall=object_recall,
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
    )


def object_recall(pred: np.ndarray, truth: np.ndarray) -> float | None:
    """Share of 8-connected truth objects touched by at least one predicted pixel."""
    labels, n = ndimage.label(truth, structure=np.ones((3, 3), bool))
    if n == 0:
        return None
    hit = np.unique(labels[pred & (labels > 0)])
    return float(hit.size) / n


def evaluate_mask(
    pred: np.ndarray,
    truth: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    labelled: np.ndarray | None = None,
) -> Scores:
    """Score a predicted change mask against a truth mask.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        ``bool (rows, cols)`` predicted and reference change.
    valid : numpy.ndarray, optional
        ``bool (rows, cols)``: pixels with data in both dates (default all).
    labelled : numpy.ndarray, optional
        ``bool (rows, cols)``: pixels carrying a reference label (default all).

    Returns
    -------
    Scores

    Raises
    ------
    InputError
        Shapes differ or no pixel is scored.
    """
    if pred.shape != truth.shape:
        raise InputError(f"prediction {pred.shape} and truth {truth.shape} differ in shape")
    scored = np.ones(truth.shape, bool)
    for m in (valid, labelled):
        if m is not None:
            if m.shape != truth.shape:
                raise InputError(f"mask {m.shape} does not match truth {truth.shape}")
            scored &= m
    if not scored.any():
        raise InputError("no valid labelled pixels to score")
    p, t = pred.astype(bool) & scored, truth.astype(bool) & scored
    tp = int((p & t).sum())
    fp = int((p & ~t).sum())
    fn = int((~p & t).sum())
    tn = int(scored.sum()) - tp - fp - fn
    full = labelled is None or bool(labelled.all())
    orec = object_recall(pred.astype(bool) & scored, t) if full else None
    return scores_from_counts(tp, fp, fn, tn, object_recall=orec)


def pool(scores: Iterable[Scores]) -> Scores:
    """Pool confusion counts of several results (all pixels together)."""
    tp = fp = fn = tn = 0
    for s in scores:
        tp, fp, fn, tn = tp + s.tp, fp + s.fp, fn + s.fn, tn + s.tn
    return scores_from_counts(tp, fp, fn, tn)


def cleanup_radius_px(pixel_m: float) -> int:
    """Morphological opening/closing radius for a pixel size (the benchmark rule).

    One metre of clean-up on the ground (2 px at 0.5 m, 1 px at 1 m), at least one
    pixel while a 3 x 3 pixel kernel still fits inside a small building (<= 40 m, so
    up to ~13 m pixels, e.g. Sentinel-2), and none at coarser pixels (Landsat 30 m),
    where an opening would erase whole buildings.
    """
    if 3 * pixel_m > 40.0:
        return 0
    return max(1, int(round(1.0 / pixel_m)))


def predict_pair(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: tuple[str, ...],
    pixel_area_m2: float,
    method: str = "combined",
    threshold: str | float = "ki",
    align: bool = True,
    cleanup: bool = True,
    p_value: float = 0.01,
) -> np.ndarray:
    """Change mask of a pair on plain arrays, as the pipeline computes it.

    Co-registration (optional) then :func:`borderwatch.change.detect_change` with
    :func:`cleanup_radius_px` clean-up and no minimum area (so pixel metrics measure
    the detector, not the object filter). Works on un-georeferenced arrays.

    Returns
    -------
    numpy.ndarray
        ``bool (rows, cols)`` change mask on the before grid.
    """
    from borderwatch.align import prepare_pair
    from borderwatch.change import detect_change

    b_valid = valid & np.isfinite(before).all(axis=0)
    a_valid = valid & np.isfinite(after).all(axis=0)
    if align:
        after, valid, _ = prepare_pair(before, after, b_valid, a_valid, align=True)
    else:
        valid = b_valid & a_valid
    radius = cleanup_radius_px(float(np.sqrt(pixel_area_m2))) if cleanup else 0
    res = detect_change(
        before,
        after,
        valid,
        pixel_area_m2=pixel_area_m2,
        method=method,
        threshold=threshold,
        min_area_m2=0.0,
        opening_px=radius,
        closing_px=radius,
        band_names=band_names,
        p_value=p_value,
    )
    return res.mask
