"""``report.html``: one self-contained, offline page per run.

The page has inline CSS only, no scripts, no web fonts and no URL other than the
relative paths of the packet's own images, so it opens identically from a USB
stick on an air-gapped machine and makes no network request. Sections: overview of
the AOI, table of detections, before/after chips side by side, the method and its
limits in plain words, and provenance.

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

from borderwatch.products.coverage import format_area
from borderwatch.products.export import atomic_write
from borderwatch.products.manifest import host_info, tool_versions

if TYPE_CHECKING:  # evidence imports this module; avoid the cycle at run time
    from borderwatch.engine import DetectionRun
    from borderwatch.products.evidence import Chip

__all__ = ["render_report", "write_report"]

#: The page template, in the package folder ``borderwatch/templates``.
TEMPLATE = "report.html.j2"

#: Columns of the detections table.
_COLUMNS = ("#", "id", "class", "area (m²)", "length (m)", "score", "confidence", "review", "note")


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
    params = dict(record.get("parameters", {}))
    params.pop("detect_params", None)
    p = run.change.params
    versions = tool_versions()
    template = _environment().get_template(TEMPLATE)
    return template.render(
        aoi=run.aoi.name if run.aoi is not None else "input overlap",
        dates={role: scenes.get(role, {}).get("date") for role in ("before", "after")},
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        versions=versions,
        total=float(detections["area_m2"].sum()) if len(detections) else 0.0,
        overview=overview,
        columns=_COLUMNS,
        detections=detections.drop(columns=detections.geometry.name).to_dict(orient="records"),
        chips=chips,
        numbers={str(i): n for n, i in enumerate(detections["id"], start=1)},
        res=run.grid.res[0],
        crs=run.grid.crs.to_string(),
        method=str(run.change.method),
        threshold=run.change.threshold,
        rule=str(p.get("threshold", "")),
        min_area=str(p.get("min_area_m2", "")),
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
