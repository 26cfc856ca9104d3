"""Co-registration and relative radiometric normalisation of a before/after pair.

Co-registration estimates the sub-pixel translation between the dates by phase
correlation of a radiometry-insensitive composite (gradient magnitude of the mean of
the standardised bands), globally and per block, shifts the *after* image onto the
*before* grid (Fourier or bilinear shift, NaN-aware), and measures the residual shift
after correction so that it can be recorded with the results.

Radiometric normalisation maps the after image onto the before image's radiometry:
by per-band histogram matching, or by orthogonal regression on the invariant
(no-change) pixels that IR-MAD finds (Canty & Nielsen 2008), which is robust to the
changes themselves.

References
----------
.. [1] Guizar-Sicairos, M., Thurman, S. T., Fienup, J. R. (2008). Efficient subpixel
   image registration algorithms. Optics Letters 33(2), 156-158.
   https://doi.org/10.1364/OL.33.000156
.. [2] Canty, M. J., Nielsen, A. A. (2008). Automatic radiometric normalization of
   multitemporal satellite imagery with the iteratively re-weighted MAD transformation.
   Remote Sensing of Environment 112(3), 1025-1036.
   https://doi.org/10.1016/j.rse.2007.07.013
"""

from __future__ import annotations

import dataclasses
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy import ndimage

from borderwatch.errors import InputError

__all__ = [
    "Registration",
    "apply_shift",
    "block_shifts",
    "coregister",
    "estimate_shift",
]

NormaliseName = Literal["none", "irmad", "histogram"]


@dataclass(frozen=True)
class Registration:
    """Result of :func:`coregister`.

    Attributes
    ----------
    after : numpy.ndarray
        ``float32 (bands, rows, cols)`` after image shifted onto the before grid; NaN
        where invalid (including the border the shift uncovered).
    valid : numpy.ndarray
        ``bool (rows, cols)``: valid in both dates after the shift.
    shift_px : tuple of float
        Applied ``(row, col)`` shift in pixels (positive = moved down/right).
    residual_px : tuple of float
        ``(row, col)`` shift still measured after the correction, pixels.
    block_shifts : numpy.ndarray
        ``(n_blocks, 4)`` rows of ``row0, col0, dy, dx`` (image pixels) measured per
        block of the measuring window before correction (empty if the window is
        smaller than one block).
    applied : bool
        Whether ``after`` was moved; False when the estimate was negligible (under
        0.02 px: ``shift_px`` holds it, not applied) or implausible (over
        ``max_shift_px``: ``shift_px`` is then (0, 0)).
    """

    after: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    shift_px: tuple[float, float]
    residual_px: tuple[float, float]
    block_shifts: np.ndarray = field(repr=False)
    applied: bool = True

    @property
    def residual_norm_px(self) -> float:
        """Length of the residual shift, pixels."""
        return float(np.hypot(*self.residual_px))


