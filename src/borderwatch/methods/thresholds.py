"""Automatic thresholds for change scores.

* :func:`otsu_threshold`: maximum between-class variance (Otsu 1979), also from a
  histogram (:func:`otsu_from_histogram`).
* :func:`ki_threshold`: Kittler-Illingworth minimum error thresholding, which models
  the score histogram as two Gaussians and picks the threshold of least
  classification error; unlike Otsu it copes with very unequal class sizes (change is
  usually a few percent of an image).
* :func:`chi2_threshold`: the chi-square quantile for a p-value, for IR-MAD statistics
  (no-change pixels follow chi-square with ``bands`` degrees of freedom).

:func:`threshold_score` resolves a rule name (:data:`THRESHOLDS`) or a number. Each
takes a 1-D sample of scores (NaN ignored) and returns a float, so they work on
a global sample of valid pixels and the value can be applied block by block.

References
----------
.. [1] Kittler, J., Illingworth, J. (1986). Minimum error thresholding. Pattern
   Recognition 19(1), 41-47. https://doi.org/10.1016/0031-3203(86)90030-0
.. [2] Otsu, N. (1979). A threshold selection method from gray-level histograms.
   IEEE Trans. SMC 9(1), 62-66. https://doi.org/10.1109/TSMC.1979.4310076
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import special

from borderwatch.errors import InputError

__all__ = [
    "THRESHOLDS",
    "chi2_threshold",
    "ki_threshold",
    "otsu_from_histogram",
    "otsu_threshold",
    "threshold_score",
]


def _finite(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values)[np.isfinite(values)].astype(np.float64)
    if v.size == 0:
        raise InputError("no finite scores to threshold")
    return v


def ki_threshold(values: np.ndarray, *, bins: int = 256, log: bool = False) -> float:
    """Kittler-Illingworth minimum-error threshold of a 1-D sample.

    Parameters
    ----------
    values : numpy.ndarray
        Scores, any shape; NaNs ignored.
    bins : int
        Histogram bins between the 0.01th and 99.99th percentile.
    log : bool
        Fit on ``log1p(values)`` (for positive, heavy-tailed scores such as chi-square
        statistics, whose classes are closer to Gaussian on a log scale); the result
        is returned on the original scale.

    Returns
    -------
    float
        Threshold minimising ``J(t) = 1 + 2 (P1 ln s1 + P2 ln s2) - 2 (P1 ln P1 + P2 ln P2)``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> v = np.concatenate([rng.normal(0, 1, 9500), rng.normal(8, 1, 500)])
    >>> 2.5 < ki_threshold(v) < 5.5
    True
    """
    v = _finite(values)
    if log:
        if (v < 0).any():
            raise InputError("log=True needs non-negative scores")
        v = np.log1p(v)
    lo, hi = np.percentile(v, [0.01, 99.99])
    if hi <= lo:
        t = float(hi)
        return float(np.expm1(t)) if log else t
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    c = (edges[:-1] + edges[1:]) / 2
    p = hist / hist.sum()
    p1 = np.cumsum(p)
    p2 = 1.0 - p1
    m1 = np.cumsum(p * c)
    q1 = np.cumsum(p * c * c)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu1 = m1 / p1
        mu2 = (m1[-1] - m1) / p2
        v1 = q1 / p1 - mu1**2
        v2 = (q1[-1] - q1) / p2 - mu2**2
        # Floor the variances at a tenth of a bin width squared: degenerate classes
        # would otherwise win with ln(0) = -inf.
        floor = ((hi - lo) / bins) ** 2 / 10
        v1, v2 = np.maximum(v1, floor), np.maximum(v2, floor)
        j = 1 + p1 * np.log(v1) + p2 * np.log(v2) - 2 * (p1 * np.log(p1) + p2 * np.log(p2))
    ok = (p1 > 1e-4) & (p2 > 1e-4) & np.isfinite(j)
    if not ok.any():
        t = float(np.median(v))
    else:
        j = np.where(ok, j, np.inf)
        t = float(edges[int(np.argmin(j)) + 1])
    return float(np.expm1(t)) if log else t


def chi2_threshold(values: np.ndarray | None = None, *, dof: int, p_value: float = 0.01) -> float:
    """Chi-square quantile: scores above it reject "no change" at ``p_value``.

    Parameters
    ----------
    values : numpy.ndarray, optional
        Ignored (accepted for the common threshold signature).
    dof : int
        Degrees of freedom, the number of MAD variates (bands) of an IR-MAD statistic.
    p_value : float
        False-alarm probability per unchanged pixel, in (0, 1).

    Returns
    -------
    float

    Examples
    --------
    >>> round(chi2_threshold(dof=4, p_value=0.01), 3)
    13.277
    """
    if not 0 < p_value < 1:
        raise InputError(f"p_value must be in (0, 1), got {p_value}")
    if dof < 1:
        raise InputError(f"dof must be >= 1, got {dof}")
    return float(special.chdtri(dof, p_value))  # chi-square inverse survival


def otsu_threshold(values: np.ndarray, *, bins: int = 512) -> float:
    """Otsu's threshold of a 1-D sample (NaNs ignored).

    Parameters
    ----------
    values : numpy.ndarray
        Scores, any shape.
    bins : int
        Histogram bins between the 0.01th and 99.99th percentile.

    Returns
    -------
    float
        Threshold maximising the between-class variance.
    """
    v = values[np.isfinite(values)].astype(np.float64)
    if v.size == 0:
        raise InputError("no finite scores to threshold")
    lo, hi = np.percentile(v, [0.01, 99.99])
    if hi <= lo:
        return float(hi)
    hist, _ = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return otsu_from_histogram(hist, float(lo), float(hi))


def otsu_from_histogram(hist: np.ndarray, lo: float, hi: float) -> float:
    """Otsu's threshold from a histogram of equal bins over ``[lo, hi]``.

    Shared by :func:`otsu_threshold` and the streaming block pass, so both give the
    same value for the same histogram. The threshold is the upper edge of the last
    bin of the low class.

    Not ``skimage.filters.threshold_otsu(hist=...)``: skimage (0.26) casts the counts
    to float32, so on near ties (relative gap below ~1e-7) it picks a neighbouring bin.
    Measured (``benchmarks/library_swaps.py otsu``): same value on all 52 LEVIR-CD and
    DSIFN-CD score histograms, but one bin off the exact maximum (which the int64 and
    float64 arithmetic here finds) on 5 of 3,000 synthetic 512-bin histograms and 6 of
    600 with 1e7-7e8 counts. Both take about 0.1 ms.
    """
    if hi <= lo:
        return float(hi)
    edges = np.histogram_bin_edges(np.array([lo, hi]), bins=hist.size, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mu1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def _chi2_values(values: np.ndarray, *, dof: int | None = None, p_value: float = 0.01) -> float:
    if dof is None:
        raise InputError("the chi2 threshold needs the degrees of freedom (use method 'irmad')")
    return chi2_threshold(values, dof=dof, p_value=p_value)


#: Threshold name -> ``fn(values, **options) -> float``. Every function accepts the
#: score sample alone; ``chi2`` also needs ``dof`` and takes ``p_value``.
THRESHOLDS: dict[str, Callable[..., float]] = {
    "otsu": otsu_threshold,
    "ki": ki_threshold,
    "chi2": _chi2_values,
}


def threshold_score(
    score: np.ndarray,
    valid: np.ndarray,
    threshold: str | float,
    *,
    dof: int | None = None,
    p_value: float = 0.01,
) -> float:
    """Resolve ``threshold`` (a name from :data:`THRESHOLDS` or a number) to a value.

    Parameters
    ----------
    score : numpy.ndarray
        ``(rows, cols)`` score.
    valid : numpy.ndarray
        ``bool (rows, cols)``; only these pixels enter the statistics.
    threshold : str or float
        ``"otsu"``, ``"ki"``, ``"chi2"`` or a fixed score value.
    dof : int, optional
        Degrees of freedom of a chi-square score (``chi2`` only).
    p_value : float
        False-alarm probability per unchanged pixel (``chi2`` only).
    """
    if isinstance(threshold, str):
        try:
            fn = THRESHOLDS[threshold]
        except KeyError:
            raise InputError(
                f"unknown threshold {threshold!r}; use a number or one of {sorted(THRESHOLDS)}"
            ) from None
        if threshold == "chi2":
            return fn(score[valid], dof=dof, p_value=p_value)
        return fn(score[valid])
    value = float(threshold)
    if not math.isfinite(value):
        raise InputError(f"threshold must be finite, got {threshold!r}")
    return value
