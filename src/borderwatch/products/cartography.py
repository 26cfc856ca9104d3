"""Map furniture drawn with PIL: scale bar, north arrow, graticule, hatching, banners.

Everything here draws on a :class:`PIL.Image.Image` whose map part is north up (the
analysis grid is a projected, north-up grid). Positions on a map come from an affine
``to_px`` that takes grid-CRS coordinates (metres) to image pixels ``(col, row)``.
Each drawing function returns the texts it drew, so the caller can record them
(:class:`MapImage`) and tests can check them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from PIL import Image, ImageDraw, ImageFont
from pyproj import CRS, Transformer
from rasterio.warp import transform_bounds

__all__ = [
    "SYNTHETIC_BANNER",
    "MapImage",
    "add_banner",
    "draw_graticule",
    "draw_north_arrow",
    "draw_scale_bar",
    "fit_text",
    "font",
    "format_lonlat",
    "graticule_step",
    "hatch",
    "nice_length",
    "rings",
    "shift_to_px",
    "wrap_text",
]

#: Printed across chips and overviews made from synthetic imagery.
SYNTHETIC_BANNER = "SYNTHETIC IMAGERY - NOT A REAL OBSERVATION"

_BANNER_FILL = (200, 0, 0)
# Graticule intervals, degrees: 1, 2, 5 times a power of ten.
_STEPS = tuple(m * 10.0**e for e in range(-5, 2) for m in (1, 2, 5))


@dataclass(frozen=True)
class MapImage:
    """A rendered map or chip and what was drawn on it.

    Attributes
    ----------
    image : PIL.Image.Image
        RGB image.
    texts : tuple of str
        Every text drawn on the image, in drawing order.
    to_px : tuple of affine.Affine
        Per map panel (main first), grid-CRS coordinates (metres) to image pixels
        ``(col, row)``.
    """

    image: Image.Image
    texts: tuple[str, ...]
    to_px: tuple[Affine, ...]


def _apply(to_px: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``to_px`` applied to arrays of x and y."""
    a, b, c, d, e, f = to_px[:6]
    return a * x + b * y + c, d * x + e * y + f


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """PIL's default scalable font at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def fit_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> str:
    """Longest prefix of ``text`` (with an ellipsis) that fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on the prefix length
        mid = (lo + hi + 1) // 2
        if draw.textlength(text[:mid] + "…", font=font) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


