"""What happens on the dates of a synthetic stack: its plan, and the clouds and swath edge.

Seeded plans of a stack (:func:`plan_dates`: the built date of each new structure and
the removal of one, :func:`plan_clouds`: which buildings a cloud covers on which date,
:func:`plan_nodata`: the date and place without coverage, :func:`plan_shifts`: the
mis-registration per date), drawing a cloud with its shadow and mask
(:func:`draw_cloud`), the nodata side of a swath edge (:func:`swath_edge`) and a
structure's footprint as displaced on a date (:func:`footprint`). Used by
:mod:`borderwatch.synthetic.stack`.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import shapely
from numpy.typing import NDArray
from scipy import ndimage

from borderwatch.masks import MASK_CLOUD, MASK_SHADOW  # the user-mask codes written
from borderwatch.synthetic import ground as gr
from borderwatch.synthetic.frame import LAYOUT_M, Box, Grid

__all__ = [
    "MASK_CLOUD",
    "MASK_SHADOW",
    "draw_cloud",
    "footprint",
    "plan_clouds",
    "plan_dates",
    "plan_nodata",
    "plan_shifts",
    "swath_edge",
]


_CLOUD_DN: Final = (4300.0, 4400.0, 4500.0, 4700.0)  # thick cloud, blue..NIR
_CLOUD_HEIGHT_M: Final = 90.0  # sets the shadow offset, with the sun of the structures
_SHADOW_PER_M: Final = (-0.30, -0.55)  # as the buildings' shadows (x east, y south)
_MASK_GROW_PX: Final = 2  # user masks are drawn this much beyond the cloud's visible edge
_FEW_PX_SHIFT: Final = (1.5, 3.0)  # magnitude range of the few-pixel shifts, pixels


def plan_dates(rng: np.random.Generator, n: int, count: int) -> tuple[list[int], list[int | None]]:
    """Draw the built date of each structure and the removal date of one building.

    Parameters
    ----------
    rng : numpy.random.Generator
        Stream to draw from.
    n : int
        Number of dates (at least 4).
    count : int
        Number of structures: the buildings, then the watchtower, then the ring.

    Returns
    -------
    built : list of int
        Date index of the first date each structure is visible, in ``1 .. n - 2``.
    removed : list of int or None
        Date index from which a structure is gone again: one building (not the
        watchtower or ring), at least two dates after its built date; None otherwise.
    """
    built = [int(b) for b in rng.integers(1, n - 1, size=count)]
    removed: list[int | None] = [None] * count
    t = int(rng.integers(0, count - 2))  # a building, not the watchtower or the ring
    built[t] = int(rng.integers(1, n - 2))
    removed[t] = int(rng.integers(built[t] + 2, n))  # present on two dates at least
    return built, removed


def plan_clouds(
    rng: np.random.Generator, n: int, built: list[int], *, avoid: int | None
) -> dict[int, tuple[int, ...]]:
    """Choose the cloudy dates and the buildings their clouds cover.

    One cloud on a building's built date, one on the date before another building's
    built date (it keeps an absent date before that), one over a building on or after
    its built date, and more at random until about a quarter of the dates are cloudy.

    Parameters
    ----------
    rng : numpy.random.Generator
        Stream to draw from.
    n : int
        Number of dates.
    built : list of int
        From :func:`plan_dates` (the last entry, the ring, is never a cloud's target).
    avoid : int or None
        A date index to keep free of clouds (the no-coverage date).

    Returns
    -------
    dict of int to tuple of int
        Date index -> indices (into ``built``) of the buildings a cloud is centred on.
    """
    k = [int(j) for j in rng.permutation(len(built) - 1)]  # the ring is larger than a cloud
    plan: dict[int, list[int]] = {}

    def put(date: int, j: int) -> None:
        if date != avoid:
            plan.setdefault(date, []).append(j)

    on_built = [j for j in k if built[j] != avoid] or k
    put(built[on_built[0]], on_built[0])  # first visible under cloud
    rest = [j for j in k if j != on_built[0]]
    before = [j for j in rest if built[j] >= 2 and built[j] - 1 != avoid]
    if before:  # its last absent date hidden (it keeps an absent date before that)
        put(built[before[0]] - 1, before[0])
        rest.remove(before[0])
    put(int(rng.integers(built[rest[0]], n)), rest[0])  # standing under cloud
    free = [d for d in range(n) if d not in plan and d != avoid]
    extra = min(max(0, round(n / 4) - len(plan)), len(free))
    for d in rng.choice(free, size=extra, replace=False):
        put(int(d), int(rng.choice(rest[1:])))
    return {d: tuple(v) for d, v in sorted(plan.items())}


def plan_nodata(rng: np.random.Generator, built: list[int]) -> tuple[int, int]:
    """Choose the no-coverage date: the built date of a building, and that building.

    Returns
    -------
    date : int
        Date index without coverage of part of the scene.
    building : int
        Index (into ``built``) of the building the missing part holds.
    """
    k = int(rng.integers(0, len(built) - 1))
    return built[k], k


def plan_shifts(
    rng: np.random.Generator, n: int, *, misregistration: bool
) -> list[tuple[float, float]]:
    """Draw the mis-registration of each date, (rows, cols) pixels.

    The first date is the reference (no shift); the others are shifted by up to 0.5 px
    per axis, and two of them by 1.5--3 px.

    Returns
    -------
    list of tuple of float
        One (rows, cols) shift per date, rounded to 0.001 px; all zero when
        ``misregistration`` is false.
    """
    shifts = [(0.0, 0.0)] * n
    if not misregistration:
        return shifts
    sub = rng.uniform(-0.5, 0.5, size=(n, 2))
    few = rng.choice(np.arange(1, n), size=2, replace=False)
    for i in range(1, n):
        r, c = sub[i]
        if i in few:
            mag, ang = rng.uniform(*_FEW_PX_SHIFT), rng.uniform(0, 2 * math.pi)
            r, c = mag * math.sin(ang), mag * math.cos(ang)
        shifts[i] = (round(float(r), 3), round(float(c), 3))
    return shifts


def draw_cloud(
    img: NDArray[np.floating],
    mask: NDArray[np.uint8],
    grid: Grid,
    target: Box,
    rng: np.random.Generator,
) -> None:
    """Paint a thick cloud over ``target`` and its shadow, and mark both in ``mask``.

    Parameters
    ----------
    img : ndarray of float, shape (4, rows, cols)
        The date's image, DN, modified in place.
    mask : ndarray of uint8, shape (rows, cols)
        The date's user mask, modified in place: :data:`MASK_CLOUD` and
        :data:`MASK_SHADOW`, each grown by 2 px beyond where the image changed.
    grid : Grid
        Scene grid.
    target : Box
        Building the cloud is centred on (within 4 m); its radius covers it whole.
    rng : numpy.random.Generator
        Stream for the cloud's size, position and outline.
    """
    x, y = grid.coords()
    radius = math.hypot(target.w, target.h) / 2 + rng.uniform(12.0, 25.0)
    cx, cy = target.cx + rng.uniform(-4, 4), target.cy + rng.uniform(-4, 4)
    wobble = gr.smooth_noise(rng, (grid.size, grid.size), 8.0 / grid.pixel_m)
    edge = 4.0  # soft edge, metres

    def blob(dx: float, dy: float) -> NDArray[np.float32]:
        r = np.hypot(x - cx - dx, y - cy - dy)
        return np.clip((radius * (1 + 0.12 * wobble) - r) / edge, 0, 1).astype(np.float32)

    cloud = blob(0.0, 0.0)
    shadow = blob(_SHADOW_PER_M[0] * _CLOUD_HEIGHT_M, _SHADOW_PER_M[1] * _CLOUD_HEIGHT_M)
    shadow *= 1 - cloud
    img *= (1 - 0.6 * shadow)[None]
    img += cloud[None] * (np.asarray(_CLOUD_DN)[:, None, None] - img)
    grow = np.ones((2 * _MASK_GROW_PX + 1,) * 2, dtype=bool)
    cloudy = ndimage.binary_dilation(cloud > 0, grow)
    shady = ndimage.binary_dilation(shadow > 0, grow) & ~cloudy
    mask[shady & (mask == 0)] = MASK_SHADOW
    mask[cloudy] = MASK_CLOUD


def swath_edge(
    grid: Grid, target: Box, *, left: float, top: float
) -> tuple[NDArray[np.bool_], shapely.Polygon]:
    """Return the pixels and polygon beyond a slanted swath edge 25 m from ``target``.

    The side without data is the one holding ``target`` and the nearer scene edge,
    so the date misses a strip of the scene rather than most of it.

    Returns
    -------
    pixels : ndarray of bool, shape (rows, cols)
        True where the date has no data.
    polygon : shapely.Polygon
        The same region in map coordinates (EPSG:32652 metres; ``left``/``top`` are the
        scene's top-left corner).
    """
    x, y = grid.coords()
    slope = 0.25  # the edge runs north-north-east
    east = target.cx >= LAYOUT_M / 2
    reach = math.hypot(target.w, target.h) / 2 + 25.0
    x0 = target.cx - reach if east else target.cx + reach
    beyond = (x - x0) - slope * (y - target.cy)
    pixels = np.asarray(beyond > 0 if east else beyond < 0)
    lo, hi = -grid.off, grid.size * grid.pixel_m - grid.off  # scene edges, design frame
    xs = [x0 + slope * (yy - target.cy) for yy in (lo, hi)]
    far = hi if east else lo
    frame = shapely.Polygon([(xs[0], lo), (far, lo), (far, hi), (xs[1], hi)])
    frame = frame.intersection(shapely.box(lo, lo, hi, hi))
    poly = shapely.transform(
        frame, lambda c: np.column_stack([left + grid.off + c[:, 0], top - grid.off - c[:, 1]])
    )
    return pixels, poly


def footprint(grid: Grid, box: Box, shift: tuple[float, float], *, ring: bool) -> NDArray[np.bool_]:
    """Return the pixels of a structure's footprint as displaced by ``shift`` (rows, cols px).

    ``ring`` marks the fence ring, whose footprint is its 3 m strip.
    """
    dx, dy = shift[1] * grid.pixel_m, shift[0] * grid.pixel_m
    if not ring:
        return grid.mask(box.corners(dx, dy))
    outer = Box(box.cx, box.cy, box.w + 3, box.h + 3, box.angle, box.material, 0)
    inner = Box(box.cx, box.cy, box.w - 3, box.h - 3, box.angle, box.material, 0)
    return grid.mask(outer.corners(dx, dy)) & ~grid.mask(inner.corners(dx, dy))
