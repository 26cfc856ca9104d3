"""The analyst attribute schema of a detections layer.

Every exported detection carries the same columns, in the same order, whatever the
detector produced: :data:`ANALYST_COLUMNS`. Columns the detector did not fill get a
stated default (``class`` ``"other"``, ``review`` ``"unreviewed"``, unknown numbers
NaN), so a QGIS filter or a review written against one run works on the next.

The ``id`` is stable across reruns of the same inputs: it hashes the polygon
(coordinates rounded to 1 cm in the analysis CRS) together with the SHA-256 of the
input files, so the same object found again in the same imagery gets the same id,
while a different image pair never reuses one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from borderwatch.errors import InputError

__all__ = [
    "ANALYST_COLUMNS",
    "CLASSES",
    "REVIEW_VALUES",
    "analyst_table",
    "check_reviews",
    "object_length_m",
    "stable_id",
    "where",
]

#: Columns of an exported detections layer, in order (geometry last).
ANALYST_COLUMNS = (
    "id",
    "ref",
    "class",
    "class_reason",
    "area_m2",
    "length_m",
    "confidence",
    "score",
    "lat",
    "lon",
    "mgrs",
    "before_date",
    "after_date",
    "residual_shift_px",
    "review",
    "note",
)

#: Object classes the styles colour; anything else is shown as ``other``.
CLASSES = ("building", "fence_or_wall", "built_up_change", "other")

#: Allowed values of the ``review`` column.
REVIEW_VALUES = ("unreviewed", "confirmed", "rejected", "needs_higher_resolution")

_FLOAT_COLUMNS = ("area_m2", "length_m", "confidence", "score", "residual_shift_px")
_LONLAT_DECIMALS = 6  # about 0.1 m
_MGRS_DIGITS = 5  # 1 m grid reference
_ROUND_M = 2  # decimals of metres kept when hashing geometry (1 cm)


def stable_id(geom: shapely.Geometry, *, input_hashes: Sequence[str], crs: str) -> str:
    """Return an id of one detection that is the same on every rerun of the same inputs.

    Parameters
    ----------
    geom : shapely.Geometry
        The object's polygon in the analysis CRS (metres).
    input_hashes : sequence of str
        SHA-256 (or other stable digests) of the before and after files, in order.
    crs : str
        The analysis CRS, e.g. ``"EPSG:32652"``.

    Returns
    -------
    str
        ``"bw-"`` followed by 16 hex digits.
    """
    rounded = shapely.set_precision(geom, 10.0**-_ROUND_M)
    rounded = shapely.normalize(rounded)
    h = hashlib.sha256()
    for part in (*input_hashes, crs):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    h.update(shapely.to_wkb(rounded, output_dimension=2, byte_order=1))
    return "bw-" + h.hexdigest()[:16]


def object_length_m(geoms: gpd.GeoSeries) -> np.ndarray:
    """Length of each object, m: the long side of its minimum rotated rectangle.

    For a fence or wall drawn as a thin strip this is close to its length along the
    ground; for a building, the long side of its footprint. The CRS must be metric.
    """
    rects = shapely.minimum_rotated_rectangle(np.asarray(geoms.values, dtype=object))
    out = np.zeros(len(rects))
    for i, rect in enumerate(rects):
        if rect is None or rect.is_empty:
            out[i] = np.nan
            continue
        xy = np.asarray(rect.exterior.coords) if rect.geom_type == "Polygon" else None
        if xy is None:  # degenerate: a line or point
            out[i] = float(rect.length)
            continue
        sides = np.hypot(*np.diff(xy[:3], axis=0).T)
        out[i] = float(sides.max())
    return out


def where(geoms: gpd.GeoSeries) -> pd.DataFrame:
    """Latitude, longitude and MGRS grid reference of each object's centroid.

    Parameters
    ----------
    geoms : geopandas.GeoSeries
        Objects in any CRS with a defined CRS (the centroid is taken in that CRS,
        so give the metric analysis CRS for a true centroid).

    Returns
    -------
    pandas.DataFrame
        Columns ``lat`` and ``lon`` (degrees, EPSG:4326, rounded to 6 decimals, about
        0.1 m) and ``mgrs`` (Military Grid Reference System to 1 m, e.g.
        ``"52TEN0000008624"``), same index as ``geoms``; NaN and ``""`` for empty
        geometries.

    Examples
    --------
    >>> import shapely
    >>> pts = gpd.GeoSeries([shapely.Point(500000.0, 4708624.0)], crs="EPSG:32652")
    >>> row = where(pts).iloc[0]
    >>> float(row["lat"]), float(row["lon"]), row["mgrs"]
    (42.529998, 129.0, '52TEN0000008624')
    """
    import mgrs

    if geoms.crs is None:
        raise InputError("detections have no CRS; cannot give coordinates")
    centres = gpd.GeoSeries(shapely.centroid(geoms.values), crs=geoms.crs).to_crs("EPSG:4326")
    lat = np.round(centres.y.to_numpy(dtype=float), _LONLAT_DECIMALS)
    lon = np.round(centres.x.to_numpy(dtype=float), _LONLAT_DECIMALS)
    grid = mgrs.MGRS()
    refs = [
        grid.toMGRS(float(y), float(x), MGRSPrecision=_MGRS_DIGITS)
        if np.isfinite(y) and np.isfinite(x)
        else ""
        for y, x in zip(lat, lon, strict=True)
    ]
    refs = [r.decode() if isinstance(r, bytes) else str(r) for r in refs]
    return pd.DataFrame({"lat": lat, "lon": lon, "mgrs": refs}, index=geoms.index)


def check_reviews(values: Sequence[object], *, where: str) -> None:
    """Raise :class:`InputError` if any ``review`` value is not in :data:`REVIEW_VALUES`."""
    bad = sorted({str(v) for v in values if v not in REVIEW_VALUES})
    if bad:
        raise InputError(
            f"{where}: unknown review value(s) {', '.join(map(repr, bad))}; "
            f"use one of {', '.join(REVIEW_VALUES)}"
        )


def analyst_table(
    objects: gpd.GeoDataFrame,
    *,
    input_hashes: Sequence[str],
    before_date: str | None = None,
    after_date: str | None = None,
) -> gpd.GeoDataFrame:
    """Give detector output the analyst schema, filling what the detector did not.

    Parameters
    ----------
    objects : geopandas.GeoDataFrame
        Detector output in a metric CRS (e.g. from
        :func:`borderwatch.objects.polygons.mask_to_objects`), with at least ``area_m2``.
    input_hashes : sequence of str
        Digests of the input files (see :func:`stable_id`).
    before_date, after_date : str, optional
        ``YYYY-MM-DD``; used where the detector gave no ``before_date``/``after_date``.

    Returns
    -------
    geopandas.GeoDataFrame
        Same CRS and row order; :data:`ANALYST_COLUMNS` first, then any other
        detector columns, then the geometry. Defaults: ``class`` ``"other"``,
        ``class_reason`` ``""``,
        ``length_m`` from :func:`object_length_m`, ``confidence`` and
        ``residual_shift_px`` NaN, ``score`` the detector's ``mean_score``,
        ``review`` ``"unreviewed"``, ``note`` ``""``. Always recomputed: ``ref``
        (1-based row number, the detection's number in the report and on the maps)
        and ``lat``/``lon``/``mgrs`` of the centroid (:func:`where`).

    Raises
    ------
    InputError
        No CRS, no ``area_m2`` column, or an unknown ``review`` value.
    """
    if objects.crs is None:
        raise InputError("detections have no CRS; cannot build stable ids or lengths")
    if "area_m2" not in objects.columns:
        raise InputError("detections have no 'area_m2' column")
    n = len(objects)
    crs = objects.crs.to_string()
    geoms = objects.geometry
    out = pd.DataFrame(index=objects.index)

    def column(name: str, default: object) -> pd.Series:
        if name in objects.columns:
            return objects[name].where(objects[name].notna(), default)
        return pd.Series([default] * n, index=objects.index, dtype=object)

    out["id"] = [stable_id(g, input_hashes=input_hashes, crs=crs) for g in geoms.values]
    out["ref"] = np.arange(1, n + 1, dtype=np.int64)
    out["class"] = column("class", "other").astype(str)
    out["class_reason"] = column("class_reason", "").astype(str)
    out["area_m2"] = objects["area_m2"]
    out["length_m"] = (
        column("length_m", np.nan) if "length_m" in objects.columns else object_length_m(geoms)
    )
    out["confidence"] = column("confidence", np.nan)
    score_src = "score" if "score" in objects.columns else "mean_score"
    out["score"] = column(score_src, np.nan)
    out[["lat", "lon", "mgrs"]] = where(geoms)
    out["before_date"] = column("before_date", before_date or "")
    out["after_date"] = column("after_date", after_date or "")
    out["residual_shift_px"] = column("residual_shift_px", np.nan)
    out["review"] = column("review", "unreviewed").astype(str)
    out["note"] = column("note", "").astype(str)
    check_reviews(out["review"].tolist(), where="detections")
    for name in _FLOAT_COLUMNS:
        out[name] = pd.to_numeric(out[name], errors="coerce").astype(np.float64)
    for name in ("before_date", "after_date"):
        out[name] = out[name].astype(str)
    out["lat"] = out["lat"].astype(np.float64)
    out["lon"] = out["lon"].astype(np.float64)
    out["mgrs"] = out["mgrs"].astype(str)
    skip = {*ANALYST_COLUMNS, objects.geometry.name}
    for name in objects.columns:
        if name not in skip:
            out[name] = objects[name]
    return gpd.GeoDataFrame(out, geometry=geoms.values, crs=objects.crs)
