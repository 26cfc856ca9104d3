"""Evidence packets: dated before/after chips of every detection, a report and a manifest.

For each detection :func:`write_evidence` cuts a chip around the polygon from both
dates and writes

* ``chips/<id>_before.png`` and ``chips/<id>_after.png``: true colour, stretched
  with the *same* per-band limits for both dates (2nd--98th percentile of the
  pooled valid pixels of the two chips), so a brightness difference in the PNGs is
  a difference in the data; the polygon outlined, a scale bar, a north arrow, the
  date and image source, and the centroid (latitude and longitude in EPSG:4326, MGRS,
  marked with a cross) printed on the image; for synthetic imagery a red banner;
* ``chips/<id>_before.tif`` and ``chips/<id>_after.tif``: the chip's analysis-grid
  values (all bands, float32, NaN = no data) as small GeoTIFFs in the grid CRS;

then an ``overview.png`` of the whole AOI (:mod:`borderwatch.products.overview`),
``report.html`` (:mod:`borderwatch.products.report`),
``manifest.json`` (:mod:`borderwatch.products.manifest`) hashing everything, with
its signature ``manifest.json.sig`` (:mod:`borderwatch.products.signing`), and the
custody log ``custody.jsonl`` (:mod:`borderwatch.products.custody`). The packet is built
in a temporary folder beside its destination and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.windows
import shapely
from affine import Affine
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageDraw, PngImagePlugin

from borderwatch.engine import DetectionRun, run_metadata
from borderwatch.errors import InputError
from borderwatch.io import Grid
from borderwatch.products.cartography import (
    SYNTHETIC_BANNER,
    MapImage,
    add_banner,
    draw_north_arrow,
    draw_scale_bar,
    fit_text,
    font,
    format_lonlat,
    rings,
    wrap_text,
)
from borderwatch.products.coverage import aoi_geometry
from borderwatch.products.custody import append_entry, custody_declaration, prior_entries
from borderwatch.products.export import (
    atomic_folder,
    atomic_write,
    lies_in,
    sha256_file,
    write_float_raster,
)
from borderwatch.products.manifest import MANIFEST_NAME, write_manifest
from borderwatch.products.overview import draw_overview
from borderwatch.products.redact import redact_record
from borderwatch.products.report import write_report
from borderwatch.products.schema import where
from borderwatch.products.signing import fingerprint, sign_file, warn_if_signature_dropped
from borderwatch.products.summary import detection_figures
from borderwatch.products.timestamp import write_timestamp_request

__all__ = [
    "Chip",
    "EvidencePacket",
    "chip_window",
    "render_chip",
    "render_overview",
    "scene_info",
    "stretch_limits",
    "true_colour_bands",
    "moved_packet",
    "packet_stage",
    "write_evidence",
    "write_packet",
]

_RGB_NAMES = (("red", "b04", "b4"), ("green", "b03", "b3"), ("blue", "b02", "b2"))
_OUTLINE = (255, 255, 0)
_CHIP_PX = 320  # target size of the longer chip side in the PNG, pixels
_CHIP_MIN_W = 240  # narrowest chip PNG, pixels, so the coordinate lines fit


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
    """A written evidence packet.

    ``manifest_sha256`` is the hex SHA-256 of ``manifest.json`` (to record elsewhere);
    ``signature`` is ``manifest.json.sig`` and ``signed_by`` the key's fingerprint when
    the packet was signed.
    """

    folder: Path
    chips: tuple[Chip, ...]
    overview: Path
    report: Path
    manifest: Path
    manifest_sha256: str = ""
    custody: Path | None = None
    signature: Path | None = None
    signed_by: str | None = None


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


def render_chip(
    rgb: np.ndarray,
    *,
    outline_px: Sequence[np.ndarray],
    pixel_m: float,
    title: str,
    source: str,
    notes: Sequence[str] = (),
    marker_px: tuple[float, float] | None = None,
    banner: str | None = None,
) -> MapImage:
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
        Printed above the image (date) and below it (image source, wrapped onto as
        many lines as it needs: never cut).
    notes : sequence of str
        Further lines printed below the source, e.g. the centroid's coordinates.
    marker_px : tuple of float, optional
        ``(col, row)`` in the chip where a small cross marks the point the notes give.
    banner : str, optional
        Text of a red banner across the top (synthetic imagery).

    Returns
    -------
    MapImage
        RGB image, about 320 pixels on its longer image side (at least 240 wide) plus
        caption bands; ``to_px`` maps chip pixel ``(col, row)`` to image pixels.
    """
    _, rows, cols = rgb.shape
    k = max(1, _CHIP_PX // max(rows, cols))
    img = Image.fromarray(np.moveaxis(rgb, 0, -1), "RGB")
    img = img.resize((cols * k, rows * k), Image.Resampling.NEAREST)
    w, h = img.size
    width = max(w, _CHIP_MIN_W)
    ox = (width - w) // 2
    small = font(12)
    probe = ImageDraw.Draw(img)
    lines = [
        *wrap_text(probe, source, small, width - 8),  # a credit is never cut
        *(fit_text(probe, n, small, width - 8) for n in notes),
    ]
    head, foot = 26, 6 + 16 * len(lines)
    canvas = Image.new("RGB", (width, h + head + foot), (255, 255, 255))
    canvas.paste(img, (ox, head))
    to_px = Affine.translation(ox, head) * Affine.scale(k)
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 4), title, fill=(0, 0, 0), font=font(16))
    for i, line in enumerate(lines):
        draw.text((4, head + h + 4 + 16 * i), line, fill=(60, 60, 60), font=small)
    for ring in outline_px:
        draw.line([to_px * (float(x), float(y)) for x, y in ring], fill=_OUTLINE, width=2)
    if marker_px is not None:
        mx, my = to_px * marker_px
        for width_px, colour in ((4, (0, 0, 0)), (2, _OUTLINE)):
            draw.line([(mx - 7, my), (mx + 7, my)], fill=colour, width=width_px)
            draw.line([(mx, my - 7), (mx, my + 7)], fill=colour, width=width_px)
    texts = [title, *lines]
    # Scale bar bottom left, north arrow (the analysis grid is north up) top right.
    texts.append(
        draw_scale_bar(draw, x0=ox + 8, y0=head + h - 14, m_per_px=pixel_m / k, width_px=w)
    )
    texts.append(draw_north_arrow(draw, x=ox + w - 18, y=head + 8))
    if banner:
        canvas, drawn = add_banner(canvas, banner)
        to_px = Affine.translation(0, canvas.height - h - head - foot) * to_px
        texts.insert(0, drawn)
    return MapImage(canvas, tuple(texts), (to_px,))


