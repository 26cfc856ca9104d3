"""Masks to objects: connected change regions become polygons with attributes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio.features
from scipy import ndimage
from shapely.geometry import shape
from shapely.ops import unary_union

from borderwatch.errors import InputError
from borderwatch.io import Grid

__all__ = ["OBJECT_COLUMNS", "label_objects", "mask_to_objects"]

OBJECT_COLUMNS = ("object_id", "area_m2", "mean_score", "max_score", "n_pixels")


def label_objects(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 8-connected regions of a boolean mask.

    Returns
    -------
    labels : numpy.ndarray
        ``int32 (rows, cols)``, 0 = background, 1..n = objects in raster order.
    n : int
        Number of objects.
    """
    labels, n = ndimage.label(mask.astype(bool), structure=np.ones((3, 3), bool))
    return labels.astype(np.int32), int(n)


def mask_to_objects(
    mask: np.ndarray,
    score: np.ndarray,
    grid: Grid,
    *,
    attrs: Mapping[str, Any] | None = None,
) -> gpd.GeoDataFrame:
    """Turn a change mask into one polygon per 8-connected object.

    Parameters
    ----------
    mask : numpy.ndarray
        ``bool (rows, cols)`` change mask on ``grid``.
    score : numpy.ndarray
        ``float (rows, cols)`` change score on ``grid`` (NaN allowed at invalid pixels).
    grid : Grid
        Grid of the mask; its CRS must be projected in metres for areas to be m2.
    attrs : mapping, optional
        Constant attributes added to every row (e.g. ``aoi_id``, ``before``, ``after``).

    Returns
    -------
    geopandas.GeoDataFrame
        In ``grid.crs``, one row per object, columns :data:`OBJECT_COLUMNS` plus
        ``attrs``; ``area_m2`` is the pixel count times the pixel area (m2).
    """
    if mask.shape != grid.shape or score.shape != grid.shape:
        raise InputError(f"mask {mask.shape} / score {score.shape} do not match grid {grid.shape}")
    labels, n = label_objects(mask)
    extra = dict(attrs or {})
    columns = [*OBJECT_COLUMNS, *extra]
    if n == 0:
        return gpd.GeoDataFrame(
            {c: [] for c in columns}, geometry=gpd.GeoSeries([], crs=grid.crs), crs=grid.crs
        )
    idx = np.arange(1, n + 1)
    safe = np.nan_to_num(score.astype(np.float64), nan=0.0)
    counts = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    sums = np.bincount(labels.ravel(), weights=safe.ravel(), minlength=n + 1)[1:]
    maxes = ndimage.maximum(safe, labels, idx)
    parts: dict[int, list[Any]] = {}
    for geom, value in rasterio.features.shapes(
        labels, mask=labels > 0, transform=grid.transform, connectivity=8
    ):
        parts.setdefault(int(value), []).append(shape(geom))
    geoms = [unary_union(parts[i]) if len(parts[i]) > 1 else parts[i][0] for i in idx]
    data: dict[str, Any] = {
        "object_id": idx,
        "area_m2": counts * grid.pixel_area,
        "mean_score": sums / counts,
        "max_score": np.asarray(maxes, dtype=np.float64),
        "n_pixels": counts,
    }
    for key, value in extra.items():
        data[key] = [value] * n
    return gpd.GeoDataFrame(data, geometry=geoms, crs=grid.crs)
