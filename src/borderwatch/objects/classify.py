"""From change objects to new structures: direction filter, shape class, confidence.

* Direction: a change counts as construction unless, on average over the object, every
  construction indicator points the other way: no brightness or built-up (NDBI) gain
  and no vegetation (NDVI or, for RGB, excess-green) loss, beyond
  :data:`MIN_DIRECTION`. :func:`construction_direction` gives the per-pixel evidence.
* Shape (:func:`shape_measures`, :func:`classify_shape`): ``fence_or_wall`` for long
  thin objects (mean width = area / skeleton length small, length several widths),
  ``building`` for compact, rectangular objects of at least :data:`MIN_BUILDING_PX`
  pixels, ``other`` otherwise. Only where the pixel can resolve them: coarser than
  :data:`MAX_CLASS_PIXEL_M` (2.5 m) a building is a few pixels and a fence or wall
  under one, so every object there is ``built_up_change`` (something was built or
  cleared; what, the pixels cannot say). :func:`class_reason` gives each class in
  words (the ``class_reason`` column). ``length_m``
  is the skeleton (centre-line) length for fences and walls, so a ring fence measures
  its perimeter, and the long side of the minimum rotated rectangle otherwise.
* Confidence in [0, 1] (:func:`object_confidence`): how far the object's score clears
  the threshold, how consistently its pixels point in the construction direction, and
  how well its shape fits a structure class, reduced when co-registration left a
  residual shift comparable to the object's width.

Everything here is per object (after labelling), so it works on any block whose
objects are complete.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
from scipy import ndimage

from borderwatch.errors import InputError

__all__ = [
    "CLASSES",
    "Calibration",
    "MAX_CLASS_PIXEL_M",
    "MIN_BUILDING_PX",
    "calibrated_confidence",
    "class_reason",
    "ShapeMeasures",
    "classify_arrays",
    "classify_objects",
    "classify_shape",
    "min_peak_score",
    "object_confidence",
    "shape_measures",
]

CLASSES = ("building", "fence_or_wall", "built_up_change", "other")

#: Coarsest pixel at which objects are called ``building`` or ``fence_or_wall``, metres:
#: a 10 x 10 m building is then 16 pixels and a 3 m wall or patrol strip at least a
#: pixel wide. Coarser objects are ``built_up_change``.
MAX_CLASS_PIXEL_M = 2.5
#: A building covers at least this many pixels (3 x 3): fewer cannot show its shape.
MIN_BUILDING_PX = 9

#: A wall or fence line is at most this wide on the ground (m), or 2.5 pixels when
#: pixels are coarser, since a 1-pixel-wide line smears over about two pixels.
MAX_WALL_WIDTH_M = 6.0
#: ...and at least this many times longer than wide.
MIN_WALL_ELONGATION = 4.0
#: Objects are dropped as non-construction only when their mean direction evidence
#: (:func:`construction_direction`, standard deviations) is below this: every
#: construction indicator (brightness gain, vegetation loss, NDBI gain) points the other
#: way by more than one standard deviation, as for re-greening fields. A new dark or
#: green roof on bare soil only darkens (about -0.5 here) and is kept.
MIN_DIRECTION = -1.0
#: Hysteresis on the change score: an object grown from the (low) automatic threshold
#: is kept only if at least one pixel reaches 3 standard deviations of the standardised
#: score (scores of ``cva``/``index``/``combined`` are in standard-deviation units); for
#: other scores pass ``min_peak=-inf``.
MIN_PEAK_SCORE = 3.0
#: A building fills at least this share of its minimum rotated rectangle.
MIN_BUILDING_RECTANGULARITY = 0.6
#: ...and its rectangle is at most this elongated.
MAX_BUILDING_ELONGATION = 4.0


@dataclass(frozen=True)
class ShapeMeasures:
    """Shape of one object, metres.

    Attributes
    ----------
    length_m : float
        Centre-line length (skeleton), metres.
    width_m : float
        Mean width, ``area / length``, metres.
    rect_long_m, rect_short_m : float
        Sides of the minimum rotated rectangle, metres.
    rectangularity : float
        ``area / rectangle area`` in (0, 1].
    """

    length_m: float
    width_m: float
    rect_long_m: float
    rect_short_m: float
    rectangularity: float


def shape_measures(region: np.ndarray, geometry: object, *, pixel_m: float) -> ShapeMeasures:
    """Measure one object from its pixel mask and its polygon.

    Parameters
    ----------
    region : numpy.ndarray
        ``bool`` mask of the object (a crop is enough).
    geometry : shapely geometry
        Its polygon in a metric CRS (or pixel units times ``pixel_m``).
    pixel_m : float
        Pixel size, metres.
    """
    area = float(region.sum()) * pixel_m * pixel_m
    from skimage.morphology import skeletonize  # imported once, on the first object

    skel = skeletonize(np.pad(region, 1))
    # Skeleton length: 1 per 4-neighbour step, sqrt(2) per diagonal step, counted from
    # pairs of skeleton pixels (each pair once).
    s = skel.astype(np.int32)
    straight = (s[1:, :] & s[:-1, :]).sum() + (s[:, 1:] & s[:, :-1]).sum()
    diag = (s[1:, 1:] & s[:-1, :-1]).sum() + (s[1:, :-1] & s[:-1, 1:]).sum()
    skel_len = max((straight + np.sqrt(2) * diag) * pixel_m, pixel_m)
    rect = geometry.minimum_rotated_rectangle  # type: ignore[attr-defined]
    xy = np.asarray(rect.exterior.coords) if rect.geom_type == "Polygon" else None
    if xy is not None and len(xy) >= 4:
        sides = np.hypot(*np.diff(xy[:3], axis=0).T)
        long_m, short_m = float(sides.max()), float(sides.min())
    else:
        long_m, short_m = skel_len, pixel_m
    rect_area = max(long_m * short_m, area)
    length = skel_len if skel_len > 0 else long_m
    return ShapeMeasures(length, area / length, long_m, short_m, area / rect_area)


def classify_shape(m: ShapeMeasures, *, pixel_m: float, n_pixels: int | None = None) -> str:
    """Return the class of an object from :class:`ShapeMeasures` (see the module notes).

    ``built_up_change`` where ``pixel_m`` is coarser than :data:`MAX_CLASS_PIXEL_M`;
    else ``fence_or_wall``, ``building`` (``n_pixels``, when given, at least
    :data:`MIN_BUILDING_PX`) or ``other``.

    Examples
    --------
    >>> m = ShapeMeasures(20.0, 10.0, 20.0, 10.0, 0.95)
    >>> classify_shape(m, pixel_m=1.0), classify_shape(m, pixel_m=10.0)
    ('building', 'built_up_change')
    """
    if pixel_m > MAX_CLASS_PIXEL_M:
        return "built_up_change"
    max_width = max(MAX_WALL_WIDTH_M, 2.5 * pixel_m)
    if m.width_m <= max_width and m.length_m >= MIN_WALL_ELONGATION * m.width_m:
        return "fence_or_wall"
    elong = m.rect_long_m / max(m.rect_short_m, 1e-9)
    big = n_pixels is None or n_pixels >= MIN_BUILDING_PX
    if m.rectangularity >= MIN_BUILDING_RECTANGULARITY and elong <= MAX_BUILDING_ELONGATION:
        return "building" if big else "other"
    return "other"


def class_reason(m: ShapeMeasures, cls: str, *, pixel_m: float, n_pixels: int | None = None) -> str:
    """Say why an object got its class, in words (the ``class_reason`` column).

    Examples
    --------
    >>> class_reason(ShapeMeasures(20.0, 10.0, 20.0, 10.0, 0.95), "building", pixel_m=1.0)
    'compact and rectangular: 20 x 10 m, fills 95 % of its rectangle (1 m pixels)'
    """
    px = f"{pixel_m:.3g} m pixels"
    if cls == "built_up_change":
        return (
            f"{px}: too coarse to tell a building, a fence or a wall from other built-up "
            f"change (those classes need {MAX_CLASS_PIXEL_M:g} m or finer)"
        )
    if cls == "fence_or_wall":
        return f"long and thin: {m.length_m:.0f} m long, {m.width_m:.1f} m wide on average ({px})"
    if cls == "building":
        return (
            f"compact and rectangular: {m.rect_long_m:.0f} x {m.rect_short_m:.0f} m, fills "
            f"{100 * m.rectangularity:.0f} % of its rectangle ({px})"
        )
    elong = m.rect_long_m / max(m.rect_short_m, 1e-9)
    if n_pixels is not None and n_pixels < MIN_BUILDING_PX:
        return (
            f"{n_pixels} pixels: too few to show a building's shape (at least "
            f"{MIN_BUILDING_PX}; {px})"
        )
    return (
        f"neither a building nor a line: {m.rect_long_m:.0f} x {m.rect_short_m:.0f} m, fills "
        f"{100 * m.rectangularity:.0f} % of its rectangle, {elong:.1f} times longer than "
        f"wide ({px})"
    )


def object_confidence(
    *,
    mean_score: float,
    threshold: float,
    direction_fraction: float,
    shape_class: str,
    width_m: float,
    residual_shift_m: float = 0.0,
) -> float:
    """Confidence in [0, 1] that an object is a real new structure.

    ``0.5 * strength + 0.3 * direction + 0.2 * shape``, times a misregistration factor:

    * strength ``1 - exp(-3 (mean_score / threshold - 1))``: 0 at the threshold, 0.95 at
      twice the threshold;
    * direction: share of the object's pixels with construction-direction evidence;
    * shape: 1 for ``building`` and ``fence_or_wall``, 0.5 for ``other``;
    * misregistration factor ``1 / (1 + residual_shift_m / width_m)``: a residual shift as
      large as the object's width halves the confidence.
    """
    ratio = mean_score / threshold if threshold > 0 else 2.0
    strength = float(np.clip(1.0 - np.exp(-3.0 * (ratio - 1.0)), 0.0, 1.0))
    shape = 1.0 if shape_class in ("building", "fence_or_wall") else 0.5
    conf = 0.5 * strength + 0.3 * float(np.clip(direction_fraction, 0, 1)) + 0.2 * shape
    conf /= 1.0 + max(residual_shift_m, 0.0) / max(width_m, 1e-9)
    return float(np.clip(conf, 0.0, 1.0))


#: An isotonic calibration: object mean scores (increasing) and the share of real
#: objects at each (:mod:`borderwatch.structure.calibrate`).
Calibration = tuple[tuple[float, ...], tuple[float, ...]]


def calibrated_confidence(mean_score: float, calibration: Calibration) -> float:
    """Share of real objects at ``mean_score``, interpolated in ``calibration``.

    Examples
    --------
    >>> calibrated_confidence(0.7, ((0.5, 0.9), (0.2, 0.8)))
    0.5
    """
    xs, ys = calibration
    return float(np.clip(np.interp(mean_score, xs, ys), 0.0, 1.0))


def min_peak_score(method: str) -> float:
    """Return the peak-score hysteresis for ``method``.

    :data:`MIN_PEAK_SCORE` for the standardised scores (``combined``, ``cva``,
    ``index``), else ``-inf`` (no hysteresis).
    """
    return MIN_PEAK_SCORE if method in ("combined", "cva", "index") else -np.inf


def classify_objects(
    objects: gpd.GeoDataFrame,
    mask: np.ndarray,
    direction: np.ndarray,
    *,
    pixel_m: float,
    threshold: float,
    residual_shift_px: float = 0.0,
    keep_non_construction: bool = False,
    min_peak: float = MIN_PEAK_SCORE,
) -> gpd.GeoDataFrame:
    """Add ``class``, ``length_m``, ``width_m``, ``construction`` and ``confidence``.

    Parameters
    ----------
    objects : geopandas.GeoDataFrame
        From :func:`borderwatch.objects.polygons.mask_to_objects` on ``mask`` (``object_id`` =
        8-connected label, ``mean_score`` column), metric CRS.
    mask : numpy.ndarray
        ``bool (rows, cols)`` change mask the objects came from.
    direction : numpy.ndarray
        ``(rows, cols)`` from :func:`construction_direction`.
    pixel_m : float
        Pixel size, metres.
    threshold : float
        Score threshold of the run (for the strength term of the confidence).
    residual_shift_px : float
        Co-registration residual, pixels; stored as ``residual_shift_px``.
    keep_non_construction : bool
        Keep objects whose mean direction is not construction, or whose peak score is
        below ``min_peak`` (flagged ``construction = False``), instead of dropping them.
    min_peak : float
        Hysteresis: an object is kept only if its highest score reaches this value
        (default :data:`MIN_PEAK_SCORE`), and so does its ``verify_peak`` column when
        ``objects`` has one (the peak of a second, independent score, see
        :func:`find_structures`).

    Returns
    -------
    geopandas.GeoDataFrame
        Same CRS, with ``class``, ``class_reason`` (why, in words) and the other class
        columns; ``object_id`` renumbered 1..n in the original order.
    """
    verify = objects["verify_peak"].to_numpy() if "verify_peak" in objects.columns else None
    rows, columns = classify_arrays(
        objects.geometry.to_numpy(),
        objects["mean_score"].to_numpy(),
        objects["max_score"].to_numpy(),
        verify,
        mask,
        direction,
        pixel_m=pixel_m,
        threshold=threshold,
        residual_shift_px=residual_shift_px,
        keep_non_construction=keep_non_construction,
        min_peak=min_peak,
    )
    out = objects.iloc[rows].copy()
    for col, values in columns.items():
        out[col] = values
    if not len(objects):  # nothing to renumber
        return out
    if not keep_non_construction:
        out["object_id"] = np.arange(1, len(out) + 1)
    return out.reset_index(drop=True)


def classify_arrays(
    geometries: Sequence[object] | np.ndarray,
    mean_score: np.ndarray,
    max_score: np.ndarray,
    verify_peak: np.ndarray | None,
    mask: np.ndarray,
    direction: np.ndarray,
    *,
    pixel_m: float,
    threshold: float,
    residual_shift_px: float = 0.0,
    keep_non_construction: bool = False,
    min_peak: float = MIN_PEAK_SCORE,
    calibration: Calibration | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`classify_objects` on plain arrays, one entry per object of ``mask``.

    Parameters
    ----------
    geometries : sequence of shapely geometry
        Polygon of each 8-connected object of ``mask``, in label (raster) order,
        metric CRS.
    mean_score, max_score : numpy.ndarray
        ``float (n,)`` per object.
    verify_peak : numpy.ndarray or None
        ``float (n,)`` peak of the verification score per object, if any.
    mask, direction, pixel_m, threshold, residual_shift_px, keep_non_construction, min_peak
        As :func:`classify_objects`.
    calibration : Calibration, optional
        Where the method's model carries one, the confidence is the calibrated share
        of real objects at the object's mean score (:func:`calibrated_confidence`)
        instead of :func:`object_confidence`.

    Returns
    -------
    rows : numpy.ndarray
        Indexes of the objects kept (every object with ``keep_non_construction``).
    columns : dict
        ``class``, ``class_reason``, ``length_m``, ``width_m``, ``construction``,
        ``confidence`` and ``residual_shift_px`` for those rows.
    """
    from borderwatch.objects.polygons import label_objects

    labels, n = label_objects(mask)
    if n != len(geometries):
        raise InputError(f"{len(geometries)} objects but the mask has {n} regions")
    idx = np.arange(1, n + 1)
    if n:
        mean_dir = np.asarray(ndimage.mean(direction, labels, idx), dtype=np.float64)
        frac_dir = np.asarray(ndimage.mean(direction > 0, labels, idx), dtype=np.float64)
    else:
        mean_dir = frac_dir = np.zeros(0)
    peak_ok = np.asarray(max_score) >= min_peak
    if verify_peak is not None:
        peak_ok &= np.asarray(verify_peak) >= min_peak
    construction = (mean_dir > MIN_DIRECTION) & peak_ok
    slices = ndimage.find_objects(labels) if n else []
    rows = np.arange(n) if keep_non_construction else np.flatnonzero(construction)
    classes, reasons, lengths, widths, confs = [], [], [], [], []
    for i in rows:  # measure only the objects that stay
        region = labels[slices[i]] == i + 1
        m = shape_measures(region, geometries[int(i)], pixel_m=pixel_m)
        cls = classify_shape(m, pixel_m=pixel_m, n_pixels=int(region.sum()))
        classes.append(cls)
        reasons.append(class_reason(m, cls, pixel_m=pixel_m, n_pixels=int(region.sum())))
        # A wall is measured along its centre line; anything compact by its rectangle
        # (the skeleton of a compact blob is short, so area / skeleton overstates width).
        linear = cls == "fence_or_wall"
        width = m.width_m if linear else m.rect_short_m
        lengths.append(m.length_m if linear else m.rect_long_m)
        widths.append(width)
        if calibration is not None:
            confs.append(calibrated_confidence(float(mean_score[i]), calibration))
            continue
        confs.append(
            object_confidence(
                mean_score=float(mean_score[i]),
                threshold=threshold,
                direction_fraction=float(frac_dir[i]),
                shape_class=cls,
                width_m=width,
                residual_shift_m=residual_shift_px * pixel_m,
            )
        )
    columns = {
        "class": np.asarray(classes, dtype=object),
        "class_reason": np.asarray(reasons, dtype=object),
        "length_m": np.asarray(lengths, dtype=np.float64),
        "width_m": np.asarray(widths, dtype=np.float64),
        "construction": construction[rows],
        "confidence": np.asarray(confs, dtype=np.float64),
        "residual_shift_px": np.full(rows.size, float(residual_shift_px)),
    }
    return rows, columns
