"""``report.html``: one self-contained, offline page per run.

The page has inline CSS only, no scripts, no web fonts and no URL other than the
relative paths of the packet's own images, so it opens identically from a USB
stick on an air-gapped machine and makes no network request. Sections: a site header
in the convention of published imagery analyses (HRNK/AllSource, HRW: site name, centre
coordinates and MGRS, the AOI's location confidence and its caveat, both dates, the
imagery credits, scene ids and pixel size), overview of the AOI, table of detections
with coordinates, before/after chips side by side, the method and its limits in plain
words, and provenance.

Wording is estimative, as analysts write it: classes read "probable building",
"probable fence or wall", "change of unknown kind" (:data:`CLASS_LABELS`), the title
"Possible new construction: <site>". Rejected detections are left out of every total;
once any detection is reviewed the headline gives the confirmed figures first
(:func:`review_figures`). A report on synthetic imagery (any date tagged
``SYNTHETIC=yes``) says SYNTHETIC in its title and in a banner at the top.

The page is the package template ``borderwatch/templates/report.html.j2``, rendered
by jinja2 with autoescape on: every AOI name, id, note, path and parameter is
HTML-escaped.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import jinja2
import numpy as np
import shapely

from borderwatch.aoi import aoi_caveat, aoi_polygon_lonlat
from borderwatch.products.coverage import format_area
from borderwatch.products.export import atomic_write
from borderwatch.products.manifest import host_info, tool_versions
from borderwatch.products.schema import where
from borderwatch.products.summary import detection_figures

if TYPE_CHECKING:  # evidence imports this module; avoid the cycle at run time
    from borderwatch.engine import DetectionRun
    from borderwatch.products.evidence import Chip

__all__ = ["CLASS_LABELS", "render_report", "review_figures", "site_header", "write_report"]

#: The page template, in the package folder ``borderwatch/templates``.
TEMPLATE = "report.html.j2"

#: Columns of the detections table (``#`` is the detection's ``ref``).
_COLUMNS = (
    "#",
    "id",
    "class",
    "area (m²)",
    "length (m)",
    "lat",
    "lon",
    "MGRS",
    "score",
    "confidence",
    "review",
    "note",
)

#: Estimative names of the object classes, as the report prints them.
CLASS_LABELS = {
    "building": "probable building",
    "fence_or_wall": "probable fence or wall",
    "built_up_change": "built-up change (pixels too coarse to tell what)",
    "other": "change of unknown kind",
}


def review_figures(detections: gpd.GeoDataFrame) -> dict[str, Any]:
    """Give the report's figures (from ``detection_figures``) and its headline.

    Parameters
    ----------
    detections : geopandas.GeoDataFrame
        Analyst schema (``review``, ``area_m2`` in m²).

    Returns
    -------
    dict
        ``count`` (all detections), ``rejected``, ``confirmed``, ``unreviewed``,
        ``kept`` (not rejected), ``kept_m2`` and ``confirmed_m2`` (m²), ``reviewed``
        (any detection has a review other than ``unreviewed``) and ``headline``:
        confirmed figures first once any detection is reviewed, e.g. ``"2 confirmed
        detections, 900 m² (of 8 detections: 1 rejected, 5 unreviewed; 3,058 m²
        excluding rejected)"``, else ``"8 detections, none reviewed; 4,237 m² in
        total, unconfirmed"``.
    """
    f = detection_figures(detections)
    n, confirmed = f["detections"], f["confirmed"]
    reviewed = f["unreviewed"] < n
    kept_m2, confirmed_m2 = f["area_m2_excluding_rejected"], f["confirmed_area_m2"]
    if reviewed:
        headline = (
            f"{confirmed} confirmed detection{'' if confirmed == 1 else 's'}, "
            f"{confirmed_m2:,.0f} m² (of {n} detection{'' if n == 1 else 's'}: "
            f"{f['rejected']} rejected, {f['unreviewed']} unreviewed; "
            f"{kept_m2:,.0f} m² excluding rejected)"
        )
    else:
        headline = (
            f"{n} detection{'' if n == 1 else 's'}, none reviewed; "
            f"{kept_m2:,.0f} m² in total, unconfirmed"
        )
    return {
        "count": n,
        "rejected": f["rejected"],
        "confirmed": confirmed,
        "unreviewed": f["unreviewed"],
        "kept": n - f["rejected"],
        "kept_m2": kept_m2,
        "confirmed_m2": confirmed_m2,
        "reviewed": reviewed,
        "headline": headline,
    }


def site_header(run: Any) -> dict[str, Any]:
    """Site name, centre coordinates and MGRS, and the AOI's confidence and caveat.

    The centre is the centroid of the AOI's search polygon taken in the analysis CRS
    (metres), or of the analysis grid without an AOI, given in EPSG:4326 to 6
    decimals (about 0.1 m) and as a 1 m MGRS reference
    (:func:`borderwatch.products.schema.where`).

    Returns
    -------
    dict
        ``name``, ``lat``, ``lon`` (degrees), ``mgrs``, ``confidence``, ``caveat``.
    """
    if run.aoi is not None:
        shape = gpd.GeoSeries([aoi_polygon_lonlat(run.aoi)], crs="EPSG:4326").to_crs(run.grid.crs)
        confidence, caveat = aoi_caveat(run.aoi)
        name = run.aoi.name
    else:
        shape = gpd.GeoSeries([shapely.box(*run.grid.bounds)], crs=run.grid.crs)
        confidence = "not applicable"
        caveat = "No AOI was given: the site is the overlap of the two images."
        name = "input overlap"
    row = where(shape).iloc[0]
    return {
        "name": name,
        "lat": float(row["lat"]),
        "lon": float(row["lon"]),
        "mgrs": str(row["mgrs"]),
        "confidence": confidence,
        "caveat": caveat,
    }


def _cell(value: Any, digits: int = 1) -> str:
    """Text of a table cell: numbers to ``digits`` decimals, non-finite and None empty.

    Returns plain text; the template escapes it.
    """
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{value:,.{digits}f}"
    return str(value)


@functools.cache
def _environment() -> jinja2.Environment:
    """Build the template environment: package templates, autoescape on, strict names."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("borderwatch", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = _cell
    env.filters["spec"] = format
    env.filters["area"] = functools.partial(format_area, unit="²")
    return env


