"""Evidence packets: dated before/after chips of every detection, a report and a manifest.

For each detection :func:`write_evidence` cuts a chip around the polygon from both
dates and writes

* ``chips/<id>_before.png`` and ``chips/<id>_after.png``: true colour, stretched
  with the *same* per-band limits for both dates (2nd--98th percentile of the
  pooled valid pixels of the two chips), so a brightness difference in the PNGs is
  a difference in the data; the polygon outlined, a scale bar, a north arrow, and
  the date and image source printed on the image;
* ``chips/<id>_before.tif`` and ``chips/<id>_after.tif``: the chip's analysis-grid
  values (all bands, float32, NaN = no data) as small GeoTIFFs in the grid CRS;

then an ``overview.png`` of the AOI, ``report.html`` (:mod:`borderwatch.products.report`) and
``manifest.json`` (:mod:`borderwatch.products.manifest`) hashing everything.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.windows
import shapely
from PIL import Image, ImageDraw, ImageFont

from borderwatch.aoi import aoi_polygon_lonlat
from borderwatch.engine import DetectionRun, run_metadata
from borderwatch.errors import InputError, OutputExistsError
from borderwatch.io import Grid
from borderwatch.products.export import atomic_write, write_float_raster
from borderwatch.products.manifest import write_manifest
from borderwatch.products.report import write_report

__all__ = [
    "Chip",
    "EvidencePacket",
    "chip_window",
    "render_chip",
    "scene_info",
    "stretch_limits",
    "true_colour_bands",
    "write_evidence",
]

_RGB_NAMES = (("red", "b04", "b4"), ("green", "b03", "b3"), ("blue", "b02", "b2"))
_OUTLINE = (255, 255, 0)
_CHIP_PX = 320  # target size of the longer chip side in the PNG, pixels


@dataclass(frozen=True)
class Chip:
    """The files of one detection's chips, relative to the packet folder."""

    id: str
    before_png: str
    after_png: str
    before_tif: str
    after_tif: str


@dataclass(frozen=True)
class EvidencePacket:
    """A written evidence packet."""

    folder: Path
    chips: tuple[Chip, ...]
    overview: Path
    report: Path
    manifest: Path


def true_colour_bands(band_names: Sequence[str]) -> tuple[int, int, int]:
    """0-based indices of the red, green and blue bands.

    Names ``red``/``green``/``blue`` or Sentinel-2 ``B04``/``B03``/``B02`` are
    recognised (any case). Otherwise a 4-or-more-band image is taken to be in the
    common blue, green, red, NIR order, a 3-band image to be RGB, and anything
    else is shown as grey from its first band.
    """
    lower = [n.lower() for n in band_names]
    found = [next((i for i, n in enumerate(lower) if n in names), None) for names in _RGB_NAMES]
    if all(i is not None for i in found):
        return (int(found[0]), int(found[1]), int(found[2]))  # type: ignore[arg-type]
    if len(lower) >= 4:
        return (2, 1, 0)
    if len(lower) == 3:
        return (0, 1, 2)
    return (0, 0, 0)


