"""Footprints from change masks: a new structure's cast shadow and blurred rim split off.

A change mask thresholded on a change score holds more than the structure: the
shadow it casts on the ground beside it (as large as the roof for a 3-storey
building in a low sun) and a rim of mixed pixels that the sensor's point-spread
function and the co-registration residual smear across the outline.
:func:`refine_footprints` removes both, per pixel and from a bounded neighbourhood
only (:func:`footprint_halo_px`), so every block of a blockwise run gives the same
pixels as the whole scene:

1. *Cast shadow* (:func:`shadow_like`): a shadow takes the direct sunlight off a
   surface and leaves the diffuse skylight, so the surface keeps its spectrum
   (nearly: skylight is bluer) and loses most of its brightness. A changed pixel
   whose after-date spectrum is within :data:`SHADOW_MAX_ANGLE_DEG` of its before-date
   spectrum and whose visible brightness fell to between :data:`SHADOW_MIN_RATIO` and
   :data:`SHADOW_MAX_RATIO` of it is shadow-like. Such pixels are removed only where
   they lie, through changed pixels, in the scene's shadow direction
   (:func:`shadow_direction`, estimated from the scene: which side of brightened new
   structures their new shadows fall on) from a sunlit structure (the caster: at least
   3 pixels across, not darkened into the shadow range, :data:`CASTER_MIN_RATIO`) within
   :data:`SHADOW_REACH_M`. A dark roof on bare ground darkens it much as a shadow
   would, but nothing sunlit casts it, so it stays whole (with its own shadow: the
   two cannot be told apart by their spectra). Thin remnants (under 3 pixels across)
   left beside a removed shadow are its mixed outline and go with it.
2. *Rim* (the half-contrast edge): an edge blurred by a symmetric point-spread function
   crosses half its contrast where the true edge lies, so a pixel belongs to the
   footprint only when its spectral change ``|after - before|`` reaches half the
   largest change among the footprint's pixels within :data:`EDGE_RADIUS_PX`.

Both apply where the pixel resolves a structure's outline and its shadow
(:data:`~borderwatch.objects.classify.RESOLVE_MAX_PIXEL_M`, 2.5 m); at coarser pixels a
structure and its shadow share pixels and the mask is left as it is.

References
----------
Polidorio, A. M. et al. (2003), "Automatic shadow segmentation in aerial color images",
Proc. SIBGRAPI 2003 (shadows: low intensity, the surface's spectrum kept).
Tsai, V. J. D. (2006), "A comparative study on shadow compensation of color aerial
images in invariant color models", IEEE Trans. Geosci. Remote Sens. 44(6).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

from borderwatch.methods.arrays import pixels_at
from borderwatch.methods.indices import visible_brightness
from borderwatch.objects.classify import RESOLVE_MAX_PIXEL_M
from borderwatch.objects.morphology import square_dilation, square_erosion

__all__ = [
    "EDGE_RADIUS_PX",
    "SHADOW_MAX_ANGLE_DEG",
    "SHADOW_MAX_RATIO",
    "SHADOW_MIN_RATIO",
    "SHADOW_REACH_M",
    "credit_split",
    "footprint_halo_px",
    "MIN_SHADOW_DOMINANCE",
    "MIN_SHADOW_PIXELS",
    "STEPS",
    "refine_footprints",
    "shadow_direction",
    "shadow_like",
]

#: A cast shadow keeps at most this share of the visible brightness: skylight alone
#: gives about 0.2-0.5 of full sun; a pixel half in shadow (0.6-0.75) is the shadow's
#: rim, left to the remnant and half-contrast rules, and the dim half of a gabled roof
#: (0.85-0.95 of the sunlit half) stays well above.
SHADOW_MAX_RATIO = 0.6
#: ...and at least this share (darker is water or a data fault, not a shadow).
SHADOW_MIN_RATIO = 0.1
#: Largest angle (degrees) between the before and after spectra of a shadowed surface:
#: skylight is bluer than sunlight, which turns a surface's spectrum by about 8-15
#: degrees; a new roof turns it by 20-50 degrees, except dark roofs on bare ground.
SHADOW_MAX_ANGLE_DEG = 20.0
#: A caster keeps at least this share of the visible brightness of the ground it
#: replaced: a sunlit structure is not itself darkened into the shadow range. A dark
#: roof on bright ground is, so it casts nothing here and keeps its (equally dark)
#: shadow: the two cannot be told apart by their spectra.
CASTER_MIN_RATIO = SHADOW_MAX_RATIO
#: Longest shadow split off, metres: a 10 m structure in a 35 degree sun.
SHADOW_REACH_M = 15.0
#: Radius (pixels) of the neighbourhood whose largest change sets the half-contrast
#: level: the point-spread function's blur (about 1 pixel) plus the co-registration
#: residual (under 1 pixel after alignment).
EDGE_RADIUS_PX = 2


def footprint_halo_px(pixel_m: float) -> int:
    """Context (pixels) :func:`refine_footprints` needs around a block at ``pixel_m`` metres.

    0 where footprints are not refined (pixels coarser than
    :data:`~borderwatch.objects.classify.RESOLVE_MAX_PIXEL_M`).
    """
    if not pixel_m <= RESOLVE_MAX_PIXEL_M:
        return 0
    # Shadow reach, the half-contrast window, and the remnant opening (2) and its
    # 1-pixel contact test.
    return math.ceil(SHADOW_REACH_M / pixel_m) + EDGE_RADIUS_PX + 3


def shadow_like(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, band_names: Sequence[str]
) -> np.ndarray:
    """Pixels whose after date looks like their before date in a cast shadow.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` in a linear radiometric unit (DN, reflectance), the
        after date normalised to the before date's radiometry.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    band_names : sequence of str
        Band names (the visible bands set the brightness, all bands the spectrum).

    Returns
    -------
    numpy.ndarray
        ``bool (rows, cols)``: visible brightness ratio after / before in
        [:data:`SHADOW_MIN_RATIO`, :data:`SHADOW_MAX_RATIO`] and spectral angle at most
        :data:`SHADOW_MAX_ANGLE_DEG`; False where not ``valid``.
    """
    b = np.nan_to_num(before.astype(np.float32))
    a = np.nan_to_num(after.astype(np.float32))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = visible_brightness(a, band_names) / visible_brightness(b, band_names)
        cos = (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    dark = (ratio >= SHADOW_MIN_RATIO) & (ratio <= SHADOW_MAX_RATIO)
    same = cos >= math.cos(math.radians(SHADOW_MAX_ANGLE_DEG))
    return dark & same & valid


#: The eight one-pixel steps ``(rows, cols)``, clockwise from north (row -1).
STEPS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
#: A shadow direction is taken from the scene only with at least this many shadow
#: pixels beside brightened structures in it...
MIN_SHADOW_PIXELS = 20
#: ...and at least this many times as many as in the opposite direction.
MIN_SHADOW_DOMINANCE = 2.0
#: Pixels from a brightened structure within which a shadow pixel counts as beside it.
_BESIDE_PX = 2


def _shift(mask: np.ndarray, dr: int, dc: int) -> np.ndarray:
    """``mask`` moved by ``(dr, dc)`` pixels, False where nothing moved in."""
    out = np.zeros_like(mask)
    rows, cols = mask.shape
    src = mask[max(-dr, 0) : rows - max(dr, 0), max(-dc, 0) : cols - max(dc, 0)]
    out[max(dr, 0) : max(dr, 0) + src.shape[0], max(dc, 0) : max(dc, 0) + src.shape[1]] = src
    return out


def _thick(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` in parts at least 3 pixels across (an opening by a 3 x 3 square)."""
    return square_dilation(square_erosion(mask, 1), 1) & mask


def _spectral_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``|after - before|`` over the bands, ``float32 (rows, cols)``; 0 where NaN."""
    diff = np.nan_to_num(after.astype(np.float32) - before.astype(np.float32))
    return np.sqrt((diff * diff).sum(axis=0))


