"""The structures: existing and new boxes, the fence ring, painting and the truth.

The existing village buildings and compound (:data:`EXISTING`, on both dates), the
seeded placement of the new buildings, fence ring and watchtower
(:func:`new_structures`), painting them with shadows and gabled roofs onto the
ground (:func:`paint_ring`, :func:`paint_structures`) and their footprints as the
truth polygons (:func:`truth_footprints`).
"""

from __future__ import annotations

import math
from typing import Final

import geopandas as gpd
import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.polygon import orient

from borderwatch.synthetic.frame import EPSG, Box, Grid
from borderwatch.synthetic.ground import spec_col

__all__ = ["EXISTING", "new_structures", "paint_ring", "paint_structures", "truth_footprints"]

_GABLED: Final = frozenset({"metal_roof", "blue_roof", "red_roof", "green_roof"})
_SHADOW_PER_M: Final = (-0.30, -0.55)  # shadow offset (x east, y south) per metre height

# Layout in the 512 m design frame. Existing structures appear on both dates.
EXISTING: Final = (
    Box(180, 270, 12, 8, -8, "red_roof", 4),
    Box(250, 262, 14, 9, -8, "blue_roof", 4),
    Box(190, 235, 10, 8, 0, "dark_roof", 3),
    Box(255, 222, 18, 10, 0, "metal_roof", 5),
    Box(185, 195, 9, 9, 0, "red_roof", 3),
    Box(110, 280, 26, 12, -8, "metal_roof", 6),
    Box(130, 250, 12, 9, -8, "green_roof", 3),
    Box(300, 248, 16, 8, -8, "red_roof", 3),
    Box(470, 330, 12, 8, -8, "red_roof", 3),
    # detention-centre-like compound: cell blocks, admin block, gate house, towers
    Box(378, 58, 64, 11, 0, "blue_roof", 7),
    Box(378, 82, 64, 11, 0, "blue_roof", 7),
    Box(370, 106, 44, 10, 0, "blue_roof", 6),
    Box(432, 72, 22, 36, 0, "dark_roof", 9),
    Box(420, 112, 8, 6, 0, "dark_roof", 3),
    Box(339.5, 41.5, 4, 4, 0, "concrete", 9),
    Box(450.5, 118.5, 4, 4, 0, "concrete", 9),
)
# New structures (after date only, when changes=True).
_NEW_BUILDINGS: Final = (
    Box(140, 205, 8, 10, 0, "blue_roof", 3),
    Box(300, 200, 15, 12, -8, "red_roof", 4),
    Box(160, 380, 40, 20, -8, "metal_roof", 7),
    Box(420, 350, 20, 12, -8, "dark_roof", 4),
    Box(260, 150, 15, 10, 0, "metal_roof", 4),
    Box(470, 230, 10, 25, 0, "blue_roof", 4),
    Box(370, 410, 12, 10, -8, "green_roof", 3),
)
_RING: Final = Box(400, 180, 80, 60, 6, "cleared", 0)  # fence centreline rectangle
_RING_STRIP_M: Final = 3.0
_TOWER_LOCAL: Final = (33.0, -23.0)  # watchtower centre relative to the ring centre, metres
_TOWER_SIZE_M: Final = 4.0
_JITTER_M: Final = 4.0  # seeded displacement of each new structure, metres


def new_structures(rng: np.random.Generator) -> tuple[list[Box], Box, Box]:
    """Place the new buildings, fence ring and watchtower, each jittered by up to 4 m.

    Returns
    -------
    buildings : list of Box
        The new buildings.
    ring : Box
        The fence centreline rectangle.
    tower : Box
        The watchtower.
    """
    jit = rng.uniform(-_JITTER_M, _JITTER_M, size=(len(_NEW_BUILDINGS) + 1, 2))
    boxes = [b.moved(*j) for b, j in zip(_NEW_BUILDINGS, jit[:-1], strict=True)]
    ring = _RING.moved(*jit[-1])
    t = math.radians(ring.angle)
    lx, ly = _TOWER_LOCAL
    tower = Box(
        ring.cx + lx * math.cos(t) - ly * math.sin(t),
        ring.cy + lx * math.sin(t) + ly * math.cos(t),
        _TOWER_SIZE_M,
        _TOWER_SIZE_M,
        ring.angle,
        "concrete",
        10,
    )
    return boxes, ring, tower


def _ring_boxes(ring: Box, half_width: float) -> tuple[Box, Box]:
    grow = Box(
        ring.cx,
        ring.cy,
        ring.w + 2 * half_width,
        ring.h + 2 * half_width,
        ring.angle,
        ring.material,
        0,
    )
    shrink = Box(
        ring.cx,
        ring.cy,
        ring.w - 2 * half_width,
        ring.h - 2 * half_width,
        ring.angle,
        ring.material,
        0,
    )
    return grow, shrink


