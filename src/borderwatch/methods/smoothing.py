"""Gaussian smoothing of scores over valid pixels, whole or at chosen pixels only."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "SMOOTH_SIGMA_M",
    "smoothing_sigma_px",
    "smooth_score",
    "smooth_score_at",
    "smoothed",
]


#: Standard deviation (metres) of the Gaussian that smooths the ``combined`` score: about
#: the width of a wall or a small roof edge, so it suppresses single-pixel
#: misregistration and speckle at sub-metre resolution and is a no-op (< 0.5 px) at
#: 10 m and coarser.
SMOOTH_SIGMA_M = 1.0


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


def smoothing_sigma_px(pixel_m: float | None) -> float:
    """Return the score smoothing's sigma (:data:`SMOOTH_SIGMA_M`) in pixels (0: none)."""
    return SMOOTH_SIGMA_M / pixel_m if pixel_m else 0.0


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """Indexes reflected into ``0..n-1`` as scipy's mode "reflect" (d c b a | a b c d)."""
    i = np.where(i < 0, -i - 1, i)
    return np.where(i >= n, 2 * n - i - 1, i)


def smoothed(score: np.ndarray, valid: np.ndarray, pixel_m: float | None) -> np.ndarray:
    """NaN at invalid pixels, then :func:`smooth_score` with :data:`SMOOTH_SIGMA_M`."""
    if not valid.all():
        score[~valid] = np.nan
    sigma_px = smoothing_sigma_px(pixel_m)
    return _smooth_own(score, valid, sigma_px=sigma_px)