def shadow_direction(
    windows: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    band_names: Sequence[str],
    pixel_m: float,
) -> tuple[int, int] | None:
    """Estimate, from the scene, the direction in which new structures cast their shadows.

    New shadows lie beside new structures on the side away from the sun. In each
    window, changed pixels that brightened (visible brightness up by
    ``1 / SHADOW_MAX_RATIO`` or more, in parts at least 3 pixels across) are new
    structures, shadow-like changed pixels (:func:`shadow_like`) new shadows; for each
    of the eight :data:`STEPS` the shadow pixels within 2 pixels of a structure in that
    direction are counted. "Changed" is a spectral change ``|after - before|`` over 4
    times the window's median (the noise and season floor).

    Parameters
    ----------
    windows : iterable of (before, after, valid)
        ``(bands, rows, cols)`` arrays (after date co-registered and normalised) and
        their ``bool (rows, cols)`` valid mask: the scene, or its sample windows.
    band_names : sequence of str
        Band names.
    pixel_m : float
        Pixel size, metres; coarser than
        :data:`~borderwatch.objects.classify.RESOLVE_MAX_PIXEL_M` gives None.

    Returns
    -------
    tuple of int or None
        The step ``(rows, cols)`` from a structure towards its shadow, or None where
        the scene shows no consistent shadow (:data:`MIN_SHADOW_PIXELS`,
        :data:`MIN_SHADOW_DOMINANCE`).
    """
    if not pixel_m <= RESOLVE_MAX_PIXEL_M:
        return None
    counts = np.zeros(len(STEPS))
    for before, after, valid in windows:
        change = _spectral_change(before, after)
        if not valid.any():
            continue
        changed = valid & (change > 4.0 * float(np.median(change[valid])))
        with np.errstate(invalid="ignore", divide="ignore"):
            gain = visible_brightness(after, band_names) / visible_brightness(before, band_names)
        bright = _thick(changed & (gain >= 1.0 / SHADOW_MAX_RATIO))
        shadow = changed & shadow_like(before, after, valid, band_names=band_names)
        for j, (dr, dc) in enumerate(STEPS):
            beside = np.zeros_like(bright)
            for k in range(1, _BESIDE_PX + 1):
                beside |= _shift(bright, k * dr, k * dc)
            counts[j] += np.count_nonzero(shadow & beside & ~bright)
    best = int(np.argmax(counts))
    opposite = counts[(best + len(STEPS) // 2) % len(STEPS)]
    if counts[best] < MIN_SHADOW_PIXELS or counts[best] < MIN_SHADOW_DOMINANCE * opposite:
        return None
    return STEPS[best]


def refine_footprints(
    mask: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str],
    pixel_m: float,
    shadow_step: tuple[int, int] | None,
) -> np.ndarray:
    """Split cast shadows and the blurred rim off a change mask (see the module notes).

    Parameters
    ----------
    mask : numpy.ndarray
        ``bool (rows, cols)`` cleaned change mask.
    before, after, valid, band_names
        As :func:`shadow_like`.
    pixel_m : float
        Pixel size, metres. Coarser than
        :data:`~borderwatch.objects.classify.RESOLVE_MAX_PIXEL_M`: ``mask`` is returned
        unchanged (a copy).
    shadow_step : tuple of int or None
        The scene's shadow direction (:func:`shadow_direction`); None: no shadow is
        split off, only the rim.

    Returns
    -------
    numpy.ndarray
        ``bool (rows, cols)``, a subset of ``mask``. Exact at pixels at least
        :func:`footprint_halo_px` from the array's edge (blocks read that halo).
    """
    mask = np.asarray(mask, dtype=bool)
    if not (pixel_m <= RESOLVE_MAX_PIXEL_M and mask.any()):
        return mask.copy()
    footprint = mask.copy()
    if shadow_step is not None:
        footprint = _split_shadows(mask, before, after, valid, band_names, pixel_m, shadow_step)
    # Half-contrast edge: at least half the largest change of the footprint nearby.
    # Only the footprint's pixels are tested and set the peaks (a sparse mask).
    pos = np.flatnonzero(footprint)
    change = np.zeros(mask.shape, np.float32)
    change.ravel()[pos] = _spectral_change(
        pixels_at(before, pos)[:, :, None], pixels_at(after, pos)[:, :, None]
    )[:, 0]
    size = 2 * EDGE_RADIUS_PX + 1
    peak = ndimage.maximum_filter(change, size=size, mode="constant")
    return footprint & (change >= 0.5 * peak)


def _split_shadows(
    mask: np.ndarray,
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    band_names: Sequence[str],
    pixel_m: float,
    step: tuple[int, int],
) -> np.ndarray:
    """``mask`` less the shadow-like pixels cast by a structure (see the module notes)."""
    # The pixel tests at the changed pixels only (a sparse mask).
    pos = np.flatnonzero(mask)
    b = pixels_at(before, pos)[:, :, None]
    a = pixels_at(after, pos)[:, :, None]
    shadow = np.zeros(mask.shape, bool)
    gain = np.zeros(mask.shape, np.float32)
    shadow.ravel()[pos] = shadow_like(b, a, valid.ravel()[pos][:, None], band_names=band_names)[
        :, 0
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = visible_brightness(a, band_names) / visible_brightness(b, band_names)
    gain.ravel()[pos] = ratio[:, 0]
    # Casters: changed parts at least 3 pixels across (the roof rule of
    # :func:`~borderwatch.objects.classify.resolve_class`) that are neither shadow-like
    # nor darkened into the shadow range (CASTER_MIN_RATIO). From them, reach through
    # changed pixels in the shadow direction (within 45 degrees) up to the shadow reach.
    j = STEPS.index(step)
    cone = [STEPS[(j + d) % len(STEPS)] for d in (-1, 0, 1)]
    casters = _thick(mask & ~shadow & (gain >= CASTER_MIN_RATIO))
    cast = np.zeros_like(mask)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes = ndimage.find_objects(labels)
    both = np.intersect1d(labels[casters], labels[shadow])
    for k in both[both > 0]:  # each object with a caster and shadow-like pixels, on its box
        box = boxes[k - 1]
        assert box is not None  # every label of ndimage.label has pixels
        inside = labels[box] == k
        reach = casters[box] & inside
        for _ in range(math.ceil(SHADOW_REACH_M / pixel_m)):
            grown = reach.copy()
            for dr, dc in cone:
                grown |= _shift(reach, dr, dc)
            grown &= inside
            if np.array_equal(grown, reach):
                break
            reach = grown
        cast[box] |= reach & shadow[box]
    footprint = mask & ~cast
    if cast.any():  # thin remnants beside a removed shadow are its mixed outline
        footprint &= _thick(footprint) | ~square_dilation(cast, 1)
    return footprint


def credit_split(
    values: np.ndarray, mask: np.ndarray, footprint: np.ndarray, *, pixel_m: float
) -> np.ndarray:
    """Raise ``values`` on each footprint to the largest value split off the same object.

    A cast shadow is split off a structure's footprint but is evidence of the same
    change (often its strongest: a shadow on grass changes more than a roof of the
    ground's colour), so the peak-score rules of
    :func:`~borderwatch.objects.classify.classify_objects` should still see it. The
    largest value of the pixels of ``mask`` not in ``footprint`` is carried through
    ``mask`` (8-connected) for up to :data:`SHADOW_REACH_M` onto the footprint.

    Parameters
    ----------
    values : numpy.ndarray
        ``float (rows, cols)`` score (NaN where not evaluated).
    mask, footprint : numpy.ndarray
        ``bool (rows, cols)``: the change mask and its footprints
        (:func:`refine_footprints`).
    pixel_m : float
        Pixel size, metres.

    Returns
    -------
    numpy.ndarray
        ``values`` where nothing was split off; else a copy, raised on ``footprint``.
    """
    removed = mask & ~footprint
    if not removed.any():
        return values
    low = np.float32(-np.inf)
    source = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=-np.inf)
    out = np.array(values, dtype=np.float32)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    boxes = ndimage.find_objects(labels)
    for k in np.unique(labels[removed]):  # each object with pixels split off, on its box
        box = boxes[k - 1]
        assert box is not None  # every label of ndimage.label has pixels
        inside = labels[box] == k
        carried = np.where(removed[box] & inside, source[box], low)
        for _ in range(math.ceil(SHADOW_REACH_M / pixel_m)):
            grown = ndimage.maximum_filter(carried, size=3, mode="constant", cval=low)
            grown = np.where(inside, grown, low)
            if np.array_equal(grown, carried):
                break
            carried = grown
        np.maximum(out[box], carried, out=out[box], where=footprint[box] & inside)
    return out
