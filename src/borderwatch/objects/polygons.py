"""Masks to objects: connected change regions become polygons with attributes."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio.errors
import rasterio.features
import shapely
from affine import Affine
from scipy import ndimage
from shapely.geometry import shape

from borderwatch.errors import InputError
from borderwatch.io import Grid

__all__ = ["OBJECT_COLUMNS", "TRACE_CANVAS_PX", "label_objects", "mask_to_objects", "trace_labels"]

OBJECT_COLUMNS = ("object_id", "area_m2", "mean_score", "max_score", "n_pixels")

#: Largest canvas (pixels) one polygoniser call of :func:`trace_labels` gets.
TRACE_CANVAS_PX = 1 << 22

# :func:`trace_labels` polygonises in pixel coordinates (no geotransform) and maps them
# to the grid itself; rasterio warns about the missing geotransform, on purpose here.
# Silence exactly that warning from exactly that module.
warnings.filterwarnings(
    "ignore", category=rasterio.errors.NotGeoreferencedWarning, module="rasterio.features"
)


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
    return labels.astype(np.int32, copy=False), int(n)


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
    # The one polygoniser, as the engine's blocks trace their objects.
    boxes = [(i, sl) for i, sl in enumerate(ndimage.find_objects(labels), start=1) if sl]
    traced = dict(trace_labels(labels, boxes, grid.transform))
    geoms = [traced[i] for i in range(1, n + 1)]
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


def _shelves(
    sizes: Sequence[tuple[int, int]], *, width: int, max_px: int
) -> list[tuple[tuple[int, int], list[tuple[int, int, int]]]]:
    """Pack boxes ``(rows, cols)`` onto canvases, tallest first, in shelves of ``width``.

    Every box keeps one empty row and column after it, so boxes never touch, not even
    diagonally. Returns per canvas its shape and ``(box index, row, col)`` placements.
    """
    canvases: list[tuple[tuple[int, int], list[tuple[int, int, int]]]] = []
    placed: list[tuple[int, int, int]] = []
    top = x = shelf = used = 0
    for i in sorted(range(len(sizes)), key=lambda j: -sizes[j][0]):
        h, w = sizes[i][0] + 1, sizes[i][1] + 1
        if x and x + w > width:  # next shelf
            top, x, shelf = top + shelf, 0, 0
        if placed and (top + max(shelf, h)) * max(width, used) > max_px:  # next canvas
            canvases.append(((top + shelf, used), placed))
            placed, top, x, shelf, used = [], 0, 0, 0, 0
        placed.append((i, top, x))
        x += w
        shelf, used = max(shelf, h), max(used, x)
    if placed:
        canvases.append(((top + shelf, used), placed))
    return canvases


def trace_labels(
    labels: np.ndarray,
    boxes: Sequence[tuple[int, tuple[slice, slice]]],
    transform: Affine,
    *,
    row0: int = 0,
    col0: int = 0,
) -> list[tuple[int, Any]]:
    """Polygons of selected objects of a label image, traced a canvas at a time.

    Each object's bounding-box crop (its own pixels only) is packed onto a small canvas
    with the others (:data:`TRACE_CANVAS_PX` at most) and the canvas is polygonised once,
    so GDAL's polygoniser neither scans the whole label image nor runs once per object.
    Vertices are mapped back to the grid with ``transform`` as GDAL maps them, so the
    polygons equal those of tracing ``labels`` in place.

    Parameters
    ----------
    labels : numpy.ndarray
        ``int (rows, cols)`` 8-connected labels (different objects never touch), whose
        top-left pixel is grid pixel ``(row0, col0)``.
    boxes : sequence of (int, (slice, slice))
        The labels to trace and their bounding boxes in ``labels``, as
        ``scipy.ndimage.find_objects`` gives them.
    transform : affine.Affine
        Pixel-to-CRS transform of the grid.
    row0, col0 : int
        Offset of ``labels`` in the grid, pixels.

    Returns
    -------
    list of (int, shapely.Polygon)
        ``(label, polygon)`` pairs in the grid CRS, by label; an object gives one
        polygon per 8-connected part (one, for a connected label).
    """
    sizes = [(sl[0].stop - sl[0].start, sl[1].stop - sl[1].start) for _, sl in boxes]
    width = max([1024, *(w + 1 for _, w in sizes)])
    keys: list[int] = []
    polys: list[Any] = []
    shift: dict[int, tuple[int, int]] = {}
    for shape_, placed in _shelves(sizes, width=width, max_px=TRACE_CANVAS_PX):
        canvas = np.zeros(shape_, np.int32)
        for i, r, c in placed:
            k, (rs, cs) = boxes[i]
            crop = labels[rs, cs]
            canvas[r : r + crop.shape[0], c : c + crop.shape[1]] = np.where(crop == k, k, 0)
            shift[k] = (rs.start + row0 - r, cs.start + col0 - c)
        for g, value in rasterio.features.shapes(canvas, mask=canvas > 0, connectivity=8):
            keys.append(int(value))
            polys.append(shape(g))
    if not polys:
        return []
    geoms = np.empty(len(polys), dtype=object)
    geoms[:] = polys
    xy, which = shapely.get_coordinates(geoms, return_index=True)
    dr = np.array([shift[k][0] for k in keys], np.float64)[which]
    dc = np.array([shift[k][1] for k in keys], np.float64)[which]
    col, row = xy[:, 0] + dc, xy[:, 1] + dr  # exact: integers
    t = transform
    xy = np.column_stack((t.c + col * t.a + row * t.b, t.f + col * t.d + row * t.e))
    geoms = shapely.set_coordinates(geoms, xy)
    order = np.argsort(keys, kind="stable")  # label order, as the boxes are given
    return [(keys[i], geoms[i]) for i in order]