def _write_png(rendered: MapImage, path: Path, *, overwrite: bool) -> None:
    # The drawn texts also go in as a PNG text chunk, so they can be read without OCR.
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Description", "\n".join(rendered.texts))
    with atomic_write(path, overwrite=overwrite) as tmp:
        rendered.image.save(tmp, format="PNG", pnginfo=info)


def _where_lines(lat: float, lon: float, mgrs: str) -> list[str]:
    """Chip caption lines of a detection's centroid: lat/lon (EPSG:4326) and MGRS."""
    if not (np.isfinite(lat) and np.isfinite(lon)):
        return ["centroid: no coordinate"]
    m = re.fullmatch(r"(\d{1,2}[C-X])([A-Z]{2})(\d*)", mgrs)
    if m and len(m.group(3)) % 2 == 0:
        half = len(m.group(3)) // 2
        mgrs = f"{m.group(1)} {m.group(2)} {m.group(3)[:half]} {m.group(3)[half:]}"
    return [f"+ centroid {format_lonlat(lat, lon)}", f"MGRS {mgrs}"]


def _chip_tags(meta: dict[str, Any], *, lat: float, lon: float) -> dict[str, str]:
    """GeoTIFF tags of a chip: its date, credit, scene id, centre and SYNTHETIC mark.

    ``meta`` is :func:`scene_info` of the chip's date; ``lat``/``lon`` the chip's
    centre in degrees (EPSG:4326). A chip of generated imagery keeps ``SYNTHETIC=yes``,
    so no copy of it can pass for a real scene.
    """
    tags = {
        "ACQUISITION_DATE": meta["date"],
        "CREDIT": meta["credit"],
        "SCENE_ID": meta["scene_id"],
        "CENTRE_LAT": f"{lat:.6f}",
        "CENTRE_LON": f"{lon:.6f}",
        "SYNTHETIC": "yes" if meta.get("synthetic") else None,
    }
    return {k: v for k, v in tags.items() if v}


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
    centres = where(detections.geometry)
    for det_id, geom, (_, at) in zip(
        detections["id"].astype(str), detections.geometry.values, centres.iterrows(), strict=True
    ):
        win = chip_window(geom, run.grid)
        sub = run.grid.window_grid(win)
        pixels = run.read_window(win)
        cut = {"before": pixels[0], "after": pixels[1]}
        rgb = {role: a[list(bands)] for role, a in cut.items()}
        limits = stretch_limits(rgb["before"], rgb["after"])
        to_chip = ~sub.transform
        outline = rings(geom, to_chip)
        centroid = geom.centroid
        left, bottom, right, top = sub.bounds
        centre = where(
            gpd.GeoSeries([shapely.Point((left + right) / 2, (bottom + top) / 2)], crs=sub.crs)
        ).iloc[0]
        names = {}
        for role in ("before", "after"):
            meta = info[role]
            img = render_chip(
                _to_uint8(rgb[role], limits),
                outline_px=[np.asarray(r) for r in outline],
                pixel_m=sub.res[0],
                title=f"{role.upper()}  {meta['date'] or 'date unknown'}",
                source=f"source: {meta['credit']}",
                notes=_where_lines(at["lat"], at["lon"], at["mgrs"]),
                marker_px=to_chip * (centroid.x, centroid.y),
                banner=SYNTHETIC_BANNER if meta.get("synthetic") else None,
            )
            png = chips_dir / f"{det_id}_{role}.png"
            tif = chips_dir / f"{det_id}_{role}.tif"
            _write_png(img, png, overwrite=overwrite)
            write_float_raster(
                tif,
                cut[role],
                sub,
                band_names=getattr(run, role).source.band_names,
                tags=_chip_tags(meta, lat=centre["lat"], lon=centre["lon"]),
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
    run: DetectionRun,
    detections: gpd.GeoDataFrame,
    *,
    info: dict[str, dict[str, Any]] | None = None,
    max_px: int = 800,
) -> MapImage:
    """Draw the packet's overview map: the whole AOI, the after image, numbered detections.

    See :func:`borderwatch.products.overview.draw_overview`; the image is the run's
    preview of the after date (no second read of the inputs).

    Parameters
    ----------
    run : DetectionRun
        A finished run.
    detections : geopandas.GeoDataFrame
        Detections in the grid CRS, in report order.
    info : dict, optional
        :func:`scene_info` of ``before`` and ``after`` (default: read from the files):
        the after image's date and credit are printed, and a banner when either date
        is synthetic.
    max_px : int
        Longer side of the map panel, pixels.

    Returns
    -------
    MapImage
    """
    info = info or {"before": scene_info(run.before), "after": scene_info(run.after)}
    after = info["after"]
    bands = list(true_colour_bands(run.after.source.band_names))
    data, _ = run.overview()
    valid, vgrid, _ = run.footprint("after")
    small = data[bands]
    where_name = run.aoi.name if run.aoi is not None else "input overlap"
    return draw_overview(
        _to_uint8(small, stretch_limits(small)),
        valid & np.isfinite(small).all(axis=0),
        vgrid.transform,
        crs=run.grid.crs,
        aoi=aoi_geometry(run),
        detections=list(detections.geometry.values),
        title=f"AFTER  {after['date'] or 'date unknown'}  ·  {where_name}",
        credit=f"{after['credit']} (after image)",
        banner=SYNTHETIC_BANNER if any(i.get("synthetic") for i in info.values()) else None,
        max_px=max_px,
    )


