"""Object classification for blockwise runs: direction from global statistics, then per object.

:func:`borderwatch.objects.classify.find_structures` needs two whole-scene things: the
per-pixel construction direction, which standardises each index difference by its
scene median and standard deviation, and the labelled mask. Blockwise runs
(:mod:`borderwatch.blockpass`) therefore

1. fit the direction statistics once on the scene sample (:func:`fit_direction`),
2. evaluate the direction per block at the object pixels (:func:`apply_direction`) and
   cut, per object, its pixel mask and direction values (a small crop), and
3. classify objects with :func:`borderwatch.objects.classify.classify_arrays`, the core of
   :func:`borderwatch.objects.classify.classify_objects` (:func:`classify_crops`): the crops
   are laid side by side on small canvases, top-aligned and one empty column apart,
   so that labelling a canvas gives the objects in the order they were placed.
   Objects that do not touch their block's edge are complete, so the block
   classifies them and keeps only the result; crops of the others are merged across
   block edges by :mod:`borderwatch.objects.merge` and classified after the merge
   (:func:`classify_merged`). Memory therefore grows with the number of objects, not
   with their pixels. Shape, direction fraction, peak-score hysteresis and
   confidence are computed by the same code on the same pixels as in memory.

:func:`fit_direction` + :func:`apply_direction` equal
:func:`borderwatch.objects.classify.construction_direction` on the same pixels (tested); they
exist because that function fits and applies in one call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np

from borderwatch.errors import InputError
from borderwatch.methods.indices import CONSTRUCTION_SIGN, compute_indices, visible_brightness
from borderwatch.objects.classify import (
    MIN_DIRECTION,
    Calibration,
    classify_arrays,
    min_peak_score,
)

__all__ = [
    "CANVAS_MAX_PX",
    "CLASS_COLUMNS",
    "ClassifyContext",
    "DirectionModel",
    "ObjectCrop",
    "apply_direction",
    "classify_crops",
    "classify_merged",
    "construction_direction",
    "fit_direction",
    "may_be_construction",
]

#: Largest canvas (pixels) one :func:`~borderwatch.objects.classify.classify_arrays` call gets.
CANVAS_MAX_PX = 4_000_000


@dataclass(frozen=True)
class DirectionModel:
    """Scene statistics of the direction evidence: index name -> (median, std)."""

    stats: dict[str, tuple[np.float32, float]]
    band_names: tuple[str, ...]


def _differences(
    before: np.ndarray, after: np.ndarray, band_names: Sequence[str]
) -> dict[str, np.ndarray]:
    ib = compute_indices(before, band_names)
    ia = compute_indices(after, band_names)
    ib["brightness"] = visible_brightness(before, band_names)
    ia["brightness"] = visible_brightness(after, band_names)
    return {k: ia[k] - ib[k] for k in ib}


def fit_direction(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, band_names: Sequence[str]
) -> DirectionModel:
    """Median and standard deviation of each index difference over valid pixels.

    ``before``/``after`` are ``(bands, rows, cols)`` (a scene or a ``(bands, n, 1)``
    sample) with the ``valid`` mask.
    """
    stats: dict[str, tuple[np.float32, float]] = {}
    for key, d in _differences(before, after, band_names).items():
        ok = valid & np.isfinite(d)
        if ok.any():
            stats[key] = (np.median(d[ok]), float(d[ok].std()) or 1.0)
    return DirectionModel(stats, tuple(band_names))


def apply_direction(
    model: DirectionModel, before: np.ndarray, after: np.ndarray, valid: np.ndarray
) -> np.ndarray:
    """Per-pixel construction-direction evidence with fitted statistics.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``; 0 at invalid pixels.
    """
    diffs = _differences(before, after, model.band_names)
    terms = [
        CONSTRUCTION_SIGN[k] * np.nan_to_num((diffs[k] - med) / sd)
        for k, (med, sd) in model.stats.items()
    ]
    out = np.max(terms, axis=0).astype(np.float32)
    out[~valid] = 0.0
    return out


def construction_direction(
    before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, band_names: Sequence[str] = ()
) -> np.ndarray:
    """Signed per-pixel evidence that a change is construction, with the scene's statistics.

    The maximum of the standardised index differences, each signed so that construction
    is positive (:data:`borderwatch.methods.indices.CONSTRUCTION_SIGN`: visible brightness gain,
    vegetation loss, NDBI gain): :func:`apply_direction` of :func:`fit_direction`.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``; positive = construction-like; 0 at invalid pixels.
    """
    model = fit_direction(before, after, valid, band_names=band_names)
    return apply_direction(model, before, after, valid)


@dataclass(frozen=True)
class ObjectCrop:
    """One merged object's pixels: bounding box origin (grid pixels), mask, direction.

    Attributes
    ----------
    row0, col0 : int
        Grid position of the crop's top-left pixel.
    mask : numpy.ndarray
        ``bool (rows, cols)``: the object's pixels.
    direction : numpy.ndarray
        ``float32 (rows, cols)``: direction evidence at the object's pixels, 0 elsewhere.
    """

    row0: int
    col0: int
    mask: np.ndarray
    direction: np.ndarray


def _canvases(
    crops: Sequence[ObjectCrop],
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray]]:
    """Group crops (in order) onto canvases: yields ``(indexes, mask, direction)``.

    One canvas at a time, so memory stays at :data:`CANVAS_MAX_PX` however many
    objects a scene has.
    """
    group: list[int] = []
    width = height = 0

    def canvas() -> tuple[list[int], np.ndarray, np.ndarray]:
        mask = np.zeros((height, width), bool)
        direction = np.zeros((height, width), np.float32)
        col = 0
        for k in group:
            h, w = crops[k].mask.shape
            mask[:h, col : col + w] = crops[k].mask
            direction[:h, col : col + w] = crops[k].direction
            col += w + 1
        return list(group), mask, direction

    for k, crop in enumerate(crops):
        h, w = crop.mask.shape
        if group and max(height, h) * (width + w + 1) > CANVAS_MAX_PX:
            yield canvas()
            group, width, height = [], 0, 0
        group.append(k)
        width += w + 1
        height = max(height, h)
    if group:
        yield canvas()


@dataclass(frozen=True)
class ClassifyContext:
    """Run-wide inputs of the classification (small; travels with every block task).

    Attributes
    ----------
    pixel_m : float
        Pixel size, metres.
    threshold : float
        Score threshold of the run.
    residual_shift_px : float or None
        Co-registration residual, pixels.
    method : str
        Score method (the peak-score hysteresis applies to standardised scores).
    calibration : Calibration or None
        The method's object calibration, where its model carries one.
    """

    pixel_m: float
    threshold: float
    residual_shift_px: float | None
    method: str
    calibration: Calibration | None = None


#: Columns :func:`borderwatch.objects.classify.classify_objects` adds, in its order.
CLASS_COLUMNS = (
    "class",
    "class_reason",
    "length_m",
    "width_m",
    "construction",
    "confidence",
    "residual_shift_px",
)


#: Margin below :data:`~borderwatch.objects.classify.MIN_DIRECTION` within which
#: :func:`may_be_construction` still says yes (summation order may differ slightly).
_DIRECTION_MARGIN = 1e-6


def may_be_construction(
    peak: np.ndarray, verify_peak: np.ndarray | None, mean_direction: np.ndarray, method: str
) -> np.ndarray:
    """Say per object whether :func:`~borderwatch.objects.classify.classify_objects` may keep it.

    False only where the object is surely dropped (peak below
    :func:`~borderwatch.objects.classify.min_peak_score`, or mean direction not above
    :data:`~borderwatch.objects.classify.MIN_DIRECTION`), so blocks skip tracing and measuring
    such objects. Arrays are per object, all the same length.
    """
    low = min_peak_score(method)
    ok = (peak >= low) & (mean_direction > MIN_DIRECTION - _DIRECTION_MARGIN)
    if verify_peak is not None:
        ok &= verify_peak >= low
    return ok


def classify_crops(
    objects: Mapping[str, Any], crops: Sequence[ObjectCrop], ctx: ClassifyContext
) -> list[dict[str, object] | None]:
    """Classify objects from their crops; per row its class columns, None if dropped.

    ``objects`` holds one row per crop: ``geometry`` (metric CRS), ``mean_score``,
    ``max_score`` and optionally ``verify_peak`` (a GeoDataFrame, or a dict of
    arrays). Rows come back in the order of ``objects``; an object that is not
    construction (direction or peak-score rule) gives None.
    """
    if len(objects["geometry"]) != len(crops):
        raise InputError(f"{len(objects['geometry'])} objects but {len(crops)} crops")
    geoms = np.asarray(objects["geometry"], dtype=object)
    mean_score = np.asarray(objects["mean_score"], dtype=np.float64)
    max_score = np.asarray(objects["max_score"], dtype=np.float64)
    verify = np.asarray(objects["verify_peak"]) if "verify_peak" in objects else None
    out: list[dict[str, object] | None] = [None] * len(crops)
    min_peak = min_peak_score(ctx.method)
    for idx, mask, direction in _canvases(crops):
        rows, columns = classify_arrays(
            geoms[idx],
            mean_score[idx],
            max_score[idx],
            None if verify is None else verify[idx],
            mask,
            direction,
            pixel_m=ctx.pixel_m,
            threshold=ctx.threshold,
            residual_shift_px=ctx.residual_shift_px or 0.0,
            min_peak=min_peak,
            calibration=ctx.calibration,
        )
        values = {col: columns[col].tolist() for col in CLASS_COLUMNS}  # Python scalars
        for j, r in enumerate(rows):
            out[idx[r]] = {col: values[col][j] for col in CLASS_COLUMNS}
    return out


def classify_merged(
    objects: gpd.GeoDataFrame,
    crops: Sequence[ObjectCrop | None],
    ctx: ClassifyContext,
    *,
    known: Sequence[dict[str, object] | None] = (),
) -> gpd.GeoDataFrame:
    """:func:`~borderwatch.objects.classify.find_structures` for merged blockwise objects.

    Parameters
    ----------
    objects : geopandas.GeoDataFrame
        Merged objects (grid CRS, metres), one row per crop, in the same order.
    crops : sequence of ObjectCrop or None
        Each object's pixel mask and direction evidence; None where the object was
        classified inside its block already (its entry of ``known``).
    ctx : ClassifyContext
        Threshold, pixel size, residual shift and method of the run.
    known : sequence of dict or None
        Per row, where ``crops`` is None: the class columns from
        :func:`classify_crops` in the block, or None for an object that is not
        construction.

    Returns
    -------
    geopandas.GeoDataFrame
        As ``find_structures`` returns: construction objects only, ``object_id`` 1..n.
    """
    if len(objects) != len(crops):
        raise InputError(f"{len(objects)} objects but {len(crops)} crops")
    todo = [i for i, c in enumerate(crops) if c is not None]
    values: list[dict[str, object] | None] = list(known) if known else [None] * len(crops)
    fresh = classify_crops(objects.iloc[todo], [crops[i] for i in todo], ctx)  # type: ignore[misc]
    for i, v in zip(todo, fresh, strict=True):
        values[i] = v
    rows = [i for i, v in enumerate(values) if v is not None]
    out = objects.iloc[rows].reset_index(drop=True)
    for col in CLASS_COLUMNS:
        out[col] = [values[i][col] for i in rows]  # type: ignore[index]
    out["class"] = out["class"].astype(object)
    out["class_reason"] = out["class_reason"].astype(object)
    for col in ("length_m", "width_m", "confidence", "residual_shift_px"):
        out[col] = out[col].astype(np.float64)
    out["construction"] = out["construction"].astype(bool)
    out["object_id"] = np.arange(1, len(out) + 1)
    return gpd.GeoDataFrame(out, geometry="geometry", crs=objects.crs)
