"""Morphological clean-up of change masks: separable square opening/closing, minimum area."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "SMALL_BUILDING_M",
    "clean_mask",
    "default_cleanup_px",
    "square_dilation",
    "square_erosion",
]


#: Side of a small building, metres: a 3 x 3 px clean-up kernel must fit inside one.
SMALL_BUILDING_M = 40.0


def default_cleanup_px(pixel_m: float) -> int:
    """Default opening/closing radius, pixels, at a pixel size of ``pixel_m`` metres.

    One pixel (a 3 x 3 kernel) while that kernel still fits inside a small building
    (:data:`SMALL_BUILDING_M`, so pixels up to about 13 m, e.g. Sentinel-2), and none at
    coarser pixels (Landsat's 30 m), where a 3 x 3 opening erases every change narrower
    than 90 m.

    Examples
    --------
    >>> default_cleanup_px(0.5), default_cleanup_px(10.0), default_cleanup_px(30.0)
    (1, 1, 0)
    """
    return 0 if 3 * pixel_m > SMALL_BUILDING_M else 1


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
