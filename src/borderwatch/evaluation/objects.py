"""Object-level accuracy of what ``detect`` writes: matching, counts, calibration, areas.

The unit is the object, as an analyst reads the product: one detection (a polygon of
the engine's output, with its ``confidence``) against one true object (an
8-connected component of the truth mask).

Match rule (:data:`MATCH_RULE`): a detection and a true object match when the
intersection over union (IoU) of their pixels on the analysis grid is at least
:data:`MATCH_IOU` (0.5); matching is one-to-one, greedy in order of decreasing IoU.
This is the SpaceNet building-footprint metric [1]_, the usual rule for building
detection; SpaceNet 7's change-tracking score matches the same way, one-to-one by IoU,
with a lower threshold (0.25) for its 4 m pixels [2]_. At IoU >= 0.5 a
detection can overlap at most one true object that much (two disjoint objects cannot
each hold more than half of it), so the greedy order only breaks exact ties at 0.5 and
the matching is the maximum one. A true object split into two detections, or two
buildings merged into one, therefore counts as misses and false detections, which is
what an analyst counting new buildings would see (a merged detection still
matches one of the buildings where it covers it by IoU >= 0.5).

Counts pool over a dataset by summation (:func:`pool_objects`): precision, recall,
F1, false objects per km2 and the calibration error are computed from the summed
counts, never by averaging per-image ratios.

References
----------
.. [1] Van Etten, A., Lindenbaum, D., Bacastow, T. M. (2018). SpaceNet: A remote
   sensing dataset and challenge series. arXiv:1807.01232.
   https://doi.org/10.48550/arXiv.1807.01232
.. [2] Van Etten, A., Hogan, D., Martinez-Manso, J., et al. (2021). The multi-temporal
   urban development SpaceNet dataset. CVPR. arXiv:2102.04420.
   https://doi.org/10.48550/arXiv.2102.04420
.. [3] Guo, C., Pleiss, G., Sun, Y., Weinberger, K. Q. (2017). On calibration of modern
   neural networks. ICML. https://doi.org/10.48550/arXiv.1706.04599
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from borderwatch.errors import InputError

if TYPE_CHECKING:
    from borderwatch.io import Grid

__all__ = [
    "MATCH_IOU",
    "MATCH_RULE",
    "N_BINS",
    "UNSCORED",
    "ObjectScores",
    "calibration_bins",
    "label_objects_on_grid",
    "match_objects",
    "object_scores",
    "pool_objects",
]

#: Minimum intersection over union of a detection and a true object to match.
MATCH_IOU = 0.5
#: Equal-width confidence bins over [0, 1] for the expected calibration error.
N_BINS = 10
#: The match rule, as written into the JSON of ``borderwatch evaluate``.
MATCH_RULE = (
    "a detection (a polygon detect writes) matches a true object (an 8-connected "
    "component of the truth mask) when the IoU of their scored pixels is >= 0.5; "
    "one-to-one, greedy by decreasing IoU (SpaceNet building-footprint metric)"
)


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


@dataclass(frozen=True)
class ObjectScores:
    """Object counts of one result (or pooled over several) and the derived metrics.

    Attributes
    ----------
    tp : int
        Matched detections (= matched true objects).
    fp : int
        Detections matching no true object.
    fn : int
        True objects matching no detection.
    scored_area_km2 : float
        Area of the scored pixels (valid and labelled), square kilometres.
    area_ratios : tuple of float
        Detection area / true area of each matched pair (pixel counts on the grid).
    bin_n : tuple of int
        Detections with a finite confidence in each of the :data:`N_BINS` bins
        ``[0, 0.1), [0.1, 0.2), ... [0.9, 1.0]``.
    bin_confidence : tuple of float
        Sum of those detections' confidences, per bin.
    bin_true : tuple of int
        Of those, the matched ones, per bin.
    """

    tp: int
    fp: int
    fn: int
    scored_area_km2: float
    area_ratios: tuple[float, ...] = ()
    bin_n: tuple[int, ...] = (0,) * N_BINS
    bin_confidence: tuple[float, ...] = (0.0,) * N_BINS
    bin_true: tuple[int, ...] = (0,) * N_BINS

    @property
    def precision(self) -> float | None:
        """Matched share of the detections; None without detections."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """Matched share of the true objects; None without true objects."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """``2 tp / (2 tp + fp + fn)``; None with neither detections nor true objects."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def false_per_km2(self) -> float | None:
        """Unmatched detections per square kilometre of scored area."""
        return _ratio(self.fp, self.scored_area_km2)

    @property
    def ece(self) -> float | None:
        r"""Expected calibration error of the detections' confidence [3]_.

        :math:`\sum_b \frac{n_b}{N} |\mathrm{true}_b / n_b - \overline{c}_b|` over the
        :data:`N_BINS` equal-width bins, where a detection is true when it matches.
        None when no detection has a finite confidence.

        Examples
        --------
        Four detections at confidence 0.8 of which three are true, one at 0.2 that is
        false: ``(4 * |0.75 - 0.8| + 1 * |0 - 0.2|) / 5 = 0.08``.

        >>> s = ObjectScores(3, 2, 0, 1.0, bin_n=(0, 0, 1, 0, 0, 0, 0, 0, 4, 0),
        ...                  bin_confidence=(0, 0, 0.2, 0, 0, 0, 0, 0, 3.2, 0),
        ...                  bin_true=(0, 0, 0, 0, 0, 0, 0, 0, 3, 0))
        >>> round(s.ece, 6)
        0.08
        """
        n = np.asarray(self.bin_n, np.float64)
        if n.sum() == 0:
            return None
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(np.asarray(self.bin_true) / n - np.asarray(self.bin_confidence) / n)
        return float(np.sum(np.where(n > 0, gap * n, 0.0)) / n.sum())

    @property
    def median_area_ratio(self) -> float | None:
        """Median detection / true area of the matched pairs; None without matches."""
        return float(np.median(self.area_ratios)) if self.area_ratios else None

    def calibration(self) -> list[dict[str, float | int | None]]:
        """Reliability table: per bin its range, count, mean confidence and true share."""
        rows: list[dict[str, float | int | None]] = []
        for b in range(N_BINS):
            n = self.bin_n[b]
            rows.append(
                {
                    "low": b / N_BINS,
                    "high": (b + 1) / N_BINS,
                    "n": n,
                    "mean_confidence": _ratio(self.bin_confidence[b], n),
                    "true_share": _ratio(self.bin_true[b], n),
                }
            )
        return rows

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the metrics under their ``object_*`` names, counts and the rule."""
        return {
            "object_precision": self.precision,
            "object_recall": self.recall,
            "object_f1": self.f1,
            "false_objects_per_km2": self.false_per_km2,
            "ece": self.ece,
            "median_area_ratio": self.median_area_ratio,
            "object_tp": self.tp,
            "object_fp": self.fp,
            "object_fn": self.fn,
            "scored_area_km2": self.scored_area_km2,
            "calibration": self.calibration(),
            "object_match_rule": MATCH_RULE,
        }


#: The keys of :meth:`ObjectScores.as_dict`, all None where objects cannot be scored.
UNSCORED: dict[str, Any] = {
    **{k: None for k in ObjectScores(0, 0, 0, 0.0).as_dict()},
    "object_match_rule": MATCH_RULE,
}


def label_objects_on_grid(objects: Any, grid: Grid) -> np.ndarray:
    """``int32 (rows, cols)`` raster of the detections: row ``i`` of ``objects`` is ``i + 1``.

    Parameters
    ----------
    objects : geopandas.GeoDataFrame
        Detections in ``grid``'s CRS.
    grid : Grid
        The analysis grid.

    Notes
    -----
    The engine's polygons are traced from pixels, so their edges lie on pixel edges and
    a pixel is burnt exactly when it was one of the object's pixels; they do not overlap
    (they come from one mask).
    """
    import rasterio.features

    rows, cols = grid.shape
    if not len(objects):
        return np.zeros((rows, cols), np.int32)
    shapes = [(g, i) for i, g in enumerate(objects.geometry.values, start=1)]
    return rasterio.features.rasterize(
        shapes, out_shape=(rows, cols), transform=grid.transform, fill=0, dtype="int32"
    )


def match_objects(
    pred_labels: np.ndarray, truth_labels: np.ndarray, *, min_iou: float = MATCH_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Match labelled detections to labelled true objects by IoU (:data:`MATCH_RULE`).

    Parameters
    ----------
    pred_labels, truth_labels : numpy.ndarray
        ``int (rows, cols)``: 0 background, ``k > 0`` object ``k``.
    min_iou : float
        Minimum IoU of a match.

    Returns
    -------
    pred_ids, truth_ids : numpy.ndarray
        ``int64 (n_matches,)``: matched pairs, in matching order.
    pred_area, truth_area : numpy.ndarray
        ``int64 (max id + 1,)``: pixels of each detection / true object (index = id).
    """
    if pred_labels.shape != truth_labels.shape:
        raise InputError(
            f"detections {pred_labels.shape} and truth {truth_labels.shape} differ in shape"
        )
    p = pred_labels.ravel().astype(np.int64)
    t = truth_labels.ravel().astype(np.int64)
    pred_area = np.bincount(p, minlength=1)
    truth_area = np.bincount(t, minlength=1)
    both = (p > 0) & (t > 0)
    stride = int(truth_area.size)  # one int64 code per (detection, true object) pair
    codes, inter = np.unique(p[both] * stride + t[both], return_counts=True)
    if not inter.size:
        empty = np.zeros(0, np.int64)
        return empty, empty, pred_area, truth_area
    pi, ti = np.divmod(codes, stride)
    iou = inter / (pred_area[pi] + truth_area[ti] - inter)
    keep = iou >= min_iou
    pi, ti, iou = pi[keep], ti[keep], iou[keep]
    order = np.lexsort((ti, pi, -iou))  # decreasing IoU, ties by ids (deterministic)
    used_p: set[int] = set()
    used_t: set[int] = set()
    out_p: list[int] = []
    out_t: list[int] = []
    for k in order:
        a, b = int(pi[k]), int(ti[k])
        if a in used_p or b in used_t:
            continue
        used_p.add(a)
        used_t.add(b)
        out_p.append(a)
        out_t.append(b)
    return np.asarray(out_p, np.int64), np.asarray(out_t, np.int64), pred_area, truth_area


