"""Global statistics from block-by-block passes, equal to the whole-array ones.

Blockwise detection never holds a whole scene, yet its standardisation and its
Otsu threshold must match :mod:`borderwatch.change` on the whole array. This
module provides the mergeable pieces:

- :class:`BandMoments`: per-band count, mean and sum of squared deviations, merged
  exactly with Chan's pairwise update (float64), so the merged mean and standard
  deviation equal numpy's whole-array values to about 1e-15 relative.
- :class:`Extremes`: the ``k`` smallest and ``k`` largest values seen, enough to
  compute the 0.01th and 99.99th percentiles *exactly* (numpy's ``linear`` method)
  that :func:`borderwatch.change.otsu_threshold` clips to.
- :func:`histogram_block` / :func:`otsu_from_histogram`: the same 512-bin histogram,
  summed over blocks (integer counts, so exact), and the same Otsu rule.

References
----------
.. [1] Chan, T. F., Golub, G. H., LeVeque, R. J. (1983). Algorithms for computing
   the sample variance. The American Statistician 37(3), 242-247.
   https://doi.org/10.1080/00031305.1983.10483115
.. [2] Otsu, N. (1979). A threshold selection method from gray-level histograms.
   IEEE Trans. SMC 9(1), 62-66. https://doi.org/10.1109/TSMC.1979.4310076
.. [3] Hyndman, R. J., Fan, Y. (1996). Sample quantiles in statistical packages.
   The American Statistician 50(4), 361-365. https://doi.org/10.1080/00031305.1996.10473566
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from borderwatch.change import otsu_from_histogram
from borderwatch.errors import InputError

__all__ = [
    "OTSU_BINS",
    "OTSU_PERCENTILES",
    "BandMoments",
    "Extremes",
    "exact_percentile",
    "histogram_block",
    "merge_histograms",
    "otsu_from_histogram",
]

#: Percentiles that :func:`borderwatch.change.otsu_threshold` clips scores to.
OTSU_PERCENTILES = (0.01, 99.99)
#: Histogram bins of :func:`borderwatch.change.otsu_threshold`.
OTSU_BINS = 512


@dataclass(frozen=True)
class BandMoments:
    """Mergeable per-band moments of valid pixels.

    Attributes
    ----------
    n : int
        Number of valid pixels.
    mean : numpy.ndarray
        ``float64 (bands,)`` mean.
    m2 : numpy.ndarray
        ``float64 (bands,)`` sum of squared deviations from the mean.
    """

    n: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> BandMoments:
        """Moments of ``values`` shaped ``(bands, n)``."""
        n = values.shape[1]
        if n == 0:
            zeros = np.zeros(values.shape[0], np.float64)
            return cls(0, zeros, zeros.copy())
        mean = np.empty(values.shape[0], np.float64)
        m2 = np.empty(values.shape[0], np.float64)
        for b, row in enumerate(values):
            # Centre in float64 so the sum of squares stays accurate for float32 input.
            dev = row.astype(np.float64)
            mean[b] = dev.mean()
            dev -= mean[b]
            m2[b] = dev @ dev
        return cls(int(n), mean, m2)

    def merge(self, other: BandMoments) -> BandMoments:
        """Chan et al.'s pairwise combination of two sets of moments."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.n / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        return BandMoments(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per band (0 replaced by 1, as in ``change``)."""
        std = np.sqrt(self.m2 / max(self.n, 1))
        std[std == 0] = 1.0
        return std

    @staticmethod
    def total(parts: Iterable[BandMoments]) -> BandMoments:
        """Merge any number of moments."""
        out: BandMoments | None = None
        for part in parts:
            out = part if out is None else out.merge(part)
        if out is None or out.n == 0:
            raise InputError("no valid pixels to compare in any block")
        return out


