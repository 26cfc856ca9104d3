"""The design frame: its CRS and size, rotated rectangles in it, and its pixel grid.

The layout is designed in a 512 m x 512 m frame (metres from its top-left corner,
x east, y south) that is centred in the scene. :class:`Box` is a rectangle in that
frame; :class:`Grid` places the frame in a scene of ``size`` pixels of ``pixel_m``
metres and rasterises polygons onto it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from skimage.draw import polygon as draw_polygon

__all__ = ["EPSG", "LAYOUT_M", "Box", "Grid"]

EPSG: Final = 32652
LAYOUT_M: Final = 512.0  # side of the design frame, metres


@dataclass(frozen=True)
class Box:
    """A rotated rectangle in the design frame (metres; x east, y south).

    Attributes
    ----------
    cx, cy : float
        Centre, metres.
    w, h : float
        Width (along the rotated x axis) and height, metres.
    angle : float
        Rotation, degrees (from x east towards y south).
    material : str
        Name of the surface spectrum it is painted with.
    height : float
        Height above ground, metres; sets the shadow length.
    """

    cx: float
    cy: float
    w: float
    h: float
    angle: float  # degrees
    material: str
    height: float  # metres, sets the shadow length

    def corners(self, dx: float = 0.0, dy: float = 0.0) -> NDArray[np.float64]:
        """Return the four corners, shape (4, 2) as (x, y), displaced by ``(dx, dy)`` metres."""
        t = math.radians(self.angle)
        ux, uy = math.cos(t), math.sin(t)
        hw, hh = self.w / 2, self.h / 2
        local = np.array([(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)])
        x = self.cx + dx + local[:, 0] * ux - local[:, 1] * uy
        y = self.cy + dy + local[:, 0] * uy + local[:, 1] * ux
        return np.column_stack([x, y])

    def moved(self, dx: float, dy: float) -> Box:
        """Return the same box with its centre displaced by ``(dx, dy)`` metres."""
        return Box(
            self.cx + dx, self.cy + dy, self.w, self.h, self.angle, self.material, self.height
        )


@dataclass(frozen=True)
class Grid:
    """The pixel grid of a square scene with the design frame centred in it.

    Attributes
    ----------
    size : int
        Rows and columns of the scene, pixels.
    pixel_m : float
        Pixel size, metres.
    off : float
        Design frame origin, metres from the scene's top-left corner.
    """

    size: int
    pixel_m: float
    off: float  # design frame origin, metres from the scene's top-left corner

    def coords(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Return pixel-centre coordinates in the design frame, metres (x east, y south)."""
        c = (np.arange(self.size, dtype=np.float32) + 0.5) * self.pixel_m - self.off
        return c[None, :], c[:, None]

    def mask(self, corners: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Return a mask of the pixels whose centres fall inside a design-frame polygon."""
        m = np.zeros((self.size, self.size), dtype=bool)
        rr, cc = self.pixels(corners)
        m[rr, cc] = True
        return m

    def pixels(self, corners: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        """Return the (rows, cols) of the pixels whose centres fall inside a polygon."""
        r = (corners[:, 1] + self.off) / self.pixel_m - 0.5
        c = (corners[:, 0] + self.off) / self.pixel_m - 0.5
        return draw_polygon(r, c, shape=(self.size, self.size))
