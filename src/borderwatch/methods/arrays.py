"""Array helpers of the scores: pair checks, per-band moments, row strips, pixel gathering."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from borderwatch.errors import InputError

__all__ = [
    "STRIP_PX",
    "band_moments",
    "by_row_strips",
    "check_pair",
    "pixels_at",
]


#: Pixels per strip of the per-pixel score arithmetic (its temporaries stay in cache).
STRIP_PX = 1 << 16


def check_pair(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> None:
    """Check that two dates are ``(bands, rows, cols)`` alike with a matching ``valid``.

    Raises
    ------
    InputError
        Shapes differ, or no pixel is valid.
    """
    if before.shape != after.shape or before.ndim != 3:
        raise InputError(
            f"before {before.shape} and after {after.shape} must both be (bands, rows, cols)"
        )
    if valid.shape != before.shape[1:]:
        raise InputError(f"valid mask {valid.shape} does not match images {before.shape[1:]}")
    if not valid.any():
        raise InputError("no valid pixels to compare")


def band_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation of ``(bands, n)`` samples (std 0 -> 1).

    Reduced in float64 without a float64 copy of the samples.
    """
    mean, std = x.mean(axis=1, dtype=np.float64), x.std(axis=1, dtype=np.float64)
    std[std == 0] = 1.0
    return mean, std


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