@dataclass(frozen=True)
class Extremes:
    """The ``k`` smallest and largest finite values seen, and how many values there were.

    Attributes
    ----------
    n : int
        Number of finite values seen.
    low, high : numpy.ndarray
        ``float64``, sorted ascending, at most ``k`` values each.
    k : int
        How many extremes are kept on each side.
    """

    n: int
    low: np.ndarray
    high: np.ndarray
    k: int

    @classmethod
    def of(cls, values: np.ndarray, k: int) -> Extremes:
        """Extremes of the finite entries of ``values`` (any shape)."""
        v = values.ravel()
        finite = np.isfinite(v)
        if not finite.all():
            v = v[finite]
        if v.size > 2 * k:
            # One partition finds both tails; order is the same in float32 and float64.
            part = np.partition(v, [k - 1, v.size - k])
            low, high = np.sort(part[:k]), np.sort(part[v.size - k :])
        else:
            low = high = np.sort(v)
            low, high = low[:k], high[max(high.size - k, 0) :]
        return cls(int(v.size), low.astype(np.float64), high.astype(np.float64), k)

    def merge(self, other: Extremes) -> Extremes:
        """Combine two sets of extremes (the smaller ``k`` wins)."""
        k = min(self.k, other.k)
        low = _smallest(np.concatenate([self.low, other.low]), k)
        high = -_smallest(-np.concatenate([self.high, other.high]), k)[::-1]
        return Extremes(self.n + other.n, low, high, k)

    def percentile(self, q: float) -> float:
        """Exact ``numpy.percentile(values, q)`` (``linear`` method) from the extremes.

        Raises
        ------
        InputError
            ``q`` needs order statistics that were not kept (raise ``k``).
        """
        return exact_percentile(self, q)

    @staticmethod
    def needed_k(n: int, q_low: float = OTSU_PERCENTILES[0]) -> int:
        """``k`` large enough for percentiles ``q_low`` and ``100 - q_low`` of ``n`` values."""
        return int(math.ceil(n * q_low / 100.0)) + 3


def _smallest(v: np.ndarray, k: int) -> np.ndarray:
    if v.size > k:
        v = np.partition(v, k - 1)[:k]
    return np.sort(v)


def exact_percentile(ext: Extremes, q: float) -> float:
    """Percentile ``q`` (0-100) of all values summarised by ``ext``, as numpy computes it.

    Uses numpy's default ``linear`` rule (Hyndman and Fan's method 7): virtual index
    ``(n - 1) q / 100`` and the same two-sided interpolation as ``numpy``.
    """
    if ext.n == 0:
        raise InputError("no finite scores to threshold")
    qq = np.true_divide(q, 100)
    # numpy's virtual index for "linear", evaluated the same way; gamma is taken
    # before the indexes are clamped to the array, as numpy does.
    virtual = np.float64((ext.n - 1) * qq)
    gamma = np.float64(virtual - np.floor(virtual))
    prev = int(np.floor(virtual))
    if virtual >= ext.n - 1:
        prev = nxt = ext.n - 1
    else:
        prev, nxt = max(prev, 0), max(prev, 0) + 1
    a, b = _order_stat(ext, prev), _order_stat(ext, nxt)
    diff = b - a
    if gamma >= 0.5:
        return float(b - diff * (1 - gamma))
    return float(a + diff * gamma)


def _order_stat(ext: Extremes, rank: int) -> np.float64:
    if rank < ext.low.size:
        return np.float64(ext.low[rank])
    from_top = ext.n - 1 - rank
    if from_top < ext.high.size:
        return np.float64(ext.high[ext.high.size - 1 - from_top])
    raise InputError(f"order statistic {rank} of {ext.n} not kept; raise k above {ext.k}")


def histogram_block(
    values: np.ndarray, lo: float, hi: float, *, bins: int = OTSU_BINS
) -> np.ndarray:
    """Count finite ``values`` clipped to ``[lo, hi]`` in ``bins`` equal bins.

    Summing these over blocks gives exactly the histogram that
    :func:`borderwatch.change.otsu_threshold` builds on the whole array.
    """
    finite = np.isfinite(values)
    v = (values if finite.all() else values[finite]).astype(np.float64).ravel()
    hist, _ = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return hist.astype(np.int64)


def merge_histograms(parts: Iterable[np.ndarray]) -> np.ndarray:
    """Sum block histograms."""
    total: np.ndarray | None = None
    for part in parts:
        total = part.copy() if total is None else total + part
    if total is None:
        raise InputError("no blocks to histogram")
    return total
