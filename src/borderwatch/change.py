"""Vectorised change core: scores, thresholds and clean change masks.

All functions take plain numpy arrays shaped ``(bands, rows, cols)`` for images and
``(rows, cols)`` for scores and masks, plus a boolean ``valid`` mask; statistics are
computed over valid pixels only, and invalid pixels never become change. There are
no per-pixel Python loops.

References
----------
.. [1] Malila, W. A. (1980). Change vector analysis: an approach for detecting forest
   changes with Landsat. LARS Symposia, 385.
.. [2] Otsu, N. (1979). A threshold selection method from gray-level histograms.
   IEEE Trans. SMC 9(1), 62-66. https://doi.org/10.1109/TSMC.1979.4310076
.. [3] Nielsen, A. A. (2007). The regularized iteratively reweighted MAD method for
   change detection in multi- and hyperspectral data. IEEE TIP 16(2), 463-478.
   https://doi.org/10.1109/TIP.2006.888195

Scores: ``cva`` (standardised change vector magnitude), ``irmad``
(IR-MAD chi-square statistic, :mod:`borderwatch.irmad`), ``index`` (construction-direction
index differences, :func:`borderwatch.indices.index_change`) and the default
``combined`` (see :func:`combined`). Thresholds (:data:`THRESHOLDS`): ``otsu``, ``ki``
(Kittler-Illingworth) and ``chi2`` (chi-square p-value, for ``irmad``), or a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage, special

from borderwatch.errors import InputError
from borderwatch.indices import index_score, index_stats
from borderwatch.thresholds import chi2_threshold, ki_threshold

__all__ = [
    "CombinedModel",
    "apply_combined",
    "band_moments",
    "by_row_strips",
    "combined_halo_px",
    "fit_combined",
    "normal_score_table",
    "normal_scores",
    "pixels_at",
    "rank_verification",
    "THRESHOLDS",
    "clean_mask",
    "combined",
    "square_dilation",
    "square_erosion",
    "cva",
    "cva_score",
    "otsu_from_histogram",
    "otsu_threshold",
    "smooth_score",
    "smooth_score_at",
    "standardise_bands",
    "threshold_score",
]

ThresholdName = Literal["otsu", "ki", "chi2"]

#: Standard deviation (metres) of the Gaussian that smooths the ``combined`` score: about
#: the width of a wall or a small roof edge, so it suppresses single-pixel
#: misregistration and speckle at sub-metre resolution and is a no-op (< 0.5 px) at
#: 10 m and coarser.
SMOOTH_SIGMA_M = 1.0
#: Pixels per strip of the per-pixel score arithmetic (its temporaries stay in cache).
STRIP_PX = 1 << 16


def _check(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> None:
    if before.shape != after.shape or before.ndim != 3:
        raise InputError(
            f"before {before.shape} and after {after.shape} must both be (bands, rows, cols)"
        )
    if valid.shape != before.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match images {before.shape[1:]}")
    if not valid.any():
        raise InputError("no valid pixels to compare")


def standardise_bands(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each band centred on its valid mean and divided by its valid standard deviation.

    Returns
    -------
    numpy.ndarray
        ``float32 (bands, rows, cols)``; NaN at invalid pixels.
    """
    img = image.astype(np.float32)
    vals = img[:, valid].astype(np.float64)
    mean = vals.mean(axis=1)
    std = vals.std(axis=1)
    std[std == 0] = 1.0
    out = (img - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
    out[:, ~valid] = np.nan
    return out


def cva(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Change vector magnitude of the standardised difference.

    Returns the Euclidean norm over bands of the per-band difference standardised
    over the valid pixels (:func:`cva_score`),
    divided by ``sqrt(bands)`` so the score's scale does not depend on band count.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)`` score, NaN at invalid pixels.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.zeros((2, 4, 4)); a = b.copy(); a[:, 0, 0] = 10
    >>> s = cva(b, a, np.ones((4, 4), bool))
    >>> int(np.nanargmax(s))
    0
    """
    _check(before, after, valid)
    diff = after.astype(np.float32) - before.astype(np.float32)
    mean, std = band_moments(diff[:, valid])
    return cva_score(mean, std, diff, valid)


def cva_score(mean: np.ndarray, std: np.ndarray, diff: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """CVA of a difference ``after - before`` (``float32``, overwritten) with given moments.

    The one CVA arithmetic: :func:`cva` (whole arrays) and the engine's blocks
    (:class:`borderwatch.methods.scores.FittedCva`) both call it, so scores are
    bit-identical.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN where not ``valid``.
    """
    z = diff
    z -= mean[:, None, None].astype(np.float32)
    z /= std[:, None, None].astype(np.float32)
    if valid.all():
        return np.sqrt(np.einsum("brc,brc->rc", z, z) / z.shape[0]).astype(np.float32)
    np.copyto(z, 0.0, where=np.isnan(z))
    score = np.sqrt(np.einsum("brc,brc->rc", z, z) / z.shape[0]).astype(np.float32)
    score[~valid] = np.nan
    return score


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


def _square_pass(mask: np.ndarray, radius: int, *, erode: bool) -> np.ndarray:
    """Erode or dilate by a ``(2 radius + 1)`` square as two 1-D passes."""
    op = np.logical_and if erode else np.logical_or
    out = mask
    for axis in (0, 1):
        n = out.shape[axis]

        def cut(sl: slice, axis: int = axis) -> tuple[slice, ...]:
            return (slice(None),) * axis + (sl,)

        res = out.copy()
        for s in range(1, min(radius, n - 1) + 1):
            late, early = cut(slice(s, None)), cut(slice(None, n - s))
            op(res[late], out[early], out=res[late])  # pixel i meets i - s
            op(res[early], out[late], out=res[early])  # and i + s
        if erode:  # outside the array counts as False (scipy's border_value=0)
            res[cut(slice(None, min(radius, n)))] = False
            res[cut(slice(max(n - radius, 0), None))] = False
        out = res
    return out


def square_erosion(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a ``(2 radius + 1)`` square, outside the array False.

    Equals ``scipy.ndimage.binary_erosion(mask, structure=np.ones((k, k)))`` with
    ``k = 2 radius + 1`` (tested), computed as two separable passes of shifted logical
    ANDs: several times faster for the small radii of :func:`clean_mask`.
    """
    return _square_pass(np.asarray(mask, dtype=bool), radius, erode=True)


def square_dilation(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a ``(2 radius + 1)`` square (``scipy.ndimage.binary_dilation``)."""
    return _square_pass(np.asarray(mask, dtype=bool), radius, erode=False)


def clean_mask(
    mask: np.ndarray,
    *,
    pixel_area_m2: float,
    min_area_m2: float = 0.0,
    opening_px: int = 1,
    closing_px: int = 1,
) -> np.ndarray:
    """Morphological clean-up and minimum object size.

    Parameters
    ----------
    mask : numpy.ndarray
        ``bool (rows, cols)`` raw change mask.
    pixel_area_m2 : float
        Area of one pixel in square metres.
    min_area_m2 : float
        Drop 8-connected objects smaller than this, in square metres.
    opening_px, closing_px : int
        Radii (pixels) of the square structuring elements for binary opening (removes
        speckle) then closing (fills pinholes); 0 disables.

    Returns
    -------
    numpy.ndarray
        ``bool (rows, cols)``.
    """
    out = np.array(mask, dtype=bool)  # a copy, never the caller's array
    if opening_px > 0:
        out = square_dilation(square_erosion(out, opening_px), opening_px)
    if closing_px > 0:
        # Closing must not grow objects across the image border: pad with False.
        pad = closing_px
        padded = square_erosion(square_dilation(np.pad(out, pad), closing_px), closing_px)
        out = padded[pad:-pad, pad:-pad] | out
    if min_area_m2 > 0:
        labels, n = ndimage.label(out, structure=np.ones((3, 3), bool))
        if n:
            sizes = np.bincount(labels.ravel())
            keep = sizes * pixel_area_m2 >= min_area_m2
            keep[0] = False
            out = keep[labels]
    return out


def smooth_score(score: np.ndarray, valid: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing of a score over valid pixels only (normalised convolution).

    ``sigma_px < 0.5`` returns a copy unchanged. Invalid pixels stay NaN; NaN at a
    valid pixel counts as 0.
    """
    return _smooth_own(score.astype(np.float32), valid, sigma_px=sigma_px)  # a copy


def _smooth_own(out: np.ndarray, valid: np.ndarray, *, sigma_px: float) -> np.ndarray:
    """:func:`smooth_score` of a float32 score the caller gives away (may be reused)."""
    np.copyto(out, 0.0, where=np.isnan(out))
    all_valid = bool(valid.all())
    if sigma_px >= 0.5:
        if all_valid:
            # The weight sum is the same constant at every pixel (reflecting edges), so
            # the normalised convolution is the plain one divided by it: bit for bit
            # what the general branch gives wherever all pixels within reach are valid.
            den = _weight_sum(sigma_px)
            if not den > 1e-6:
                return np.zeros_like(out)
            ndimage.gaussian_filter(out, sigma_px, output=out)  # line by line: in place
            out /= den
            return out
        w = valid.astype(np.float32)
        num = ndimage.gaussian_filter(out * w, sigma_px)
        den = ndimage.gaussian_filter(w, sigma_px)
        out = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-6)
    if not all_valid:
        out[~valid] = np.nan
    return out


def smooth_score_at(
    score: np.ndarray, valid: np.ndarray, flat: np.ndarray, *, sigma_px: float
) -> np.ndarray:
    """``smooth_score(score, valid, sigma_px=sigma_px).ravel()[flat]``, bit for bit.

    Evaluates the Gaussian only at the asked pixels and at the first pass's pixels they
    read, with ``scipy.ndimage.gaussian_filter``'s weights, summation order (in
    float64, rounded to float32 between the two passes) and reflecting edges. For
    sparse pixels (per-object peaks) this is cheaper than smoothing a whole window.

    Parameters
    ----------
    score : numpy.ndarray
        ``(rows, cols)`` score, NaN where invalid (computed as float32).
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    flat : numpy.ndarray
        Flat (raster-order) indexes of the pixels asked for.
    sigma_px : float
        Gaussian sigma, pixels.

    Returns
    -------
    numpy.ndarray
        ``float32 (len(flat),)``; NaN at invalid pixels.
    """
    f32, f64 = np.float32, np.float64
    score = np.asarray(score, dtype=f32)  # as smooth_score, which rounds to float32
    rows, cols = score.shape
    radius = int(4.0 * sigma_px + 0.5)
    if flat.size == 0:
        return np.empty(0, f32)
    if sigma_px < 0.5 or min(rows, cols) <= radius:
        return smooth_score(score, valid, sigma_px=sigma_px).ravel()[flat]
    pos = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 / (sigma_px * sigma_px) * pos**2)
    weights /= weights.sum()
    r, c = np.divmod(flat, cols)
    # The second pass (along rows) reads the first (along columns) at (r, c +- radius).
    need = np.zeros(score.size, bool)
    for k in range(-radius, radius + 1):
        need[r * cols + _reflect(c + k, cols)] = True
    at = np.flatnonzero(need)
    ar, ac = np.divmod(at, cols)

    def taps(i: np.ndarray, n: int, step: int, base: np.ndarray) -> list[np.ndarray]:
        """Flat indexes ``base + reflect(i + j) * step`` for j = -radius..radius."""
        if i.min() >= radius and i.max() < n - radius:  # no edge within reach
            return [base + (i + j) * step for j in pos]
        return [base + _reflect(i + j, n) * step for j in pos]

    down, across = taps(ar, rows, cols, ac), taps(c, cols, 1, r * cols)

    def gaussian(img: np.ndarray) -> np.ndarray:
        def first(i: np.ndarray) -> np.ndarray:
            v = img[i].astype(f64)
            np.copyto(v, 0.0, where=np.isnan(v))  # NaN counts as 0, as in smooth_score
            return v

        acc = first(down[radius]) * weights[radius]
        for j in range(radius, 0, -1):  # scipy's order: outermost taps first
            acc += (first(down[radius - j]) + first(down[radius + j])) * weights[radius - j]
        mid = np.empty(img.size, f32)  # only ``at`` is written and read
        mid[at] = acc
        out = mid[across[radius]].astype(f64) * weights[radius]
        for j in range(radius, 0, -1):
            left = mid[across[radius - j]].astype(f64)
            out += (left + mid[across[radius + j]]) * weights[radius - j]
        return out.astype(f32)

    ok = valid.ravel()[flat]
    if valid.all():  # as smooth_score's fast path: one constant weight sum
        den0 = _weight_sum(sigma_px)
        out: np.ndarray = (
            gaussian(score.ravel()) / den0 if den0 > 1e-6 else np.zeros(flat.size, f32)
        )
    else:
        w = valid.astype(f32).ravel()
        num, den = gaussian(np.where(np.isnan(score), f32(0), score).ravel() * w), gaussian(w)
        out = np.divide(num, den, out=np.zeros_like(num), where=den > 1e-6)
    out[~ok] = np.nan
    return out


def _weight_sum(sigma_px: float) -> np.float32:
    """Sum of the Gaussian's weights, float32, as ``gaussian_filter`` gives it everywhere."""
    return ndimage.gaussian_filter(np.ones((1, 1), np.float32), sigma_px)[0, 0]


def _sigma_px(pixel_m: float | None) -> float:
    """Return the score smoothing's sigma (:data:`SMOOTH_SIGMA_M`) in pixels (0: none)."""
    return SMOOTH_SIGMA_M / pixel_m if pixel_m else 0.0


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Indexes reflected into ``0..n-1`` as scipy's mode "reflect" (d c b a | a b c d)."""
    i = np.where(i < 0, -i - 1, i)
    return np.where(i >= n, 2 * n - i - 1, i)


@dataclass(frozen=True)
class CombinedModel:
    """Global statistics of the ``combined`` score, fitted once per scene.

    Small and picklable, so a block-wise or Dask run fits it on a sample of valid
    pixels and applies it to every block (:func:`apply_combined`).

    Attributes
    ----------
    before_mean, before_std, after_mean, after_std : numpy.ndarray
        ``float64 (bands,)`` per-band moments of each date over the valid pixels.
    diff_mean, diff_std : numpy.ndarray
        ``float64 (bands,)`` moments of the difference of the standardised dates.
    before_q, after_q : numpy.ndarray
        ``float64 (bands, NORMAL_SCORE_QUANTILES)`` per-band quantiles of each date at
        the probabilities of :func:`normal_score_table` (for :func:`rank_verification`),
        from at most :data:`NORMAL_SCORE_SAMPLE_PX` valid pixels (every k-th).
    rank_diff : numpy.ndarray
        ``float64 (2, bands)`` mean and standard deviation of the difference of the
        normal scores.
    index_centre, index_scale : dict
        Median and standard deviation of each index difference (after - before).
    band_names : tuple of str
        Band names the indices were chosen from.
    """

    before_mean: np.ndarray
    before_std: np.ndarray
    after_mean: np.ndarray
    after_std: np.ndarray
    diff_mean: np.ndarray
    diff_std: np.ndarray
    before_q: np.ndarray
    after_q: np.ndarray
    rank_diff: np.ndarray
    index_centre: dict[str, float]
    index_scale: dict[str, float]
    band_names: tuple[str, ...]


_ArrayPair = tuple[np.ndarray, np.ndarray]


def band_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of ``(bands, n)`` samples (std 0 -> 1).

    Reduced in float64 without a float64 copy of the samples.
    """
    mean, std = x.mean(axis=1, dtype=np.float64), x.std(axis=1, dtype=np.float64)
    std[std == 0] = 1.0
    return mean, std


#: Quantiles per band that :func:`fit_combined` keeps for the normal-score transform.
NORMAL_SCORE_QUANTILES = 1024
#: Most valid pixels (every k-th) :func:`fit_combined` fits the rank model on.
NORMAL_SCORE_SAMPLE_PX = 1 << 20


def normal_score_table(n: int = NORMAL_SCORE_QUANTILES) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(i + 0.5) / n`` and their standard normal quantiles.

    The outermost normal scores are about +-3.3 for the default 1024 quantiles:
    values beyond the first and last quantile are clamped there, so a handful of
    extreme pixels cannot dominate a score.
    """
    probs = (np.arange(n) + 0.5) / n
    return probs, special.ndtri(probs)


def normal_scores(image: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Per-band normal-score (Gaussian rank) transform with fitted quantile tables.

    Maps each value through the band's empirical distribution function onto the
    standard normal scale, so any monotone per-band change between dates (gain,
    offset, haze, a non-linear stretch, a seasonal brightening that keeps the order
    of surfaces) cancels. Tied quantiles (discrete data, saturation) map to the mean
    of their normal scores.

    Parameters
    ----------
    image : numpy.ndarray
        ``(bands, rows, cols)``.
    quantiles : numpy.ndarray
        ``(bands, n)`` from :func:`fit_combined` at :func:`normal_score_table`.

    Returns
    -------
    numpy.ndarray
        ``float32 (bands, rows, cols)``; NaN stays NaN.
    """
    _, zq = normal_score_table(quantiles.shape[1])
    out = np.empty(image.shape, np.float32)
    for k in range(image.shape[0]):
        xp, inverse = np.unique(quantiles[k], return_inverse=True)
        fp = np.bincount(inverse, weights=zq) / np.bincount(inverse)
        out[k] = _interp(image[k], xp, fp)
    return out


def pixels_at(image: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Values of every band at flat pixel indexes.

    ``image[:, mask]`` equals ``pixels_at(image, np.flatnonzero(mask))``; this is
    several times faster for sparse masks, also on strided views (block windows).

    Parameters
    ----------
    image : numpy.ndarray
        ``(bands, rows, cols)``, any strides.
    flat : numpy.ndarray
        Flat (raster-order) indexes into ``(rows, cols)``.

    Returns
    -------
    numpy.ndarray
        ``(bands, len(flat))``, a copy.
    """
    rows, cols = np.divmod(flat, image.shape[2])
    return image[:, rows, cols]


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``np.interp(x, xp, fp)``, through a table of every value for integer data.

    Digital numbers (an unshifted date read from an integer file) take few distinct
    values: interpolating each integer of their range once and looking the pixels up
    gives the same numbers several times faster than a binary search per pixel.
    """
    if x.size >= 1024:
        lo, hi = float(x.min()), float(x.max())  # NaN anywhere: comparisons are False
        exact = -(2.0**24) < lo and hi < 2.0**24  # integers exact in float32 too
        if exact and hi - lo < x.size / 4 and np.array_equal(x, np.floor(x)):
            table = np.interp(np.arange(lo, hi + 1, dtype=np.float64), xp, fp)
            return table[(x - lo).astype(np.intp)]
    return np.interp(x, xp, fp)


def _rank_side(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quantile tables ``(bands, n)`` of ``(bands, pixels)`` samples and their normal scores."""
    probs, _ = normal_score_table()
    q = np.quantile(x.astype(np.float64), probs, axis=1).T
    return q, normal_scores(x[:, :, None], q)[:, :, 0]


def fit_combined(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str] = (),
) -> CombinedModel:
    """Global statistics of the ``combined`` score over the valid pixels.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid, or ``(bands, n, 1)`` samples of
        valid pixels (block-wise runs fit on a random sample).
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    band_names : sequence of str
        Band names (roles for the indices).

    Returns
    -------
    CombinedModel
    """
    _check(before, after, valid)
    b, a = before[:, valid], after[:, valid]
    # The rank model from every k-th valid pixel: 1024 quantiles need no more than
    # about a million, and the cost then stays flat however large the scene.
    step = -(-b.shape[1] // NORMAL_SCORE_SAMPLE_PX)

    # The before date's moments and rank side (at most NORMAL_SCORE_SAMPLE_PX pixels)
    # and the index statistics run on a second thread meanwhile: numpy's reductions,
    # sorting and interpolation release the GIL.
    def before_side() -> tuple[_ArrayPair, _ArrayPair, tuple[dict[str, float], dict[str, float]]]:
        stats = index_stats(before, after, valid, band_names=band_names)
        return band_moments(b), _rank_side(b[:, ::step]), stats

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderwatch-fit") as pool:
        pending = pool.submit(before_side)
        am, as_ = band_moments(a)
        aq, a_scores = _rank_side(a[:, ::step])
        (bm, bs), (bq, b_scores), (centre, scale) = pending.result()
    d = (a - am[:, None]) / as_[:, None] - (b - bm[:, None]) / bs[:, None]
    dm, ds = band_moments(d)
    rank_diff = np.stack(band_moments(a_scores - b_scores))
    return CombinedModel(
        bm, bs, am, as_, dm, ds, bq, aq, rank_diff, centre, scale, tuple(band_names)
    )


def combined_halo_px(pixel_m: float | None) -> int:
    """Pixels of context :func:`apply_combined` needs around a block (its smoothing)."""
    sigma_px = _sigma_px(pixel_m)
    return int(4.0 * sigma_px + 0.5) + 1 if sigma_px >= 0.5 else 0


def apply_combined(
    model: CombinedModel,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    pixel_m: float | None = None,
) -> np.ndarray:
    """Score a scene or a block with fitted ``combined`` statistics.

    Parameters
    ----------
    model : CombinedModel
        From :func:`fit_combined`.
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    pixel_m : float, optional
        Pixel size in metres (for the smoothing); default no smoothing.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN at invalid pixels. On a block read with
        :func:`combined_halo_px` pixels of halo, the interior equals the whole-scene score.
    """

    def raw(rows: slice) -> np.ndarray:
        b, a = before[:, rows], after[:, rows]
        f32 = np.float32
        d = np.empty(b.shape, f32)
        tmp = np.empty(b.shape[1:], f32)
        for k in range(b.shape[0]):  # band by band, without whole-stack temporaries
            np.subtract(a[k].astype(f32, copy=False), f32(model.after_mean[k]), out=d[k])
            d[k] /= f32(model.after_std[k])
            np.subtract(b[k].astype(f32, copy=False), f32(model.before_mean[k]), out=tmp)
            tmp /= f32(model.before_std[k])
            d[k] -= tmp
            d[k] -= f32(model.diff_mean[k])
            d[k] /= f32(model.diff_std[k])
        return _with_index(model, d, b, a)

    return _smoothed(by_row_strips(raw, valid.shape), valid, pixel_m)


def rank_verification(
    model: CombinedModel,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    pixel_m: float | None = None,
    where: np.ndarray | None = None,
) -> np.ndarray:
    """Score with the ``combined`` formula under a rank (normal-score) radiometric model.

    Same as :func:`apply_combined` but each date is standardised per band by its
    normal scores (:func:`normal_scores`) instead of its mean and standard deviation,
    so any change that keeps the order of surfaces within a band (gain, offset, haze,
    a seasonal brightening of bare roofs that vegetation does not share) cancels.
    Linear standardisation over-scores bright outliers under such changes; the rank
    model over-scores noise where a histogram is dense. The pipeline therefore keeps
    an object only if its peak reaches :data:`borderwatch.classify.MIN_PEAK_SCORE`
    under both (see :func:`borderwatch.classify.classify_objects`).

    Parameters
    ----------
    where : numpy.ndarray, optional
        ``bool (rows, cols)``: only these pixels are needed (the change mask, for
        per-object peaks). The per-pixel transform then runs only within the smoothing
        radius of them, and the result is NaN elsewhere; values at ``where`` equal the
        full computation. Default: every pixel.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN at invalid pixels; needs the same halo as
        :func:`apply_combined`.
    """
    f32 = np.float32
    if where is not None:
        where = np.asarray(where, dtype=bool)
        radius = max(combined_halo_px(pixel_m) - 1, 0)  # gaussian_filter's reach
        near = square_dilation(where, radius)
        sub = near & valid
        near_raw = np.zeros(valid.shape, f32)
        at = np.flatnonzero(sub)
        if at.size:  # the same formula on the (bands, n, 1) pixels near ``where``
            b, a = pixels_at(before, at)[:, :, None], pixels_at(after, at)[:, :, None]
            part = rank_verification(model, b, a, np.ones((at.size, 1), bool))
            near_raw.ravel()[at] = part[:, 0]
        # Every pixel within ``radius`` of ``where`` holds its full value, so smoothing
        # at ``where`` alone gives the full computation's values there.
        out = np.full(valid.shape, np.nan, f32)
        asked = np.flatnonzero(where)
        sigma_px = _sigma_px(pixel_m)
        out.ravel()[asked] = smooth_score_at(near_raw, valid, asked, sigma_px=sigma_px)
        return out

    def raw(rows: slice) -> np.ndarray:
        b, a = before[:, rows], after[:, rows]
        d = normal_scores(a, model.after_q) - normal_scores(b, model.before_q)
        d -= model.rank_diff[0][:, None, None].astype(f32)
        d /= model.rank_diff[1][:, None, None].astype(f32)
        return _with_index(model, d, b, a)

    return _smoothed(by_row_strips(raw, valid.shape), valid, pixel_m)


def by_row_strips(part: Callable[[slice], np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """``float32 shape`` assembled from ``part(rows)`` over strips of about :data:`STRIP_PX`.

    For per-pixel arithmetic: its temporaries then stay in the CPU caches, and each
    value is the same as computing the whole array at once.
    """
    out = np.empty(shape, np.float32)
    step = max(STRIP_PX // max(int(np.prod(shape[1:])), 1), 1)
    for r in range(0, shape[0], step):
        rows = slice(r, r + step)
        out[rows] = part(rows)
    return out


def _smoothed(score: np.ndarray, valid: np.ndarray, pixel_m: float | None) -> np.ndarray:
    """NaN at invalid pixels, then :func:`smooth_score` with :data:`SMOOTH_SIGMA_M`."""
    if not valid.all():
        score[~valid] = np.nan
    sigma_px = _sigma_px(pixel_m)
    return _smooth_own(score, valid, sigma_px=sigma_px)


def _with_index(
    model: CombinedModel, d: np.ndarray, before: np.ndarray, after: np.ndarray
) -> np.ndarray:
    """``sqrt((cva**2 + index**2) / 2)`` of a standardised difference (unsmoothed)."""
    np.copyto(d, 0.0, where=np.isnan(d))  # invalid pixels; d is this function's own
    c = np.sqrt(np.einsum("brc,brc->rc", d, d) / d.shape[0])
    i = index_score(
        before,
        after,
        centre=model.index_centre,
        scale=model.index_scale,
        band_names=model.band_names,
    )
    return np.sqrt((c * c + i * i) / 2).astype(np.float32, copy=False)


def combined(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str] = (),
    pixel_m: float | None = None,
) -> np.ndarray:
    """Default score: spectral change magnitude and construction direction together.

    ``sqrt((cva**2 + index**2) / 2)``: the standardised change-vector magnitude
    (:func:`cva` of the per-date standardised bands, any change of any band) and the
    one-sided index score (:func:`borderwatch.indices.index_change`: brightness or
    built-up gain, vegetation loss) on the same standardised scale. Pixels that changed
    *and* changed the way construction changes them score highest; a strong change in
    the other direction (re-greening, shadow) still scores through the CVA term at
    ``1/sqrt(2)`` of its weight. The result is smoothed with a Gaussian of
    :data:`SMOOTH_SIGMA_M` metres.

    IR-MAD is not part of the default: on the shared benchmark data its statistic
    separates change worse than the standardised CVA (see benchmarks/results).

    Equals ``apply_combined(fit_combined(...), ...)``; a block-wise run fits the
    global statistics once (:func:`fit_combined`) and applies them per block.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    band_names : sequence of str
        Band names (roles for the indices).
    pixel_m : float, optional
        Pixel size in metres (for the smoothing); default no smoothing.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, NaN at invalid pixels.
    """
    model = fit_combined(before, after, valid, band_names=band_names)
    return apply_combined(model, before, after, valid, pixel_m=pixel_m)