def paint_ring(img: NDArray[np.float32], grid: Grid, ring: Box) -> None:
    """Paint the new fence ring in place: a cleared strip with the fence on its centreline."""
    outer, inner = _ring_boxes(ring, _RING_STRIP_M / 2)
    strip = grid.mask(outer.corners()) & ~grid.mask(inner.corners())
    f_out, f_in = _ring_boxes(ring, 0.5)
    fence = grid.mask(f_out.corners()) & ~grid.mask(f_in.corners())
    img[:, strip] = spec_col("cleared")
    img[:, fence] = spec_col("fence")


def paint_structures(
    img: NDArray[np.float32], grid: Grid, fine: NDArray[np.float32], boxes: list[Box]
) -> NDArray[np.float32]:
    """Paint shadows on the ground, then roofs (gabled roofs shaded), in place.

    Parameters
    ----------
    img : ndarray of float32, shape (4, rows, cols)
        Ground to paint on, modified in place.
    grid : Grid
        Scene grid.
    fine : ndarray of float32, shape (rows, cols)
        Fine texture varying the roofs.
    boxes : list of Box
        Structures to paint.

    Returns
    -------
    ndarray of float32
        ``img`` itself.
    """
    roofs = np.zeros((grid.size, grid.size), dtype=bool)
    shade = np.zeros_like(roofs)
    for b in boxes:
        sx, sy = _SHADOW_PER_M[0] * b.height, _SHADOW_PER_M[1] * b.height
        pts = np.vstack([b.corners(), b.corners(sx, sy)])
        hull = np.asarray(shapely.MultiPoint(pts).convex_hull.exterior.coords)
        rr, cc = grid.pixels(hull)
        shade[rr, cc] = True
        rr, cc = grid.pixels(b.corners())
        roofs[rr, cc] = True
    shade &= ~roofs
    img[:3, shade] *= 0.38
    img[3, shade] *= 0.33
    x, y = grid.coords()
    for b in boxes:
        rr, cc = grid.pixels(b.corners())
        value = spec_col(b.material) * (1 + 0.02 * fine[rr, cc])
        if b.material in _GABLED:
            # ridge along the long side: the sun-facing half is brighter
            t = math.radians(b.angle + (90 if b.w >= b.h else 0))
            across = (x[0, cc] - b.cx) * math.cos(t) + (y[rr, 0] - b.cy) * math.sin(t)
            value = value * np.where(across > 0, 1.07, 0.93)
        img[:, rr, cc] = value
    return img


def truth_footprints(
    boxes: list[Box], ring: Box | None, *, left: float, top: float, off: float
) -> gpd.GeoDataFrame:
    """Return the planted footprints as an EPSG:32652 GeoDataFrame.

    Parameters
    ----------
    boxes : list of Box
        New buildings (and the watchtower), class ``"building"``.
    ring : Box or None
        Fence centreline rectangle, class ``"fence_or_wall"``; None for no ring.
    left, top : float
        Map coordinates of the scene's top-left corner, metres.
    off : float
        Design frame origin, metres from the scene's top-left corner.

    Returns
    -------
    geopandas.GeoDataFrame
        ``id``, ``class``, ``area_m2``, ``length_m`` and polygon ``geometry``.
    """

    def to_map(corners: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack([left + off + corners[:, 0], top - off - corners[:, 1]])

    geoms, classes, lengths = [], [], []
    for b in boxes:
        geoms.append(shapely.Polygon(to_map(b.corners())))
        classes.append("building")
        lengths.append(np.nan)
    if ring is not None:
        outer, inner = _ring_boxes(ring, _RING_STRIP_M / 2)
        geoms.append(shapely.Polygon(to_map(outer.corners()), [to_map(inner.corners())]))
        classes.append("fence_or_wall")
        lengths.append(2.0 * (ring.w + ring.h))
    geoms = [orient(g, sign=1.0) for g in geoms]  # exterior counter-clockwise (RFC 7946)
    return gpd.GeoDataFrame(
        {
            "id": np.arange(1, len(geoms) + 1, dtype=np.int64),
            "class": np.asarray(classes, dtype=object),
            "area_m2": np.asarray([round(g.area, 2) for g in geoms], dtype=np.float64),
            "length_m": np.asarray(lengths, dtype=np.float64),
        },
        geometry=gpd.GeoSeries(geoms, crs=f"EPSG:{EPSG}"),
        crs=f"EPSG:{EPSG}",
    )