def wrap_text(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> list[str]:
    """Split ``text`` into lines that fit ``width`` pixels, on as many lines as it needs.

    Lines break at spaces; a word wider than ``width`` is split across lines, never
    cut, so every character of ``text`` is drawn (a credit line must be whole).
    """
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while draw.textlength(word, font=font) > width and len(word) > 1:
            lo, hi = 1, len(word) - 1
            while lo < hi:  # binary search on the longest prefix that fits
                mid = (lo + hi + 1) // 2
                lo, hi = (
                    (mid, hi) if draw.textlength(word[:mid], font=font) <= width else (lo, mid - 1)
                )
            lines.append(word[:lo])
            word = word[lo:]
        lines.append(word)
    return lines or [""]


def nice_length(max_m: float) -> float:
    """Return the largest 1, 2 or 5 times a power of ten not above ``max_m`` (metres)."""
    exp = 10 ** math.floor(math.log10(max_m))
    for step in (5, 2, 1):
        if step * exp <= max_m:
            return step * exp
    return exp


def _length_label(metres: float) -> str:
    return f"{metres / 1000:g} km" if metres >= 1000 else f"{metres:g} m"


def draw_scale_bar(
    draw: ImageDraw.ImageDraw, *, x0: float, y0: float, m_per_px: float, width_px: float
) -> str:
    """Draw a scale bar of a round length about a quarter of ``width_px``.

    Parameters
    ----------
    draw : PIL.ImageDraw.ImageDraw
    x0, y0 : float
        Left end and top of the bar, image pixels (its label sits above).
    m_per_px : float
        Ground size of one image pixel, metres.
    width_px : float
        Width of the map part of the image, pixels.

    Returns
    -------
    str
        The bar's label, e.g. ``"20 m"`` or ``"1 km"``.
    """
    length_m = nice_length(width_px * m_per_px / 4)
    bar = length_m / m_per_px
    label = _length_label(length_m)
    draw.rectangle([x0 - 3, y0 - 16, x0 + bar + 3, y0 + 8], fill=(255, 255, 255))
    draw.rectangle([x0, y0, x0 + bar, y0 + 5], fill=(0, 0, 0))
    draw.text((x0, y0 - 15), label, fill=(0, 0, 0), font=font(12))
    return label


def draw_north_arrow(draw: ImageDraw.ImageDraw, *, x: float, y: float) -> str:
    """Draw a north arrow with its tip at ``(x, y)`` (the map is north up); return ``"N"``."""
    draw.rectangle([x - 11, y - 4, x + 11, y + 38], fill=(255, 255, 255))
    draw.polygon([(x, y), (x - 7, y + 16), (x + 7, y + 16)], fill=(0, 0, 0))
    draw.text((x - 4, y + 19), "N", fill=(0, 0, 0), font=font(14))
    return "N"


def format_lonlat(lat: float, lon: float, *, decimals: int = 6) -> str:
    """``"42.539123°N 129.004567°E"``: latitude then longitude, EPSG:4326 degrees."""
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{abs(lat):.{decimals}f}°{ns} {abs(lon):.{decimals}f}°{ew}"


def graticule_step(span_deg: float, *, max_lines: int = 5) -> float:
    """Smallest round interval (degrees) giving at most ``max_lines`` lines over ``span_deg``."""
    for step in _STEPS:
        if span_deg / step <= max_lines:
            return step
    return _STEPS[-1]


def _degree_label(value: float, step: float, axis: str) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    hemi = ("N" if value >= 0 else "S") if axis == "lat" else ("E" if value >= 0 else "W")
    return f"{abs(value):.{decimals}f}°{hemi}"


def draw_graticule(
    image: Image.Image,
    *,
    to_px: Affine,
    crs: CRS | Any,
    frame: tuple[float, float, float, float],
    samples: int = 64,
) -> list[str]:
    """Draw lines of constant latitude and longitude on a map, labelled in the margins.

    The lines are computed in EPSG:4326 and projected to the map's CRS, so in a UTM
    grid they are slightly curved and tilted, as on a printed topographic map. The
    interval is a round number of degrees (:func:`graticule_step`); longitude labels
    go below the frame's bottom edge, latitude labels left of its left edge.

    Parameters
    ----------
    image : PIL.Image.Image
        RGB image, drawn on in place.
    to_px : affine.Affine
        Grid-CRS coordinates (metres) to image pixels.
    crs : CRS
        The map's CRS (the analysis grid CRS).
    frame : tuple of float
        The map part of the image, ``(left, top, right, bottom)`` pixels; lines are
        clipped to it.
    samples : int
        Points per line.

    Returns
    -------
    list of str
        The labels drawn, e.g. ``["129.010°E", "42.530°N"]``.
    """
    left, top, right, bottom = frame
    to_map = ~to_px
    xs, ys = zip(*(to_map * (x, y) for x, y in ((left, top), (right, bottom))), strict=True)
    bounds = (min(xs), min(ys), max(xs), max(ys))
    lon0, lat0, lon1, lat1 = transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21)
    step = graticule_step(max(lon1 - lon0, lat1 - lat0))
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    clip = shapely.box(left, top, right, bottom)
    edges = {
        "lon": shapely.LineString([(left, bottom), (right, bottom)]),
        "lat": shapely.LineString([(left, top), (left, bottom)]),
    }
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    labels: list[tuple[str, str, tuple[float, float]]] = []
    spans = (("lon", lon0, lon1, (lat0, lat1)), ("lat", lat0, lat1, (lon0, lon1)))
    for axis, lo, hi, other in spans:
        along = np.linspace(other[0], other[1], samples)
        for value in np.arange(math.ceil(lo / step), math.floor(hi / step) + 1) * step:
            fixed = np.full(samples, value)
            lon, lat = (fixed, along) if axis == "lon" else (along, fixed)
            mx, my = tr.transform(lon, lat)
            cols, rows = _apply(to_px, np.asarray(mx), np.asarray(my))
            line = shapely.LineString(np.column_stack([cols, rows])).intersection(clip)
            for part in shapely.get_parts(line):
                if part.geom_type != "LineString":
                    continue
                pts = [tuple(p) for p in np.asarray(part.coords)]
                draw.line(pts, fill=(0, 0, 0, 90), width=3)
                draw.line(pts, fill=(255, 255, 255, 200), width=1)
            cross = shapely.LineString(np.column_stack([cols, rows])).intersection(edges[axis])
            if not cross.is_empty:
                p = shapely.get_parts(cross)[0].coords[0]
                labels.append((axis, _degree_label(float(value), step, axis), p))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))
    text_draw = ImageDraw.Draw(image)
    small = font(11)
    for axis, label, (x, y) in labels:
        width = text_draw.textlength(label, font=small)
        xy = (x - width / 2, y + 3) if axis == "lon" else (x - width - 4, y - 6)
        text_draw.text(xy, label, fill=(0, 0, 0), font=small)
    return [label for _, label, _ in labels]


