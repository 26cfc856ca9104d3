"""From change objects to new structures: direction filter, shape class, confidence.

* Direction: a change counts as construction unless, on average over the object, every
  construction indicator points the other way: no brightness or built-up (NDBI) gain
  and no vegetation (NDVI or, for RGB, excess-green) loss, beyond
  :data:`MIN_DIRECTION`. :func:`construction_direction` gives the per-pixel evidence.
* Shape (:func:`shape_measures`, :func:`classify_shape`): ``fence_or_wall`` for long
  thin objects (mean width = area / skeleton length small, length several widths),
  ``building`` for compact, rectangular objects, ``other`` otherwise. ``length_m``
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
    "ShapeMeasures",
    "classify_arrays",
    "classify_objects",
    "classify_shape",
    "min_peak_score",
    "object_confidence",
    "shape_measures",
]

CLASSES = ("building", "fence_or_wall", "other")

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


def classify_shape(m: ShapeMeasures, *, pixel_m: float) -> str:
    """``"fence_or_wall"``, ``"building"`` or ``"other"`` from :class:`ShapeMeasures`."""
    max_width = max(MAX_WALL_WIDTH_M, 2.5 * pixel_m)
    if m.width_m <= max_width and m.length_m >= MIN_WALL_ELONGATION * m.width_m:
        return "fence_or_wall"
    elong = m.rect_long_m / max(m.rect_short_m, 1e-9)
    if m.rectangularity >= MIN_BUILDING_RECTANGULARITY and elong <= MAX_BUILDING_ELONGATION:
        return "building"
    return "other"


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
        Same CRS; ``object_id`` renumbered 1..n in the original order.
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

    Returns
    -------
    rows : numpy.ndarray
        Indexes of the objects kept (every object with ``keep_non_construction``).
    columns : dict
        ``class``, ``length_m``, ``width_m``, ``construction``, ``confidence`` and
        ``residual_shift_px`` for those rows.
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
    classes, lengths, widths, confs = [], [], [], []
    for i in rows:  # measure only the objects that stay
        region = labels[slices[i]] == i + 1
        m = shape_measures(region, geometries[int(i)], pixel_m=pixel_m)
        cls = classify_shape(m, pixel_m=pixel_m)
        classes.append(cls)
        # A wall is measured along its centre line; anything compact by its rectangle
        # (the skeleton of a compact blob is short, so area / skeleton overstates width).
        linear = cls == "fence_or_wall"
        width = m.width_m if linear else m.rect_short_m
        lengths.append(m.length_m if linear else m.rect_long_m)
        widths.append(width)
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
        "length_m": np.asarray(lengths, dtype=np.float64),
        "width_m": np.asarray(widths, dtype=np.float64),
        "construction": construction[rows],
        "confidence": np.asarray(confs, dtype=np.float64),
        "residual_shift_px": np.full(rows.size, float(residual_shift_px)),
    }
    return rows, columns