def object_scores(
    pred_labels: np.ndarray,
    confidence: np.ndarray,
    truth: np.ndarray,
    *,
    pixel_area_m2: float,
    scored: np.ndarray | None = None,
) -> ObjectScores:
    """Score labelled detections against a truth mask, object by object.

    Parameters
    ----------
    pred_labels : numpy.ndarray
        ``int (rows, cols)``: 0 background, ``i`` the detection with confidence
        ``confidence[i - 1]`` (see :func:`label_objects_on_grid`).
    confidence : numpy.ndarray
        ``float (n_detections,)`` in [0, 1]; NaN where a detection has none (it then
        counts in precision and recall but not in the calibration error).
    truth : numpy.ndarray
        ``bool (rows, cols)`` reference change; its 8-connected components are the true
        objects.
    pixel_area_m2 : float
        Area of one grid pixel, square metres.
    scored : numpy.ndarray, optional
        ``bool (rows, cols)``: pixels to score (valid; default all). Pixels outside are
        removed from both sides first; a detection with no scored pixel is not counted.

    Returns
    -------
    ObjectScores

    Raises
    ------
    InputError
        Shapes differ, a label has no confidence, or no pixel is scored.

    Examples
    --------
    Three true squares; one detection on each of the first two and one on bare ground:

    >>> truth = np.zeros((30, 30), bool)
    >>> truth[1:5, 1:5] = truth[10:14, 10:14] = truth[20:24, 1:5] = True
    >>> pred = np.zeros((30, 30), np.int32)
    >>> pred[1:5, 1:5], pred[10:14, 10:13], pred[25:28, 25:28] = 1, 2, 3
    >>> s = object_scores(pred, np.array([0.9, 0.8, 0.3]), truth, pixel_area_m2=1.0)
    >>> s.tp, s.fp, s.fn, round(s.precision, 3), round(s.median_area_ratio, 3)
    (2, 1, 1, 0.667, 0.875)
    """
    from borderwatch.objects.polygons import label_objects  # geopandas, loaded on use

    if pred_labels.shape != truth.shape:
        raise InputError(f"detections {pred_labels.shape} and truth {truth.shape} differ")
    conf = np.asarray(confidence, np.float64).ravel()
    if pred_labels.size and int(pred_labels.max()) > conf.size:
        raise InputError(f"detection {int(pred_labels.max())} has no confidence ({conf.size})")
    keep = np.ones(truth.shape, bool) if scored is None else scored.astype(bool)
    if keep.shape != truth.shape:
        raise InputError(f"scored mask {keep.shape} does not match truth {truth.shape}")
    if not keep.any():
        raise InputError("no valid labelled pixels to score")
    pred = np.where(keep, pred_labels, 0)
    truth_labels, _ = label_objects(truth.astype(bool) & keep)
    mp, mt, pred_area, truth_area = match_objects(pred, truth_labels)
    pred_ids = np.flatnonzero(pred_area[1:]) + 1  # detections with scored pixels
    n_true = int(np.count_nonzero(truth_area[1:]))
    matched = np.zeros(conf.size + 1, bool)
    matched[mp] = True
    c = conf[pred_ids - 1]
    ok = np.isfinite(c)
    if ok.any() and (c[ok].min() < 0 or c[ok].max() > 1):
        raise InputError("detection confidence outside [0, 1]")
    bin_n, bin_confidence, bin_true = calibration_bins(c[ok], matched[pred_ids][ok])
    return ObjectScores(
        tp=int(mp.size),
        fp=int(pred_ids.size - mp.size),
        fn=int(n_true - mt.size),
        scored_area_km2=float(keep.sum()) * pixel_area_m2 / 1e6,
        area_ratios=tuple((pred_area[mp] / truth_area[mt]).tolist()),
        bin_n=bin_n,
        bin_confidence=bin_confidence,
        bin_true=bin_true,
    )


