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
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from borderwatch.errors import InputError

__all__ = [
    "ChangeResult",
    "METHODS",
    "THRESHOLDS",
    "clean_mask",
    "cva",
    "detect_change",
    "otsu_threshold",
    "standardised_difference",
    "threshold_score",
]

ThresholdName = Literal["otsu"]


@dataclass(frozen=True)
class ChangeResult:
    """Output of :func:`detect_change`.

    Attributes
    ----------
    score : numpy.ndarray
        ``float32 (rows, cols)`` change score; NaN at invalid pixels.
    mask : numpy.ndarray
        ``bool (rows, cols)`` cleaned change mask.
    threshold : float
        Score threshold that was applied.
    method : str
        Name of the score method.
    params : dict
        Every parameter used, for provenance.
    """

    score: np.ndarray
    mask: np.ndarray
    threshold: float
    method: str
    params: dict[str, object]


def _check(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> None:
    if before.shape != after.shape or before.ndim != 3:
        raise InputError(
            f"before {before.shape} and after {after.shape} must both be (bands, rows, cols)"
        )
    if valid.shape != before.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match images {before.shape[1:]}")
    if not valid.any():
        raise InputError("no valid pixels to compare")


def standardised_difference(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Per-band difference ``after - before``, standardised over valid pixels.

    Each band's difference is centred on its valid-pixel mean and divided by its
    valid-pixel standard deviation, so bands with different units and gains weigh
    the same and a global illumination offset cancels.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid, any numeric dtype.
    valid : numpy.ndarray
        ``bool (rows, cols)``.

    Returns
    -------
    numpy.ndarray
        ``float32 (bands, rows, cols)``; NaN at invalid pixels.
    """
    _check(before, after, valid)
    diff = after.astype(np.float32) - before.astype(np.float32)
    vals = diff[:, valid]
    mean = vals.mean(axis=1, dtype=np.float64)
    std = vals.std(axis=1, dtype=np.float64)
    std[std == 0] = 1.0
    z = (diff - mean[:, None, None].astype(np.float32)) / std[:, None, None].astype(np.float32)
    z[:, ~valid] = np.nan
    return z


def cva(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Change vector magnitude of the standardised difference.

    Returns the Euclidean norm over bands of :func:`standardised_difference`,
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
    z = standardised_difference(before, after, valid)
    score = np.sqrt(np.einsum("brc,brc->rc", np.nan_to_num(z), np.nan_to_num(z)) / z.shape[0])
    score = score.astype(np.float32)
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
    hist, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = np.divide(m0, w0, out=np.zeros_like(m0), where=w0 > 0)
    mu1 = np.divide(m0[-1] - m0, w1, out=np.zeros_like(m0), where=w1 > 0)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


THRESHOLDS: dict[str, Callable[[np.ndarray], float]] = {"otsu": otsu_threshold}


def threshold_score(score: np.ndarray, valid: np.ndarray, threshold: str | float) -> float:
    """Resolve ``threshold`` (a name from :data:`THRESHOLDS` or a number) to a value."""
    if isinstance(threshold, str):
        try:
            fn = THRESHOLDS[threshold]
        except KeyError:
            raise InputError(
                f"unknown threshold {threshold!r}; use a number or one of {sorted(THRESHOLDS)}"
            ) from None
        return fn(score[valid])
    value = float(threshold)
    if not math.isfinite(value):
        raise InputError(f"threshold must be finite, got {threshold!r}")
    return value


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
    out = mask.astype(bool)
    if opening_px > 0:
        out = ndimage.binary_opening(out, structure=np.ones((2 * opening_px + 1,) * 2, bool))
    if closing_px > 0:
        # Closing must not grow objects across the image border: pad with False.
        pad = closing_px
        padded = np.pad(out, pad)
        padded = ndimage.binary_closing(padded, structure=np.ones((2 * closing_px + 1,) * 2, bool))
        out = padded[pad:-pad, pad:-pad] | out
    if min_area_m2 > 0:
        labels, n = ndimage.label(out, structure=np.ones((3, 3), bool))
        if n:
            sizes = np.bincount(labels.ravel())
            keep = sizes * pixel_area_m2 >= min_area_m2
            keep[0] = False
            out = keep[labels]
    return out


METHODS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {"cva": cva}


def detect_change(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    pixel_area_m2: float,
    method: str = "cva",
    threshold: str | float = "otsu",
    min_area_m2: float = 20.0,
    opening_px: int = 1,
    closing_px: int = 1,
) -> ChangeResult:
    """Score, threshold and clean change between two co-registered images.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``: pixels valid in both dates.
    pixel_area_m2 : float
        Area of one pixel in square metres.
    method : str
        Score method, a key of :data:`METHODS`.
    threshold : str or float
        ``"otsu"`` or a fixed score value.
    min_area_m2 : float
        Minimum object size in square metres.
    opening_px, closing_px : int
        Morphological clean-up radii in pixels, see :func:`clean_mask`.

    Returns
    -------
    ChangeResult
    """
    try:
        score_fn = METHODS[method]
    except KeyError:
        raise InputError(f"unknown method {method!r}; choose one of {sorted(METHODS)}") from None
    score = score_fn(before, after, valid)
    value = threshold_score(score, valid, threshold)
    raw = valid & (np.nan_to_num(score, nan=-np.inf) > value)
    mask = clean_mask(
        raw,
        pixel_area_m2=pixel_area_m2,
        min_area_m2=min_area_m2,
        opening_px=opening_px,
        closing_px=closing_px,
    ) & valid
    params: dict[str, object] = {
        "method": method,
        "threshold": threshold,
        "threshold_value": value,
        "min_area_m2": min_area_m2,
        "opening_px": opening_px,
        "closing_px": closing_px,
    }
    return ChangeResult(score, mask, value, method, params)