def render_report(
    *,
    run: DetectionRun,
    detections: gpd.GeoDataFrame,
    chips: Sequence[Chip],
    overview: str,
    record: Mapping[str, Any],
    redact: bool = False,
) -> str:
    """Build the report page as one HTML string (see :func:`write_report`)."""
    scenes = record.get("scenes", {})
    site = site_header(run)
    figures = review_figures(detections)
    synthetic = any(bool(s.get("synthetic")) for s in scenes.values())
    params = dict(record.get("parameters", {}))
    params.pop("detect_params", None)
    p = run.change.params
    versions = tool_versions()
    template = _environment().get_template(TEMPLATE)
    rows = detections.drop(columns=detections.geometry.name).to_dict(orient="records")
    for n, r in enumerate(rows, start=1):
        r.setdefault("ref", n)
        r["label"] = CLASS_LABELS.get(str(r.get("class")), str(r.get("class")))
    return template.render(
        aoi=site["name"],
        site=site,
        synthetic=synthetic,
        figures=figures,
        dates={role: scenes.get(role, {}).get("date") for role in ("before", "after")},
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        versions=versions,
        overview=overview,
        columns=_COLUMNS,
        class_labels=CLASS_LABELS,
        detections=rows,
        chips=chips,
        numbers={str(r["id"]): r["ref"] for r in rows},
        res=run.grid.res[0],
        crs=run.grid.crs.to_string(),
        method=str(run.change.method),
        threshold=run.change.threshold,
        rule=str(p.get("threshold", "")),
        min_area=str(p.get("min_area_m2", "")),
        cleaned=max(int(str(p.get("opening_px") or 0)), int(str(p.get("closing_px") or 0))),
        scenes=scenes,
        coverage=record.get("coverage"),
        params=params,
        host={**versions, **host_info(redact=redact)},
    )


def write_report(
    path: str | os.PathLike[str],
    *,
    run: DetectionRun,
    detections: gpd.GeoDataFrame,
    chips: Sequence[Chip],
    overview: str,
    record: Mapping[str, Any],
    overwrite: bool = False,
    redact: bool = False,
) -> Path:
    """Write ``report.html`` for a run, atomically.

    Parameters
    ----------
    path : path
        Output file, normally ``<packet>/report.html``.
    run : DetectionRun
        The run reported on.
    detections : geopandas.GeoDataFrame
        Detections in the analyst schema.
    chips : sequence of Chip
        Chip files, paths relative to the report's folder.
    overview : str
        Relative path of the overview image.
    record : mapping
        Run description as stored in the manifest (``scenes``, ``parameters``).
    overwrite : bool
        Replace an existing file.
    redact : bool
        Leave the host name out of the "Software and host" table.

    Returns
    -------
    pathlib.Path
    """
    text = render_report(
        run=run, detections=detections, chips=chips, overview=overview, record=record, redact=redact
    )
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
