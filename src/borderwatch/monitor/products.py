"""Products of a monitoring run: layers, GeoPackage/GeoJSON, report and evidence packet.

Layers (grid CRS in the GeoPackage, EPSG:4326 in GeoJSON):

- ``structures``: one polygon per structure, the analyst columns of ``detect`` and the
  bracket columns (:data:`borderwatch.monitor.track.BRACKET_COLUMNS`);
- ``observations``: one row per structure and date (``id, date, scene, state,
  clear_share, score``) on the structure's polygon, so QGIS can filter a date;
- ``coverage``: the ledger, one row per date and the ``total`` row, on the region.

A GeoJSON output holds the structures as features; the observations and the ledger go
into its ``borderwatch`` metadata member. The evidence packet holds each structure's
image strip (one chip per date, from the staged copies: no input is read again), the
report (``report.html``), and the signed manifest with every input's SHA-256, the dates
and the mask used per date.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from borderwatch import __version__
from borderwatch.aoi import aoi_caveat
from borderwatch.engine.plan import resolve_cleanup
from borderwatch.monitor.ledger import ledger_lines
from borderwatch.monitor.run import MonitorRun
from borderwatch.monitor.track import (
    BUFFER_PX,
    CLEAR_FLOOR,
    LINK_OVERLAP,
    PRESENT_SHARE,
    bracket_words,
)
from borderwatch.objects.classify import MAX_CLASS_PIXEL_M
from borderwatch.products.evidence import _to_uint8 as to_uint8
from borderwatch.products.evidence import (
    _write_png,
    chip_window,
    packet_stage,
    render_chip,
    seal_packet,
    stretch_limits,
    true_colour_bands,
)
from borderwatch.products.export import atomic_write, write_geojson
from borderwatch.products.gpkg import write_gpkg
from borderwatch.products.redact import redact_record
from borderwatch.products.report import _environment
from borderwatch.products.styles import detections_qml, ledger_qml, observations_qml

__all__ = [
    "MonitorPacket",
    "monitor_layers",
    "monitor_metadata",
    "summary_lines",
    "write_monitor_products",
]

_GEOJSON = (".geojson", ".json")
_STRIP_PX = 40  # smallest chip side, grid pixels


@dataclasses.dataclass(frozen=True)
class MonitorPacket:
    """A written monitoring evidence packet (paths in its folder)."""

    folder: Path
    report: Path
    manifest: Path
    manifest_sha256: str
    signature: Path | None
    signed_by: str | None
    chips: tuple[Path, ...]


def monitor_layers(run: MonitorRun) -> dict[str, gpd.GeoDataFrame]:
    """Return the GeoPackage layers ``structures``, ``observations``, ``coverage`` (grid CRS)."""
    s = run.structures
    geoms = dict(zip(s["id"], s.geometry.values, strict=True))
    obs = gpd.GeoDataFrame(
        run.observations.copy(),
        geometry=[geoms[i] for i in run.observations["id"]],
        crs=run.grid.crs,
    )
    cov = gpd.GeoDataFrame(
        run.ledger.copy(), geometry=[run.region] * len(run.ledger), crs=run.grid.crs
    )
    return {"structures": s, "observations": obs, "coverage": cov}


def _dates(run: MonitorRun, *, hashes: bool = True) -> list[dict[str, Any]]:
    out = []
    for rec in run.dates:
        meta = rec.source.imagery.record()
        out.append(
            {
                "date": rec.date,
                "scene": rec.scene,
                **{k: meta[k] for k in ("date_source", "credit", "credit_source", "synthetic")},
                "mask": {"kind": rec.mask_kind, "files": [Path(p).name for p in rec.mask_paths]},
                "files": [
                    {
                        "path": str(Path(p).resolve()) if "://" not in p else p,
                        "name": Path(p).name,
                        "sha256": run.input_sha256.get(p) if hashes else None,
                    }
                    for p in rec.source.paths
                ],
                "threshold": rec.threshold,
                "detections": rec.detections,
                "note": rec.note,
            }
        )
    return out


def monitor_metadata(run: MonitorRun) -> dict[str, Any]:
    """Provenance of a monitoring run (JSON-serialisable): dates, masks, rules, ledger."""
    import rasterio

    aoi = run.aoi
    return {
        "tool": "borderwatch",
        "command": "monitor",
        "version": __version__,
        "started_utc": run.started_utc,
        "aoi": None
        if aoi is None
        else {
            "id": aoi.id,
            "name": aoi.name,
            "source": aoi.source,
            **dict(zip(("confidence", "caveat"), aoi_caveat(aoi), strict=True)),
        },
        "parameters": {
            "detect_params": dataclasses.asdict(resolve_cleanup(run.params, run.grid.res[0])),
            "engine": run.engine_params,
            "resolution_m": run.grid.res[0],
            "crs": str(run.grid.crs),
            "rules": {
                "link_overlap": LINK_OVERLAP,
                "buffer_px": BUFFER_PX,
                "clear_floor": CLEAR_FLOOR,
                "present_share": PRESENT_SHARE,
            },
        },
        "grid": {
            "crs": str(run.grid.crs),
            "transform": list(run.grid.transform)[:6],
            "shape": list(run.grid.shape),
        },
        "dates": _dates(run),
        "synthetic": any(r.source.imagery.synthetic for r in run.dates),
        "summary": {
            "structures": len(run.structures),
            **{f"status_{k}": int(v) for k, v in run.structures["status"].value_counts().items()},
        },
        "coverage": _records(run.ledger),
        "corridor": run.corridor,
        "versions": {
            "borderwatch": __version__,
            "numpy": np.__version__,
            "rasterio": rasterio.__version__,
            "gdal": rasterio.__gdal_version__,
            "python": platform.python_version(),
        },
    }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.to_dict("records"):
        out.append(
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        )
    return out


def summary_lines(run: MonitorRun) -> list[str]:
    """Summary for the terminal: structures by status, the ledger, a coverage warning."""
    counts = run.structures["status"].value_counts()
    where = run.aoi.id if run.aoi is not None else "stack overlap"
    lines = [
        f"{len(run.structures)} structures in {where} over {len(run.dates)} dates "
        f"({run.dates[0].date} -> {run.dates[-1].date}): "
        + ", ".join(
            f"{int(counts.get(k, 0))} {k}"
            for k in ("new", "transient", "present_throughout", "unconfirmed")
        ),
        "coverage (per date, then total):",
        *ledger_lines(run.ledger),
    ]
    total = run.ledger[run.ledger["date"] == "total"].iloc[0]
    if total["assessed_share"] < 0.9:
        lines.append(
            f"  warning: only {total['assessed_share']:.0%} of the area was assessed on two "
            "or more dates; no structure can be dated elsewhere"
        )
    if run.corridor is not None:
        c = run.corridor
        pixel_m = float(run.grid.res[0])
        fence = (
            f"{c['new_fence_km']:.2f} km of new fence_or_wall"
            if pixel_m <= MAX_CLASS_PIXEL_M
            else f"fences not assessable at {pixel_m:g} m pixels (need {MAX_CLASS_PIXEL_M:g} m)"
        )
        lines.append(
            f"  corridor {c['corridor']}: {c['assessed_km']:.1f} of {c['border_km']:.1f} km "
            f"assessed; {fence}"
        )
    return lines


# --------------------------------------------------------------------------- strips
def _strip(run: MonitorRun, row: Any, folder: Path, synthetic: bool) -> list[dict[str, Any]]:
    """Chips of one structure on every date (PNG), from the staged copies."""
    grid = run.grid
    geom = row.geometry
    win = chip_window(geom, grid, min_px=_STRIP_PX)
    bands = true_colour_bands(run.dates[0].source.band_names)
    rgbs = [run.read_date(k, win)[list(bands)] for k in range(len(run.dates))]
    limits = stretch_limits(*rgbs)
    obs = run.observations[run.observations["id"] == row["id"]].set_index("date")
    sub = grid.window_grid(win)
    inv = ~sub.transform
    rings = [
        np.array([inv * (x, y) for x, y in ring.coords])
        for poly in getattr(geom, "geoms", [geom])
        for ring in (poly.exterior,)
    ]
    out = []
    for k, rec in enumerate(run.dates):
        state = obs.loc[rec.date, "state"]
        name = f"{row['id']}_{rec.date}.png"
        rendered = render_chip(
            to_uint8(rgbs[k], limits),
            outline_px=rings,
            pixel_m=grid.res[0],
            title=f"{rec.date}: {state}",
            source=f"{rec.credit or 'credit unknown'}; scene {rec.scene}",
            banner="SYNTHETIC" if synthetic else None,
        )
        _write_png(rendered, folder / name, overwrite=False)
        out.append({"date": rec.date, "state": state, "png": f"chips/{name}", "scene": rec.scene})
    return out


def _report(
    root: Path, run: MonitorRun, strips: dict[str, list[dict[str, Any]]], record: dict[str, Any]
) -> Path:
    rows = []
    for _, r in run.structures.iterrows():
        rows.append(
            {
                **{k: r[k] for k in run.structures.columns if k != "geometry"},
                "bracket": bracket_words(r, run.observations),
                "strip": strips.get(r["id"], []),
            }
        )
    html = (
        _environment()
        .get_template("monitor.html.j2")
        .render(
            title=run.aoi.name if run.aoi is not None else "stack overlap",
            synthetic=record["synthetic"],
            structures=rows,
            ledger=record["coverage"],
            dates=record["dates"],
            corridor=run.corridor,
            summary=summary_lines(run),
            created=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M"),
            version=__version__,
            rules=record["parameters"]["rules"],
            crs=str(run.grid.crs),
            res=run.grid.res[0],
        )
    )
    path = root / "report.html"
    with atomic_write(path, overwrite=False) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return path


def _packet(
    run: MonitorRun,
    root: Path,
    *,
    others: Sequence[Path],
    sign_key: Ed25519PrivateKey | None,
    redact: bool,
    command: str,
    prior: Sequence[bytes],
) -> MonitorPacket:
    chips_dir = root / "chips"
    chips_dir.mkdir(parents=True, exist_ok=True)
    record = monitor_metadata(run)
    if redact:
        record = redact_record(record)
    strips = {
        r["id"]: _strip(run, r, chips_dir, bool(record["synthetic"]))
        for _, r in run.structures.iterrows()
    }
    report = _report(root, run, strips, record)
    chips = tuple(root / c["png"] for s in strips.values() for c in s)
    manifest, digest, _, signature, signed_by = seal_packet(
        root,
        inputs=run.input_sha256,
        outputs=[*others, report, *chips],
        record=record,
        started_utc=run.started_utc,
        sign_key=sign_key,
        redact=redact,
        command=command,
        prior_custody=prior,
    )
    return MonitorPacket(root, report, manifest, digest, signature, signed_by, chips)


def _write_layers(run: MonitorRun, out: Path, *, overwrite: bool) -> list[Path]:
    if out.suffix.lower() == ".gpkg":
        layers = monitor_layers(run)
        meta = {
            "borderwatch_version": __version__,
            "borderwatch_command": "monitor",
            "borderwatch_started_utc": run.started_utc,
            "borderwatch_dates": ",".join(r.date for r in run.dates),
        }
        styles = {
            "structures": detections_qml(),
            "observations": observations_qml(),
            "coverage": ledger_qml(),
        }
        return [write_gpkg(layers, out, styles=styles, metadata=meta, overwrite=overwrite)]
    record = {**monitor_metadata(run), "observations": _records(run.observations)}
    write_geojson(run.structures, out, metadata=record, overwrite=overwrite)
    qml = out.with_suffix(".qml")
    with atomic_write(qml, overwrite=overwrite) as tmp:
        tmp.write_text(detections_qml(), encoding="utf-8")
    return [out, qml]


def write_monitor_products(
    run: MonitorRun,
    *,
    out: Path | None,
    evidence: Path | None,
    overwrite: bool = False,
    sign_key: Ed25519PrivateKey | None = None,
    redact: bool = False,
    command: str = "borderwatch monitor",
) -> tuple[list[Path], MonitorPacket | None]:
    """Write the layer file and the evidence packet of a monitoring run.

    Each file is written atomically; the packet is built in a temporary folder and
    renamed as a whole (:func:`borderwatch.products.export.atomic_folder`).

    Returns
    -------
    files : list of Path
        Layer files written (GeoPackage, or GeoJSON and its ``.qml``).
    packet : MonitorPacket or None
    """
    files = _write_layers(run, out, overwrite=overwrite) if out is not None else []
    packet = None
    if evidence is not None:
        with packet_stage(evidence, overwrite=overwrite, redact=redact, sign_key=sign_key) as (
            stage,
            prior,
        ):
            staged = _packet(
                run,
                stage,
                others=files,
                sign_key=sign_key,
                redact=redact,
                command=command,
                prior=prior,
            )
        move = lambda p: evidence / p.relative_to(stage)  # noqa: E731
        packet = dataclasses.replace(
            staged,
            folder=evidence,
            report=move(staged.report),
            manifest=move(staged.manifest),
            signature=move(staged.signature) if staged.signature is not None else None,
            chips=tuple(move(c) for c in staged.chips),
        )
    return files, packet
