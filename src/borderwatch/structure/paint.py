"""Drawn structures on real backgrounds: roofs with their shadows, fences and walls.

No labelled pair in the training data shows a new fence, wall or patrol strip, and the
labelled buildings are mostly suburban roofs. :func:`draw_structures` adds what a
border analyst looks for to a real background crop: rectangular roofs (flat or
gabled, metal, tile, concrete or painted, 3-22 m a side, any orientation) each with its
shadow cast along one sun direction per patch, and straight or cornered strips of 0.5-
4 m (fence lines, walls, cleared patrol strips), light or dark. The label is the roofs
and strips; shadows are *not* labelled, so the network learns footprints without them.
Edges are anti-aliased (drawn at 4x and box-averaged), roofs carry a little texture.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["ROOF_COLOURS", "draw_structures"]

#: Roof colours, RGB 0-255 (metal, white, blue and red paint, tile, concrete, dark).
ROOF_COLOURS = np.array(
    [
        [215, 215, 210],
        [240, 240, 235],
        [70, 120, 200],
        [50, 90, 170],
        [180, 60, 45],
        [150, 80, 60],
        [140, 140, 135],
        [110, 110, 115],
        [60, 60, 65],
        [80, 120, 90],
    ],
    np.float32,
)
_SS = 4  # supersampling of the drawn masks
#: Least mean RGB difference (0-255) for a drawn pixel to be labelled new.
_VISIBLE = 12.0


def _alpha(size: int, polys: list[np.ndarray], *, width: float = 0.0) -> np.ndarray:
    """Coverage ``float32 (size, size)`` in 0-1 of polygons (``width`` > 0: polylines)."""
    canvas = Image.new("L", (size * _SS, size * _SS), 0)
    draw = ImageDraw.Draw(canvas)
    for p in polys:
        pts = [(float(x) * _SS, float(y) * _SS) for y, x in p]
        if width > 0:
            draw.line(pts, fill=255, width=max(int(round(width * _SS)), 1), joint="curve")
        else:
            draw.polygon(pts, fill=255)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, np.float32) / 255.0


def _rectangle(centre: np.ndarray, h: float, w: float, angle: float) -> np.ndarray:
    """Corners ``(4, 2)`` (row, col) of a rotated rectangle."""
    c, s = np.cos(angle), np.sin(angle)
    half = np.array([[-h, -w], [-h, w], [h, w], [h, -w]]) / 2
    rot = np.array([[c, -s], [s, c]])
    return np.asarray(centre + half @ rot.T)


def _blend(img: np.ndarray, alpha: np.ndarray, colour: np.ndarray) -> np.ndarray:
    return img * (1 - alpha) + colour * alpha


def draw_structures(
    image: np.ndarray,
    occupied: np.ndarray,
    rng: np.random.Generator,
    *,
    pixel_m: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw new roofs (with shadows) and fence strips on a background.

    Parameters
    ----------
    image : numpy.ndarray
        ``float32 (3, s, s)`` RGB 0-255, the background (the *before* date).
    occupied : numpy.ndarray
        ``bool (s, s)``: existing buildings, not drawn over.
    rng : numpy.random.Generator
        Randomness.
    pixel_m : float
        Pixel size of ``image``, metres.

    Returns
    -------
    after : numpy.ndarray
        ``float32 (3, s, s)``: the background with the structures.
    new : numpy.ndarray
        ``bool (s, s)``: pixels of drawn roofs and strips (not their shadows).
    """
    size = image.shape[-1]
    after = image.astype(np.float32).copy()
    new = np.zeros((size, size), bool)
    taken = occupied.astype(np.float32)
    sun = rng.uniform(0, 2 * np.pi)
    sun_dir = np.array([np.sin(sun), np.cos(sun)])
    shade = np.float32(rng.uniform(0.35, 0.7))
    for _ in range(int(rng.integers(1, 5))):
        h, w = rng.uniform(3.0, 22.0, size=2) / pixel_m
        centre = rng.uniform(0, size, size=2)
        angle = rng.uniform(0, np.pi)
        roof = _rectangle(centre, h, w, angle)
        a_roof = _alpha(size, [roof])
        if not a_roof.any() or (a_roof * taken).sum() > 0.05 * a_roof.sum():
            continue
        height_m = rng.uniform(2.5, 10.0)
        offset = sun_dir * height_m * rng.uniform(0.4, 1.2) / pixel_m
        a_shadow = _alpha(size, [roof + offset]) * (1 - a_roof)
        colour = ROOF_COLOURS[rng.integers(len(ROOF_COLOURS))] + rng.normal(0, 12, 3)
        tex = rng.normal(0, rng.uniform(1, 6), size=(1, size, size)).astype(np.float32)
        paint = colour[:, None, None].astype(np.float32) + tex
        if rng.random() < 0.4:  # gabled: one half lit, the other in its own shade
            rr, cc = np.mgrid[0:size, 0:size].astype(np.float32)
            side = (rr - centre[0]) * -np.sin(angle) + (cc - centre[1]) * np.cos(angle)
            paint = paint * np.where(side > 0, 1.0, rng.uniform(0.7, 0.9)).astype(np.float32)
        inside = a_roof >= 0.5
        if not inside.any():
            continue  # a sliver of a roof at the edge: not drawn
        if np.abs(paint - after).mean(axis=0)[inside].mean() < _VISIBLE:
            continue  # a roof the colour of its ground: not drawn, not labelled
        after = after * (1 - a_shadow * (1 - shade))
        after = _blend(after, a_roof, paint)
        new |= inside
        taken = np.maximum(taken, a_roof)
    if rng.random() < 0.45:
        width = rng.uniform(0.5, 4.0) / pixel_m
        start = rng.uniform(0, size, size=2)
        turn = rng.choice([0.0, np.pi / 2, -np.pi / 2])
        heading = rng.uniform(0, 2 * np.pi)
        leg = rng.uniform(0.4, 1.2) * size
        corner = start + leg * np.array([np.sin(heading), np.cos(heading)])
        end = corner + leg * np.array([np.sin(heading + turn), np.cos(heading + turn)])
        line = np.array([start, corner, end])
        a_line = _alpha(size, [line], width=width) * (1 - np.minimum(taken, 1))
        light = rng.random() < 0.6
        base = rng.uniform(170, 235) if light else rng.uniform(35, 85)
        colour = np.full(3, base, np.float32) + rng.normal(0, 8, 3).astype(np.float32)
        a_line = a_line * np.float32(rng.uniform(0.75, 1.0))
        drawn = _blend(after, a_line, colour[:, None, None])
        new |= (a_line >= 0.3) & (np.abs(drawn - after).mean(axis=0) >= _VISIBLE)
        after = drawn
    return np.clip(after, 0, 255).astype(np.float32), new