def _composite(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the mean standardised band, 0 outside ``valid``.

    Edges are what line up between dates; their positions do not depend on gain,
    offset or season as much as the raw values do.
    """
    img = image.astype(np.float32, copy=False)
    # Band moments from every 4th row and column (only a scale for the edges).
    sub = valid[::4, ::4]
    vals = img[:, ::4, ::4][:, sub] if sub.sum() >= 1024 else img[:, valid]
    vals = vals.astype(np.float64)
    mean = vals.mean(axis=1)
    std = vals.std(axis=1)
    std[std == 0] = 1.0
    # Mean of the standardised bands as one weighted sum: sum_b (x_b - m_b) / (s_b n).
    weights = (1.0 / (std * len(std))).astype(np.float32)
    z = np.tensordot(weights, img, axes=1) - np.float32((mean * weights).sum())
    z = np.nan_to_num(np.where(valid, z, np.float32(0.0)))
    g = np.hypot(ndimage.sobel(z, axis=0), ndimage.sobel(z, axis=1))
    # Edges next to invalid areas are artefacts of the fill: drop them.
    g[~ndimage.binary_erosion(valid, iterations=2, border_value=1)] = 0.0
    return g


def _window(shape: tuple[int, int]) -> np.ndarray:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1]))


def estimate_shift(
    reference: np.ndarray,
    moving: np.ndarray,
    valid: np.ndarray,
    *,
    upsample_factor: int = 50,
) -> tuple[float, float]:
    """Sub-pixel translation that registers ``moving`` onto ``reference``.

    Parameters
    ----------
    reference, moving : numpy.ndarray
        ``(bands, rows, cols)`` images on the same grid (NaN allowed where invalid).
    valid : numpy.ndarray
        ``bool (rows, cols)``: pixels valid in both images.
    upsample_factor : int
        Phase-correlation upsampling; precision is ``1 / upsample_factor`` px.

    Returns
    -------
    tuple of float
        ``(row, col)`` shift in pixels to apply to ``moving`` (see :func:`apply_shift`).

    Raises
    ------
    InputError
        Fewer than 16 x 16 valid pixels.
    """
    if reference.shape != moving.shape or valid.shape != reference.shape[1:]:
        raise InputError(f"shapes differ: {reference.shape}, {moving.shape}, {valid.shape}")
    if valid.sum() < MIN_SHIFT_SIDE_PX**2 or min(valid.shape) < MIN_SHIFT_SIDE_PX:
        side = MIN_SHIFT_SIDE_PX
        raise InputError(f"too few valid pixels to estimate a shift (need {side} x {side})")
    from scipy import fft
    from skimage.registration import phase_cross_correlation  # only when aligning

    win = _window(valid.shape)
    # The two composites on two threads, the FFTs on two workers: ndimage filters and
    # pocketfft release the GIL, and this runs before any block work starts.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderwatch-align") as pool:
        pending = pool.submit(_composite, moving, valid)
        ref = _composite(reference, valid) * win
        mov = pending.result() * win
    with fft.set_workers(2):
        shift, _, _ = phase_cross_correlation(ref, mov, upsample_factor=upsample_factor)
    return float(shift[0]), float(shift[1])


def block_shifts(
    reference: np.ndarray,
    moving: np.ndarray,
    valid: np.ndarray,
    *,
    block: int = 256,
    min_valid: float = 0.5,
) -> np.ndarray:
    """Shift per block (non-overlapping ``block`` x ``block`` pixel tiles).

    Blocks with less than ``min_valid`` valid pixels are skipped.

    Returns
    -------
    numpy.ndarray
        ``(n, 4)`` rows of ``row0, col0, dy, dx`` (pixels).
    """
    rows, cols = valid.shape
    out = []
    for r0 in range(0, rows - block + 1, block):
        for c0 in range(0, cols - block + 1, block):
            sl = (slice(r0, r0 + block), slice(c0, c0 + block))
            v = valid[sl]
            if v.mean() < min_valid:
                continue
            dy, dx = estimate_shift(reference[:, sl[0], sl[1]], moving[:, sl[0], sl[1]], v)
            out.append((r0, c0, dy, dx))
    return np.asarray(out, dtype=np.float64).reshape(-1, 4)


def _linear_shift(
    a: np.ndarray, shift: tuple[float, float], *, edge: Literal["nearest", "zero"]
) -> np.ndarray:
    """Bilinear translation of the last two axes, as ``scipy.ndimage.shift(order=1)``.

    Separable: two 2-tap interpolations with the same weights for every pixel, on
    slices, several times faster than the general coordinate mapping of
    ``ndimage.shift``. ``edge="nearest"`` repeats the edge values (``mode="nearest"``);
    ``"zero"`` gives 0 where the source coordinate falls outside the array
    (``mode="constant", cval=0``). Computes in ``a``'s float dtype.
    """
    out = a
    for axis, s in ((a.ndim - 2, shift[0]), (a.ndim - 1, shift[1])):
        if s == 0:
            continue
        n = out.shape[axis]
        k = math.floor(-s)  # out[o] = in[o - s] = (1 - f) in[o + k] + f in[o + k + 1]
        f = out.dtype.type(-s - k)
        # Outputs whose two taps are both inside: o0 <= o < o1; before them both taps
        # clip to the first input, after them to the last.
        o0, o1 = min(max(0, -k), n), max(min(n, n - k - 1), 0)
        o1 = max(o1, o0)

        def cut(start: int, stop: int, axis: int = axis) -> tuple[slice, ...]:
            return (slice(None),) * axis + (slice(start, stop),)

        res = np.empty_like(out)
        if o1 > o0:  # in place, without temporaries: a0 + f (a1 - a0)
            mid = res[cut(o0, o1)]
            np.subtract(out[cut(o0 + k + 1, o1 + k + 1)], out[cut(o0 + k, o1 + k)], out=mid)
            mid *= f
            mid += out[cut(o0 + k, o1 + k)]
        res[cut(0, o0)] = out[cut(0, 1)]
        res[cut(o1, n)] = out[cut(n - 1, n)]
        if edge == "zero":
            x = np.arange(n) - s
            shape = [1] * out.ndim
            shape[axis] = n
            res *= ((x >= 0) & (x <= n - 1)).reshape(shape)
        out = res
    return out if out is not a else a.copy()


def _linear_shift_strips(a: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
    """:func:`_linear_shift` with ``edge="nearest"``, a strip of rows at a time.

    Each strip is shifted from the input rows it reads (plus the strip itself), so the
    temporaries stay small and in cache; every value equals the whole-array result.
    """
    n = a.shape[-2]
    step = max(SHIFT_STRIP_PX // max(a.size // max(n, 1), 1), 1)
    k = math.floor(-shift[0])  # output row o reads input rows o + k and o + k + 1
    out = np.empty(a.shape, a.dtype)
    for r0 in range(0, n, step):
        r1 = min(r0 + step, n)
        p0, p1 = max(min(r0, r0 + k), 0), min(max(r1, r1 + k + 1), n)
        part = _linear_shift(a[..., p0:p1, :], shift, edge="nearest")
        out[..., r0:r1, :] = part[..., r0 - p0 : r1 - p0, :]
    return out


def apply_shift(
    image: np.ndarray,
    valid: np.ndarray,
    shift: tuple[float, float],
    *,
    mode: Literal["fourier", "bilinear"] = "bilinear",
) -> tuple[np.ndarray, np.ndarray]:
    """Translate an image by a sub-pixel ``(row, col)`` shift, NaN-aware.

    Invalid pixels are filled with their band's valid mean before shifting, then the
    valid mask is shifted too: a pixel stays valid only if at least 99.9 % of its
    interpolation weight came from valid pixels. Pixels uncovered at the border become
    invalid.

    Parameters
    ----------
    image : numpy.ndarray
        ``(bands, rows, cols)``.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    shift : tuple of float
        ``(row, col)`` in pixels, as returned by :func:`estimate_shift`.
    mode : {"bilinear", "fourier"}
        Bilinear interpolation (local, no ringing at edges of NaN holes) or an exact
        Fourier shift (band-limited; best for smooth imagery).

    Returns
    -------
    shifted : numpy.ndarray
        ``float32 (bands, rows, cols)``, NaN where invalid.
    shifted_valid : numpy.ndarray
        ``bool (rows, cols)``.
    """
    filled = image if image.dtype == np.float32 else image.astype(np.float32)
    exact = np.issubdtype(image.dtype, np.integer)  # no NaN to look for
    for k in range(filled.shape[0]):
        ok = valid if exact else valid & np.isfinite(filled[k])
        if not ok.all():
            if filled is image:  # copy only when something must be filled
                filled = image.copy()
            band = filled[k]
            band[~ok] = band[ok].mean(dtype=np.float64) if ok.any() else 0.0
    if mode == "fourier":
        out = np.stack(
            [np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(b), shift)).real for b in filled]
        )
    elif mode == "bilinear":
        out = _linear_shift_strips(filled, shift)
    else:
        raise InputError(f"unknown shift mode {mode!r}; use 'bilinear' or 'fourier'")
    out = out.astype(np.float32, copy=False)
    if valid.all():
        # The shifted weight of an all-valid image is 0 or (to rounding) 1, decided by
        # the row and the column alone: two 1-D shifts instead of a 2-D one.
        f32 = np.float32
        rows = _linear_shift(np.ones((valid.shape[0], 1), f32), (shift[0], 0.0), edge="zero")
        cols = _linear_shift(np.ones((1, valid.shape[1]), f32), (0.0, shift[1]), edge="zero")
        row_ok, col_ok = rows[:, 0] > 0.999, cols[0] > 0.999
        out[:, ~row_ok, :] = np.nan
        out[:, :, ~col_ok] = np.nan
        return out, row_ok[:, None] & col_ok[None, :]
    weight = _linear_shift(valid.astype(np.float32), shift, edge="zero")
    new_valid = weight > 0.999
    out[:, ~new_valid] = np.nan
    return out, new_valid


#: Side of the centre window :func:`coregister` measures the shift on, pixels.
ALIGN_WINDOW_PX = 1024
#: Fewest pixels valid in both dates a shift is measured on (a 64 x 64 square).
MIN_ALIGN_PIXELS = 64 * 64
#: Side of the smallest window :func:`estimate_shift` measures a shift on, pixels (it
#: needs at least this many pixels a side and this squared valid in both dates).
MIN_SHIFT_SIDE_PX = 16
#: Pixels (all bands) per strip of :func:`apply_shift`'s bilinear shift.
SHIFT_STRIP_PX = 1 << 18


def centre_window(
    shape: tuple[int, int], *, size: int = ALIGN_WINDOW_PX
) -> tuple[int, int, int, int]:
    """``(row0, col0, rows, cols)`` of the centred window of at most ``size`` a side.

    The engine measures the global shift on this window (:func:`borderwatch.engine.fit.task_align`).
    """
    rows, cols = shape
    h, w = min(rows, size), min(cols, size)
    return (rows - h) // 2, (cols - w) // 2, h, w


def coregister(
    before: np.ndarray,
    after: np.ndarray,
    valid_before: np.ndarray,
    valid_after: np.ndarray,
    *,
    max_shift_px: float = 3.0,
    block: int = 256,
    mode: Literal["fourier", "bilinear"] = "bilinear",
    refine: int = 3,
    window_px: int | None = ALIGN_WINDOW_PX,
) -> Registration:
    """Estimate and correct the translation of ``after`` relative to ``before``.

    The shift is measured on the centre window of at most ``window_px`` pixels a side
    (a global translation shows anywhere; the cost of the correlation then does not
    grow with the scene) and applied to the whole image.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on one grid (the loader's analysis grid).
    valid_before, valid_after : numpy.ndarray
        ``bool (rows, cols)``.
    max_shift_px : float
        Largest plausible misregistration between two orthorectified products, pixels.
        A larger estimate is taken as a failure of the correlation (e.g. on a scene of
        mostly changed or featureless pixels) and no shift is applied.
    block : int
        Block size for the per-block shifts reported in :attr:`Registration.block_shifts`.
    mode : {"bilinear", "fourier"}
        Interpolation of :func:`apply_shift`.
    refine : int
        Maximum number of estimate-correct rounds (1 = single estimate).
    window_px : int or None
        Side of the centre window (:func:`centre_window`) the shift and the per-block
        shifts are measured on, pixels; None, or fewer than :data:`MIN_ALIGN_PIXELS`
        pixels valid in both dates there: the whole image.

    Returns
    -------
    Registration
    """
    rows, cols = valid_before.shape
    r0, c0, h, w = centre_window((rows, cols), size=window_px or max(rows, cols))
    rs, cs = slice(r0, r0 + h), slice(c0, c0 + w)
    # A window with too little overlap (a partial footprint) measures on everything.
    if (h, w) != (rows, cols) and (valid_before[rs, cs] & valid_after[rs, cs]).sum() >= (
        MIN_ALIGN_PIXELS
    ):
        reg = coregister(
            before[:, rs, cs],
            after[:, rs, cs],
            valid_before[rs, cs],
            valid_after[rs, cs],
            max_shift_px=max_shift_px,
            block=block,
            mode=mode,
            refine=refine,
            window_px=None,
        )
        if reg.applied:
            moved, moved_valid = apply_shift(after, valid_after, reg.shift_px, mode=mode)
        else:
            moved, moved_valid = after.astype(np.float32), valid_after.copy()
        blocks = reg.block_shifts + np.array([r0, c0, 0.0, 0.0])
        both = valid_before & moved_valid
        return Registration(moved, both, reg.shift_px, reg.residual_px, blocks, reg.applied)
    valid = valid_before & valid_after
    # The per-block shifts (a diagnostic) are measured on a second thread meanwhile:
    # phase correlation's FFTs and products release the GIL.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="borderwatch-align") as pool:
        pending = pool.submit(block_shifts, before, after, valid, block=block)
        reg = _refined(before, after, valid_before, valid_after, max_shift_px, mode, refine)
        return dataclasses.replace(reg, block_shifts=pending.result())


def _refined(
    before: np.ndarray,
    after: np.ndarray,
    valid_before: np.ndarray,
    valid_after: np.ndarray,
    max_shift_px: float,
    mode: Literal["fourier", "bilinear"],
    refine: int,
) -> Registration:
    """Estimate the shift on the whole images and refine it (``block_shifts`` left empty)."""
    valid = valid_before & valid_after
    shift = estimate_shift(before, after, valid)
    blocks = np.zeros((0, 4))
    if np.hypot(*shift) > max_shift_px:
        shift = (0.0, 0.0)
    moved, moved_valid = after.astype(np.float32), valid_after.copy()
    residual = shift
    applied = False
    # Windowed phase correlation underestimates sub-pixel shifts slightly; re-measuring
    # on the corrected image and adding the remainder converges in a step or two.
    for _ in range(refine):
        if np.hypot(*residual) < 0.02:
            break
        if residual is not shift:
            shift = (shift[0] + residual[0], shift[1] + residual[1])
        moved, moved_valid = apply_shift(after, valid_after, shift, mode=mode)
        applied = True
        residual = estimate_shift(before, moved, valid_before & moved_valid)
    both = valid_before & moved_valid
    if shift == (0.0, 0.0) or residual is shift:
        residual = estimate_shift(before, moved, both)
    return Registration(moved, both, shift, residual, blocks, applied)