def calibration_bins(
    confidence: np.ndarray, real: np.ndarray
) -> tuple[tuple[int, ...], tuple[float, ...], tuple[int, ...]]:
    """Count, summed confidence and real detections in each of :data:`N_BINS` bins.

    The three ``bin_*`` fields of :class:`ObjectScores` (whose ``ece`` they give), for
    detections with confidence in [0, 1] and a ``real`` (matched) flag each.
    """
    c = np.asarray(confidence, np.float64)
    b = np.clip(np.floor(c * N_BINS), 0, N_BINS - 1).astype(np.int64)
    hits = np.asarray(real, bool)
    return (
        tuple(np.bincount(b, minlength=N_BINS).tolist()),
        tuple(np.bincount(b, weights=c, minlength=N_BINS).tolist()),
        tuple(np.bincount(b[hits], minlength=N_BINS).tolist()),
    )


def pool_objects(scores: Iterable[ObjectScores]) -> ObjectScores:
    """Pool object results of several images: counts, areas and bins summed.

    Examples
    --------
    >>> a, b = ObjectScores(2, 1, 1, 0.5), ObjectScores(0, 3, 0, 0.5)
    >>> p = pool_objects([a, b])
    >>> p.tp, p.fp, p.fn, p.precision, p.false_per_km2
    (2, 4, 1, 0.3333333333333333, 4.0)
    """
    items = list(scores)

    def total(name: str) -> Any:
        return sum(getattr(s, name) for s in items)

    def per_bin(name: str) -> tuple[Any, ...]:
        return tuple(sum(v) for v in zip(*(getattr(s, name) for s in items), strict=True))

    if not items:
        return ObjectScores(0, 0, 0, 0.0)
    return ObjectScores(
        tp=total("tp"),
        fp=total("fp"),
        fn=total("fn"),
        scored_area_km2=float(total("scored_area_km2")),
        area_ratios=tuple(r for s in items for r in s.area_ratios),
        bin_n=per_bin("bin_n"),
        bin_confidence=per_bin("bin_confidence"),
        bin_true=per_bin("bin_true"),
    )