def write_evidence(
    run: DetectionRun,
    folder: str | os.PathLike[str],
    *,
    detections: gpd.GeoDataFrame,
    other_outputs: Iterable[str | os.PathLike[str]] = (),
    overwrite: bool = False,
    sign_key: Ed25519PrivateKey | None = None,
    redact: bool = False,
    command: str = "borderwatch",
) -> EvidencePacket:
    """Write the evidence packet of a run into ``folder``, all or nothing.

    The packet is built in a temporary folder beside ``folder``
    (:func:`borderwatch.products.export.atomic_folder`) and renamed to ``folder``
    once complete; an existing ``folder`` is replaced only then.

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
        Further files of the run (GeoPackage, GeoJSON) outside ``folder`` to hash into
        the manifest (:func:`borderwatch.products.write.write_products` puts layers
        inside the packet).
    overwrite : bool
        Replace an existing packet.
    sign_key : Ed25519PrivateKey, optional
        Sign the manifest (``manifest.json.sig``, :mod:`borderwatch.products.signing`).
    redact : bool
        No host name, user name or absolute path in the manifest, custody log and report.
    command : str
        What ran, for the custody log (e.g. ``"borderwatch detect"``).

    Returns
    -------
    EvidencePacket
        Paths in ``folder``.

    Raises
    ------
    InputError
        One of ``other_outputs`` lies in ``folder``.
    OutputExistsError
        ``folder`` holds files and ``overwrite`` is False.
    OutputWriteError
        The packet could not be written (nothing is left behind).
    """
    root = Path(folder)
    others = [Path(p) for p in other_outputs]
    inside = [p for p in others if lies_in(p, root)]
    if inside:  # the packet replaces the folder: they would be lost
        raise InputError(
            f"{inside[0]}: lies in the packet folder {root}; write it with write_products"
        )
    with packet_stage(root, overwrite=overwrite, redact=redact, sign_key=sign_key) as (
        stage,
        prior,
    ):
        packet = write_packet(
            run,
            stage,
            detections=detections,
            other_outputs=others,
            sign_key=sign_key,
            redact=redact,
            command=command,
            prior_custody=prior,
        )
    return moved_packet(packet, root)