def stretch_limits(*chips: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Per-band percentile limits pooled over several ``(3, rows, cols)`` chips.

    Returns
    -------
    numpy.ndarray
        ``(3, 2)``: low and high limit of each band; NaN pixels ignored.
    """
    stacked = np.concatenate([c.reshape(c.shape[0], -1) for c in chips], axis=1)
    lims = np.zeros((stacked.shape[0], 2))
    for b, values in enumerate(stacked):
        v = values[np.isfinite(values)]
        if v.size:
            lims[b] = np.percentile(v, [low, high])
        if lims[b, 1] <= lims[b, 0]:
            lims[b, 1] = lims[b, 0] + 1.0
    return lims


def _to_uint8(rgb: np.ndarray, limits: np.ndarray) -> np.ndarray:
    lo, hi = limits[:, 0, None, None], limits[:, 1, None, None]
    scaled = np.clip((rgb - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return np.nan_to_num(scaled, nan=0.0).astype(np.uint8)


def chip_window(
    geom: shapely.Geometry, grid: Grid, *, pad_frac: float = 0.6, min_px: int = 48
) -> rasterio.windows.Window:
    """Window of ``grid`` around ``geom`` (grid CRS), padded and at least ``min_px`` square."""
    left, bottom, right, top = geom.bounds
    win = rasterio.windows.from_bounds(left, bottom, right, top, transform=grid.transform)
    size = max(win.width, win.height)
    side = max(min_px, math.ceil(size * (1 + 2 * pad_frac)))
    cx, cy = win.col_off + win.width / 2, win.row_off + win.height / 2
    col0 = int(round(cx - side / 2))
    row0 = int(round(cy - side / 2))
    rows, cols = grid.shape
    col0 = min(max(col0, 0), max(cols - side, 0))
    row0 = min(max(row0, 0), max(rows - side, 0))
    return rasterio.windows.Window(col0, row0, min(side, cols - col0), min(side, rows - row0))


def scene_info(scene: Any) -> dict[str, Any]:
    """Describe one date (a ``DateRef``) as the report, chips and manifest give it.

    Returns
    -------
    dict
        ``date`` (``YYYY-MM-DD`` or None), ``date_source`` (``"option"``, ``"tiff tag
        ACQUISITION_DATE"``, ``"file name"``, ... or None), ``files`` (names),
        ``scene_id`` (str or None), ``scene_ids`` (every ``KEY=value`` id tag of the
        files, and the scene id), ``credit`` (the credit line, ``"unknown"`` where
        nothing gave one; never a file name), ``credit_source`` and ``synthetic``
        (a file is tagged ``SYNTHETIC=yes``); see :mod:`borderwatch.imagery`.
    """
    meta = scene.source.imagery
    ids: list[str] = [meta.scene_id] if meta.scene_id else []
    for path in scene.source.paths:
        with rasterio.open(path) as src:
            tags = src.tags()
        for key, value in tags.items():
            up = key.upper()
            if ("ID" in up.split("_") or up.endswith(("_ID", "PRODUCT_URI"))) and value:
                ids.append(f"{key}={value}")
    return {
        "date": meta.date,
        "date_source": meta.date_source,
        "files": [Path(p).name for p in scene.source.paths],
        "scene_id": meta.scene_id,
        "scene_ids": sorted(set(ids)),
        "credit": meta.credit or "unknown",
        "credit_source": meta.credit_source,
        "synthetic": meta.synthetic,
    }


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> str:
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


def _nice_length(max_m: float) -> float:
    exp = 10 ** math.floor(math.log10(max_m))
    for step in (5, 2, 1):
        if step * exp <= max_m:
            return step * exp
    return exp


def render_chip(
    rgb: np.ndarray,
    *,
    outline_px: Sequence[np.ndarray],
    pixel_m: float,
    title: str,
    source: str,
) -> Image.Image:
    """Draw a chip for print: image, polygon outline, scale bar, north arrow, captions.

    Parameters
    ----------
    rgb : numpy.ndarray
        ``uint8 (3, rows, cols)`` stretched true-colour chip (north up).
    outline_px : sequence of numpy.ndarray
        Polygon rings as ``(n, 2)`` arrays of (col, row) pixel coordinates in the chip.
    pixel_m : float
        Ground size of one chip pixel, metres.
    title, source : str
        Printed above the image (date) and below it (image source).

    Returns
    -------
    PIL.Image.Image
        RGB image, about 320 pixels on its longer image side plus caption bands.
    """
    _, rows, cols = rgb.shape
    k = max(1, _CHIP_PX // max(rows, cols))
    img = Image.fromarray(np.moveaxis(rgb, 0, -1), "RGB")
    img = img.resize((cols * k, rows * k), Image.Resampling.NEAREST)
    w, h = img.size
    head, foot = 26, 22
    canvas = Image.new("RGB", (w, h + head + foot), (255, 255, 255))
    canvas.paste(img, (0, head))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill=(0, 0, 0), font=_font(16))
    small = _font(12)
    draw.text((4, head + h + 4), _fit(draw, source, small, w - 8), fill=(60, 60, 60), font=small)
    for ring in outline_px:
        pts = [(float(x) * k, float(y) * k + head) for x, y in ring]
        draw.line(pts, fill=_OUTLINE, width=2)
    # Scale bar: a round length about a quarter of the chip width, bottom left.
    length_m = _nice_length(w / k * pixel_m / 4)
    bar = length_m / pixel_m * k
    x0, y0 = 8, head + h - 14
    draw.rectangle([x0 - 3, y0 - 16, x0 + bar + 3, y0 + 8], fill=(255, 255, 255))
    draw.rectangle([x0, y0, x0 + bar, y0 + 5], fill=(0, 0, 0))
    draw.text((x0, y0 - 15), f"{length_m:g} m", fill=(0, 0, 0), font=_font(12))
    # North arrow (the analysis grid is north up), top right.
    ax, ay = w - 18, head + 8
    draw.rectangle([ax - 11, ay - 4, ax + 11, ay + 38], fill=(255, 255, 255))
    draw.polygon([(ax, ay), (ax - 7, ay + 16), (ax + 7, ay + 16)], fill=(0, 0, 0))
    draw.text((ax - 4, ay + 19), "N", fill=(0, 0, 0), font=_font(14))
    return canvas


def _rings_px(geom: shapely.Geometry, transform: Any) -> list[np.ndarray]:
    inv = ~transform
    polys = getattr(geom, "geoms", [geom])
    rings = []
    for poly in polys:
        for ring in (poly.exterior, *poly.interiors):
            xy = np.asarray(ring.coords)
            cols, rows = inv * (xy[:, 0], xy[:, 1])
            rings.append(np.column_stack([cols, rows]))
    return rings


def _write_png(img: Image.Image, path: Path, *, overwrite: bool) -> None:
    with atomic_write(path, overwrite=overwrite) as tmp:
        img.save(tmp, format="PNG")


def _write_chips(
    run: DetectionRun,
    detections: gpd.GeoDataFrame,
    chips_dir: Path,
    info: dict[str, dict[str, Any]],
    *,
    overwrite: bool,
) -> list[Chip]:
    bands = true_colour_bands(run.before.source.band_names)
    out = []
    for det_id, geom in zip(detections["id"].astype(str), detections.geometry.values, strict=True):
        win = chip_window(geom, run.grid)
        sub = run.grid.window_grid(win)
        pixels = run.read_window(win)
        cut = {"before": pixels[0], "after": pixels[1]}
        rgb = {role: a[list(bands)] for role, a in cut.items()}
        limits = stretch_limits(rgb["before"], rgb["after"])
        rings = _rings_px(geom, sub.transform)
        names = {}
        for role in ("before", "after"):
            meta = info[role]
            img = render_chip(
                _to_uint8(rgb[role], limits),
                outline_px=rings,
                pixel_m=sub.res[0],
                title=f"{role.upper()}  {meta['date'] or 'date unknown'}",
                source=f"source: {meta['credit']}",
            )
            png = chips_dir / f"{det_id}_{role}.png"
            tif = chips_dir / f"{det_id}_{role}.tif"
            _write_png(img, png, overwrite=overwrite)
            write_float_raster(
                tif,
                cut[role],
                sub,
                band_names=getattr(run, role).source.band_names,
                tags={"ACQUISITION_DATE": meta["date"]} if meta["date"] else None,
                overwrite=overwrite,
            )
            names[role] = (f"chips/{png.name}", f"chips/{tif.name}")
        out.append(
            Chip(
                det_id, names["before"][0], names["after"][0], names["before"][1], names["after"][1]
            )
        )
    return out


def render_overview(
    run: DetectionRun, detections: gpd.GeoDataFrame, *, max_px: int = 800
) -> Image.Image:
    """After-date true colour of the whole grid with the AOI and numbered detections."""
    bands = list(true_colour_bands(run.after.source.band_names))
    data, step = run.overview()
    small = data[bands]
    img = Image.fromarray(np.moveaxis(_to_uint8(small, stretch_limits(small)), 0, -1), "RGB")
    k = max(1, max_px // max(img.size))
    img = img.resize((img.size[0] * k, img.size[1] * k), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(img)
    scale = k / step
    transform = run.grid.transform
    shapes: list[tuple[shapely.Geometry, tuple[int, int, int], str]] = []
    if run.aoi is not None:
        aoi_lonlat = gpd.GeoSeries([aoi_polygon_lonlat(run.aoi)], crs="EPSG:4326")
        aoi = aoi_lonlat.to_crs(run.grid.crs).iloc[0]
        shapes.append((aoi, (31, 120, 180), ""))
    for i, geom in enumerate(detections.geometry.values, start=1):
        shapes.append((geom, _OUTLINE, str(i)))
    for geom, colour, label in shapes:
        if geom is None or geom.is_empty:
            continue
        for ring in _rings_px(geom, transform):
            draw.line([(x * scale, y * scale) for x, y in ring], fill=colour, width=2)
        if label:
            c = ~transform * (geom.centroid.x, geom.centroid.y)
            draw.text(
                (c[0] * scale + 6, c[1] * scale - 6),
                label,
                fill=_OUTLINE,
                font=_font(16),
                stroke_width=2,
                stroke_fill=(0, 0, 0),
            )
    return img


def write_evidence(
    run: DetectionRun,
    folder: str | os.PathLike[str],
    *,
    detections: gpd.GeoDataFrame,
    other_outputs: Iterable[str | os.PathLike[str]] = (),
    overwrite: bool = False,
) -> EvidencePacket:
    """Write the evidence packet of a run into ``folder``.

    Parameters
    ----------
    run : DetectionRun
        A finished run (its scenes supply the chips).
    folder : path
        Packet folder; created if missing. Must be empty unless ``overwrite``.
    detections : geopandas.GeoDataFrame
        The run's detections in the analyst schema (grid CRS), e.g. from
        :func:`borderwatch.products.schema.analyst_table`.
    other_outputs : iterable of paths
        Further files of the run (GeoPackage, GeoJSON) to hash into the manifest;
        they may already lie in ``folder``.
    overwrite : bool
        Replace existing files.

    Returns
    -------
    EvidencePacket

    Raises
    ------
    OutputExistsError
        ``folder`` holds files and ``overwrite`` is False.
    """
    root = Path(folder)
    if detections.crs is None or not detections.crs.equals(run.grid.crs):
        raise InputError("detections must be in the run's grid CRS for chips")
    others = [Path(p) for p in other_outputs]
    own = {p.resolve() for p in others}
    if root.exists() and not overwrite and any(p.resolve() not in own for p in root.iterdir()):
        raise OutputExistsError(f"{root}: folder exists and is not empty; pass --overwrite")
    chips_dir = root / "chips"
    chips_dir.mkdir(parents=True, exist_ok=True)
    info = {"before": scene_info(run.before), "after": scene_info(run.after)}
    chips = _write_chips(run, detections, chips_dir, info, overwrite=overwrite)
    overview = root / "overview.png"
    _write_png(render_overview(run, detections), overview, overwrite=overwrite)
    meta = run_metadata(run, hash_inputs=False)
    record = {
        "aoi": meta["aoi"],
        "parameters": meta["parameters"],
        "scenes": info,
        "grid": meta["grid"],
        "summary": meta["summary"],
    }
    report = write_report(
        root / "report.html",
        run=run,
        detections=detections,
        chips=chips,
        overview="overview.png",
        record=record,
        overwrite=overwrite,
    )
    outputs = [*others, overview, report]
    outputs += [
        root / p for c in chips for p in (c.before_png, c.after_png, c.before_tif, c.after_tif)
    ]
    manifest = write_manifest(
        root,
        inputs=run.input_sha256,
        outputs=outputs,
        record=record,
        started_utc=run.started_utc,
        overwrite=overwrite,
    )
    return EvidencePacket(root, tuple(chips), overview, report, manifest)
