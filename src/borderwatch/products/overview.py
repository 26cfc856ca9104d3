"""The overview map of an evidence packet: the whole AOI, the imagery inside it, detections.

:func:`draw_overview` draws, from arrays and grid-CRS geometries only (no run, no file),

* the whole AOI, also where no image covers it: inside the AOI the area without valid
  imagery is hatched grey, outside it flat light grey; the after image (true colour)
  is placed where it lies;
* the AOI outline (blue) and the detections (yellow, numbered as in the report);
* a coordinate graticule with degree labels, a scale bar and a north arrow;
* when the imagery covers only a small part of the AOI (its extent under a third of
  the map's), a second panel with the imaged area at full resolution, framed in
  magenta on the first;
* a legend, the image credit line and, for synthetic imagery, a red banner.

:func:`borderwatch.products.evidence.render_overview` prepares the arrays from a run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from affine import Affine
from PIL import Image, ImageDraw

from borderwatch.products.cartography import (
    MapImage,
    add_banner,
    draw_graticule,
    draw_north_arrow,
    draw_scale_bar,
    font,
    hatch,
    rings,
    shift_to_px,
    wrap_text,
)

__all__ = ["DETAIL_BELOW", "draw_overview"]

#: A detail panel is added when the imagery's extent is under this share of the map's.
DETAIL_BELOW = 1 / 3

_AOI = (31, 120, 180)
_DETECTION = (255, 255, 0)
_DETAIL = (230, 0, 230)
_OUTSIDE = (244, 244, 244)
_LEFT, _TOP, _RIGHT, _BOTTOM = 70, 18, 10, 20  # panel margins, pixels (graticule labels)
_GAP = 8


@dataclass(frozen=True)
class _Layers:
    """What every panel draws, in the grid CRS."""

    rgb: Image.Image
    valid: Image.Image
    image_transform: Affine
    crs: Any
    aoi: shapely.Geometry | None
    detections: Sequence[shapely.Geometry]


def _extent(bounds: Sequence[float], pad: float) -> tuple[float, float, float, float]:
    left, bottom, right, top = bounds
    d = pad * max(right - left, top - bottom)
    return (left - d, bottom - d, right + d, top + d)


def _panel(
    layers: _Layers,
    extent: tuple[float, float, float, float],
    scale: float,
    *,
    title: str,
    numbered: bool,
    detail: tuple[float, float, float, float] | None,
) -> tuple[Image.Image, list[str], Affine]:
    """One map panel with margins; ``scale`` in pixels per metre."""
    left, bottom, right, top = extent
    w, h = max(1, math.ceil((right - left) * scale)), max(1, math.ceil((top - bottom) * scale))
    to_map = Affine(scale, 0, -left * scale, 0, -scale, top * scale)
    hatched = hatch((w, h))
    body = Image.new("RGB", (w, h), _OUTSIDE)
    if layers.aoi is None:
        body = hatched
    else:
        inside = Image.new("L", (w, h), 0)
        mask_draw = ImageDraw.Draw(inside)
        for part in shapely.get_parts(layers.aoi):  # each polygon: exterior in, holes out
            for i, ring in enumerate(rings(part, to_map)):
                mask_draw.polygon(ring, fill=255 if i == 0 else 0)
        body.paste(hatched, (0, 0), inside)
    # The image, resampled onto the panel: nearest when enlarged, box when reduced.
    img_to_map = to_map * layers.image_transform
    x0, y0 = img_to_map * (0, 0)
    x1, y1 = img_to_map * layers.rgb.size
    size = (max(1, round(x1 - x0)), max(1, round(y1 - y0)))
    enlarge = size[0] >= layers.rgb.width
    resample = Image.Resampling.NEAREST if enlarge else Image.Resampling.BOX
    rgb = layers.rgb.resize(size, resample)
    valid = layers.valid.resize(size, Image.Resampling.NEAREST)
    body.paste(rgb, (round(x0), round(y0)), valid)
    canvas = Image.new("RGB", (w + _LEFT + _RIGHT, h + _TOP + _BOTTOM), (255, 255, 255))
    canvas.paste(body, (_LEFT, _TOP))
    to_px = shift_to_px(to_map, _LEFT, _TOP)
    draw = ImageDraw.Draw(canvas)
    if layers.aoi is not None:
        for ring in rings(layers.aoi, to_px):
            draw.line(ring, fill=_AOI, width=2)
    if detail is not None:
        (dx0, dy0), (dx1, dy1) = to_px * (detail[0], detail[3]), to_px * (detail[2], detail[1])
        draw.rectangle([dx0 - 2, dy0 - 2, dx1 + 2, dy1 + 2], outline=_DETAIL, width=2)
    for geom in layers.detections:
        for ring in rings(geom, to_px):
            draw.line(ring, fill=_DETECTION, width=2)
    frame = (_LEFT, _TOP, _LEFT + w, _TOP + h)
    texts = [title, *draw_graticule(canvas, to_px=to_px, crs=layers.crs, frame=frame)]
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([_LEFT - 1, _TOP - 1, _LEFT + w, _TOP + h], outline=(0, 0, 0))
    draw.text((_LEFT, 2), title, fill=(0, 0, 0), font=font(12))
    if numbered:
        for i, geom in enumerate(layers.detections, start=1):
            if geom is None or geom.is_empty:
                continue
            cx, cy = to_px * (geom.centroid.x, geom.centroid.y)
            draw.text(
                (cx + 6, cy - 6),
                str(i),
                fill=_DETECTION,
                font=font(16),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
            texts.append(str(i))
    bar = draw_scale_bar(draw, x0=_LEFT + 8, y0=_TOP + h - 14, m_per_px=1 / scale, width_px=w)
    texts.append(bar)
    texts.append(draw_north_arrow(draw, x=_LEFT + w - 18, y=_TOP + 8))
    return canvas, texts, to_px


def _legend(canvas: Image.Image, x: float, y: float, *, aoi: bool, detail: bool) -> list[str]:
    draw = ImageDraw.Draw(canvas)
    small = font(12)
    items = [("line", _AOI, "AOI")] if aoi else []
    items.append(("box", _DETECTION, "detection (number as in the report)"))
    no_image = "inside the AOI, no valid imagery" if aoi else "no valid imagery"
    items.append(("hatch", (170, 170, 170), no_image))
    if detail:
        items.append(("box", _DETAIL, "detail panel"))
    texts = []
    for kind, colour, label in items:
        if kind == "line":
            draw.line([(x, y + 7), (x + 18, y + 7)], fill=colour, width=3)
        elif kind == "box":
            draw.rectangle([x, y + 1, x + 18, y + 13], outline=colour, width=2)
        else:
            canvas.paste(hatch((19, 13), spacing=5), (round(x), round(y) + 1))
            draw.rectangle([x, y + 1, x + 18, y + 13], outline=colour)
        draw.text((x + 24, y), label, fill=(0, 0, 0), font=small)
        texts.append(label)
        x += 24 + draw.textlength(label, font=small) + 18
    return texts


def draw_overview(
    rgb: np.ndarray,
    valid: np.ndarray,
    image_transform: Affine,
    *,
    crs: Any,
    aoi: shapely.Geometry | None,
    detections: Sequence[shapely.Geometry],
    title: str,
    credit: str,
    banner: str | None = None,
    max_px: int = 800,
) -> MapImage:
    """Draw the overview map.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``uint8 (3, rows, cols)`` stretched true-colour image, north up.
    valid : numpy.ndarray
        ``bool (rows, cols)``: pixels with valid imagery (the others are not drawn).
    image_transform : affine.Affine
        Image pixel ``(col, row)`` to grid-CRS coordinates (metres).
    crs : CRS
        The grid CRS (projected, metres), for the graticule.
    aoi : shapely.Geometry or None
        The AOI polygon in the grid CRS; without it the map shows the image's extent.
    detections : sequence of shapely.Geometry
        Detection polygons in the grid CRS, numbered 1, 2, ... in this order.
    title : str
        Printed above the map.
    credit : str
        Image credit line, printed below the map (wrapped, never cut).
    banner : str, optional
        Text of a red banner across the top (synthetic imagery).
    max_px : int
        Longer side of a single map panel, pixels (two panels get two thirds each).

    Returns
    -------
    MapImage
        ``to_px`` has one affine per panel: the whole map first, then the detail panel.
    """
    layers = _Layers(
        Image.fromarray(np.moveaxis(rgb, 0, -1), "RGB"),
        Image.fromarray(valid.astype(np.uint8) * 255, "L"),
        image_transform,
        crs,
        aoi,
        list(detections),
    )
    rows, cols = valid.shape
    (ix0, iy0), (ix1, iy1) = image_transform * (0, 0), image_transform * (cols, rows)
    image_bounds = (min(ix0, ix1), min(iy0, iy1), max(ix0, ix1), max(iy0, iy1))
    bounds = image_bounds if aoi is None else shapely.box(*image_bounds).union(aoi).bounds
    main = _extent(bounds, 0.03)
    main_side = max(main[2] - main[0], main[3] - main[1])
    image_side = max(image_bounds[2] - image_bounds[0], image_bounds[3] - image_bounds[1])
    with_detail = image_side < DETAIL_BELOW * main_side
    panel_px = max_px * 2 // 3 if with_detail else max_px
    panels = [
        _panel(
            layers,
            main,
            panel_px / main_side,
            title="Whole AOI" if aoi is not None else "Imaged area",
            numbered=not with_detail,
            detail=image_bounds if with_detail else None,
        )
    ]
    if with_detail:
        zoom = panel_px / max(rows, cols)
        zoom = math.floor(zoom) if zoom >= 1 else zoom  # whole-pixel enlargement
        pixel_m = abs(image_transform.a)
        panels.append(
            _panel(
                layers,
                _extent(image_bounds, 0.02),
                zoom / pixel_m,
                title="Detail: the imaged area",
                numbered=True,
                detail=None,
            )
        )
    width = sum(p[0].width for p in panels) + _GAP * (len(panels) - 1)
    width = max(width, 640)  # room for the legend in one line
    head = 26
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    credit_lines = wrap_text(probe, f"Imagery: {credit}", font(12), width - 16)
    foot = 24 + 16 * len(credit_lines) + 6
    height = head + max(p[0].height for p in panels) + foot
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 5), title, fill=(0, 0, 0), font=font(16))
    texts = [title]
    to_px = []
    x = 0
    for img, panel_texts, panel_to_px in panels:
        canvas.paste(img, (x, head))
        texts += panel_texts
        to_px.append(shift_to_px(panel_to_px, x, head))
        x += img.width + _GAP
    y = head + max(p[0].height for p in panels) + 4
    texts += _legend(canvas, 8, y, aoi=aoi is not None, detail=with_detail)
    for i, line in enumerate(credit_lines):
        draw.text((8, y + 22 + 16 * i), line, fill=(60, 60, 60), font=font(12))
    texts += credit_lines
    if banner:
        canvas, drawn = add_banner(canvas, banner)
        band = canvas.height - height
        texts.insert(0, drawn)
        to_px = [shift_to_px(t, 0, band) for t in to_px]
    return MapImage(canvas, tuple(texts), tuple(to_px))