@contextlib.contextmanager
def packet_stage(
    root: Path, *, overwrite: bool, redact: bool, sign_key: Ed25519PrivateKey | None
) -> Iterator[tuple[Path, list[bytes]]]:
    """Build a packet for ``root`` in a temporary folder beside it, renamed in at the end.

    Yields the temporary folder and the custody log lines an ``overwrite`` carries
    forward from the packet it replaces (warning if that one was signed and this
    one will not be); see :func:`borderwatch.products.export.atomic_folder`.
    """
    prior = prior_entries(root, redact=redact) if overwrite else []
    if overwrite:
        warn_if_signature_dropped(root / MANIFEST_NAME, sign_key=sign_key)
    with atomic_folder(root, overwrite=overwrite) as stage:
        yield stage, prior


def moved_packet(packet: EvidencePacket, folder: Path) -> EvidencePacket:
    """``packet`` with its paths in ``folder`` (where its temporary folder was renamed)."""

    def move(p: Path) -> Path:
        return folder / p.relative_to(packet.folder)

    return dataclasses.replace(
        packet,
        folder=folder,
        overview=move(packet.overview),
        report=move(packet.report),
        manifest=move(packet.manifest),
        custody=move(packet.custody) if packet.custody is not None else None,
        signature=move(packet.signature) if packet.signature is not None else None,
    )