def hatch(
    size: tuple[int, int],
    *,
    spacing: int = 8,
    background: tuple[int, int, int] = (228, 228, 228),
    line: tuple[int, int, int] = (170, 170, 170),
) -> Image.Image:
    """Make a light grey image of ``size`` (width, height) with diagonal hatching."""
    img = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(img)
    w, h = size
    for d in range(-h, w, spacing):
        draw.line([(d, h), (d + h, 0)], fill=line, width=1)
    return img


def _banner_lines(
    draw: ImageDraw.ImageDraw, text: str, width: float
) -> tuple[list[str], ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    """Largest font (24 down to 12 px) that fits ``text`` in one line, or else in two."""
    halves = [part.strip() for part in text.split(" - ", 1)]
    for size in range(24, 11, -2):
        f = font(size)
        for lines in ([text], halves):
            if all(draw.textlength(t, font=f) <= width for t in lines):
                return lines, f
    return halves, font(12)


def add_banner(image: Image.Image, text: str = SYNTHETIC_BANNER) -> tuple[Image.Image, str]:
    """Return ``image`` with a red band across its top holding ``text`` in large white letters.

    The text is split at ``" - "`` onto two lines when one line does not fit the width.
    Returns the new image and ``text``.
    """
    probe = ImageDraw.Draw(image)
    lines, f = _banner_lines(probe, text, image.width - 12)
    line_h = int(getattr(f, "size", 12)) + 6
    band = line_h * len(lines) + 8
    out = Image.new("RGB", (image.width, image.height + band), _BANNER_FILL)
    out.paste(image, (0, band))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        w = draw.textlength(line, font=f)
        draw.text(((image.width - w) / 2, 4 + i * line_h), line, fill=(255, 255, 255), font=f)
    return out, text


def shift_to_px(to_px: Affine, dx: float, dy: float) -> Affine:
    """``to_px`` followed by a move of ``(dx, dy)`` pixels (a map pasted at an offset)."""
    return Affine.translation(dx, dy) * to_px


def rings(geom: shapely.Geometry, to_px: Affine) -> list[list[tuple[float, float]]]:
    """Exterior and interior rings of a (multi)polygon as pixel point lists."""
    out = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon":
            continue
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)
            cols, rows = _apply(to_px, xy[:, 0], xy[:, 1])
            out.append(list(zip(cols.tolist(), rows.tolist(), strict=True)))
    return out