def seal_packet(
    root: Path,
    *,
    inputs: Mapping[str, str],
    outputs: Sequence[Path],
    record: Mapping[str, Any],
    started_utc: str,
    sign_key: Ed25519PrivateKey | None,
    redact: bool,
    command: str,
    prior_custody: Sequence[bytes] = (),
) -> tuple[Path, str, Path, Path | None, str | None]:
    """Write a packet's manifest, signature, time-stamp request and custody entry.

    Returns
    -------
    tuple
        ``(manifest, manifest SHA-256, custody log, signature or None, signer or None)``.
    """
    declaration = custody_declaration(command=command, redact=redact, prior=prior_custody)
    manifest = write_manifest(
        root,
        inputs=inputs,
        outputs=outputs,
        record=record,
        started_utc=started_utc,
        redact=redact,
        custody=declaration,
    )
    digest = sha256_file(manifest)
    signature = sign_file(manifest, sign_key) if sign_key is not None else None
    write_timestamp_request(manifest, sha256_hex=digest)
    custody = append_entry(root, declaration, manifest_sha256=digest, prior=prior_custody)
    signed_by = fingerprint(sign_key.public_key()) if sign_key is not None else None
    return manifest, digest, custody, signature, signed_by


def write_packet(
    run: DetectionRun,
    root: Path,
    *,
    detections: gpd.GeoDataFrame,
    other_outputs: Iterable[str | os.PathLike[str]] = (),
    sign_key: Ed25519PrivateKey | None = None,
    redact: bool = False,
    command: str = "borderwatch",
    prior_custody: Sequence[bytes] = (),
) -> EvidencePacket:
    """Write the packet's files into the new, empty folder ``root`` (see :func:`write_evidence`).

    Order: chips, overview, report, manifest (declaring the custody entry), signature,
    RFC 3161 time-stamp request (:mod:`borderwatch.products.timestamp`), custody log
    (``prior_custody`` lines of the packet replaced, then this run's entry naming the
    manifest's SHA-256).
    """
    if detections.crs is None or not detections.crs.equals(run.grid.crs):
        raise InputError("detections must be in the run's grid CRS for chips")
    others = [Path(p) for p in other_outputs]
    chips_dir = root / "chips"
    chips_dir.mkdir(parents=True, exist_ok=True)
    info = {"before": scene_info(run.before), "after": scene_info(run.after)}
    chips = _write_chips(run, detections, chips_dir, info, overwrite=False)
    overview = root / "overview.png"
    _write_png(render_overview(run, detections, info=info), overview, overwrite=False)
    meta = run_metadata(run, hash_inputs=False)
    record: dict[str, Any] = {
        "aoi": meta["aoi"],
        "parameters": meta["parameters"],
        "scenes": info,
        "grid": meta["grid"],
        "summary": detection_figures(detections),  # the reviewed table, not the engine count
        "coverage": meta["coverage"],
    }
    if redact:
        record = redact_record(record)
    report = write_report(
        root / "report.html",
        run=run,
        detections=detections,
        chips=chips,
        overview="overview.png",
        record=record,
        redact=redact,
    )
    outputs = [*others, overview, report]
    outputs += [
        root / p for c in chips for p in (c.before_png, c.after_png, c.before_tif, c.after_tif)
    ]
    manifest, digest, custody, signature, signed_by = seal_packet(
        root,
        inputs=run.input_sha256,
        outputs=outputs,
        record=record,
        started_utc=run.started_utc,
        sign_key=sign_key,
        redact=redact,
        command=command,
        prior_custody=prior_custody,
    )
    return EvidencePacket(
        root, tuple(chips), overview, report, manifest, digest, custody, signature, signed_by
    )
