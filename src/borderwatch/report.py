"""``report.html``: one self-contained, offline page per run.

The page has inline CSS only, no scripts, no web fonts and no URL other than the
relative paths of the packet's own images, so it opens identically from a USB
stick on an air-gapped machine and makes no network request. Sections: overview of
the AOI, table of detections, before/after chips side by side, the method and its
limits in plain words, and provenance.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np

from borderwatch.export import atomic_write
from borderwatch.manifest import host_info, tool_versions

if TYPE_CHECKING:  # evidence imports this module; avoid the cycle at run time
    from borderwatch.engine import DetectionRun
    from borderwatch.evidence import Chip

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;margin:0 auto;
max-width:1100px;padding:16px;color:#111;background:#fff;line-height:1.4}
h1{font-size:1.6em;margin:0 0 4px}
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f1f1f1}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pair{display:flex;flex-wrap:wrap;gap:12px;margin:8px 0 20px}
.pair figure{margin:0}.pair img{border:1px solid #999;max-width:100%}
figcaption{font-size:.85em;color:#444}.muted{color:#555;font-size:.9em}
code{background:#f4f4f4;padding:0 3px;word-break:break-all}
.overview img{max-width:100%;border:1px solid #999}
"""


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        return "" if not np.isfinite(value) else f"{value:,.{digits}f}"
    return escape(str(value))


def _kv_table(rows: Mapping[str, Any]) -> str:
    body = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{_fmt(v, 3)}</td></tr>" for k, v in rows.items()
    )
    return f"<table>{body}</table>"


def _detections_table(detections: gpd.GeoDataFrame) -> str:
    head = ("#", "id", "class", "area (m²)", "length (m)", "score", "confidence", "review", "note")
    rows = []
    records = detections.drop(columns=detections.geometry.name).to_dict(orient="records")
    for i, r in enumerate(records, start=1):
        rows.append(
            "<tr>"
            f'<td class="num">{i}</td><td><a href="#{escape(r["id"])}">{escape(r["id"])}</a></td>'
            f"<td>{_fmt(r['class'])}</td>"
            f'<td class="num">{_fmt(r["area_m2"], 0)}</td>'
            f'<td class="num">{_fmt(r["length_m"], 1)}</td>'
            f'<td class="num">{_fmt(r["score"], 2)}</td>'
            f'<td class="num">{_fmt(r["confidence"], 2)}</td>'
            f"<td>{_fmt(r['review'])}</td><td>{_fmt(r['note'])}</td></tr>"
        )
    if not rows:
        rows.append(f'<tr><td colspan="{len(head)}">No detections.</td></tr>')
    header = "".join(f"<th>{h}</th>" for h in head)
    return f'<table id="detections"><tr>{header}</tr>{"".join(rows)}</table>'


def _chips(chips: Sequence[Chip], detections: gpd.GeoDataFrame, dates: Mapping[str, Any]) -> str:
    out = []
    by_id = {str(i): n for n, i in enumerate(detections["id"], start=1)}
    for chip in chips:
        n = by_id.get(chip.id, "?")
        figs = "".join(
            f'<figure><img src="{escape(png)}" alt="{role} {escape(chip.id)}">'
            f"<figcaption>{role} ({_fmt(dates[role])}) &middot; "
            f"GeoTIFF: <code>{escape(tif)}</code></figcaption></figure>"
            for role, png, tif in (
                ("before", chip.before_png, chip.before_tif),
                ("after", chip.after_png, chip.after_tif),
            )
        )
        out.append(
            f'<h3 id="{escape(chip.id)}">#{n} {escape(chip.id)}</h3><div class="pair">{figs}</div>'
        )
    return "".join(out) or "<p>No detections, so no chips.</p>"


def _method(run: DetectionRun, record: Mapping[str, Any]) -> str:
    p = run.change.params
    res = run.grid.res[0]
    method = escape(str(run.change.method))
    rule = escape(str(p.get("threshold", "")))
    return f"""
<p>Both images were resampled onto one {res:g}&nbsp;m grid in {escape(run.grid.crs.to_string())}
and each band was standardised. The change score of a pixel (method <b>{method}</b>)
measures how much its spectrum differs between the two dates. Pixels scoring above
<b>{run.change.threshold:.3g}</b> (threshold rule: {rule}) were marked as
changed, cleaned with a small morphological opening and closing, grouped into connected objects,
and objects smaller than {escape(str(p.get("min_area_m2", "")))}&nbsp;m² were dropped. Areas are
pixel counts times the pixel area; lengths are the long side of the smallest rotated rectangle
around each object.</p>
<p><b>Limits.</b> A detection is a place where the image changed, not proof of construction.
Season, crops, snow, shadows, haze, cloud, a different sensor or viewing angle, and imperfect
co-registration all change pixels too. Objects smaller than a few pixels, and thin fences or walls
narrower than one pixel, can be missed entirely; edges are uncertain by about one pixel
(&plusmn;{res:g}&nbsp;m). Every detection must be checked by a person against the chips and,
where it matters, against higher-resolution imagery; the <i>review</i> column records that
judgement.</p>"""


def render_report(
    *,
    run: DetectionRun,
    detections: gpd.GeoDataFrame,
    chips: Sequence[Chip],
    overview: str,
    record: Mapping[str, Any],
) -> str:
    """Build the report page as one HTML string (see :func:`write_report`)."""
    scenes = record.get("scenes", {})
    dates = {role: scenes.get(role, {}).get("date") for role in ("before", "after")}
    aoi = run.aoi.name if run.aoi is not None else "input overlap"
    created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    scene_rows = "".join(
        f"<tr><th>{role}</th><td>{_fmt(s.get('date'))}</td>"
        f"<td>{escape(', '.join(s.get('files', [])))}</td>"
        f"<td>{escape(', '.join(s.get('scene_ids', [])) or 'not in metadata')}</td>"
        f"<td>{escape(str(s.get('credit', '')))}</td></tr>"
        for role, s in scenes.items()
    )
    params = dict(record.get("parameters", {}))
    params.pop("detect_params", None)
    total = float(detections["area_m2"].sum()) if len(detections) else 0.0
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>borderwatch report: {escape(aoi)}</title><style>{_CSS}</style></head>
<body>
<h1>New construction: {escape(aoi)}</h1>
<p class="muted">Before {_fmt(dates["before"])} &rarr; after {_fmt(dates["after"])} &middot;
{len(detections)} detections, {total:,.0f} m² in total &middot; report written {created} UTC
by borderwatch {escape(tool_versions()["borderwatch"])}</p>
<h2>Overview</h2>
<figure class="overview"><img src="{escape(overview)}" alt="overview of the area">
<figcaption>After image ({_fmt(dates["after"])}), AOI outline in blue, detections in yellow,
numbered as in the table.</figcaption></figure>
<h2>Detections</h2>{_detections_table(detections)}
<h2>Before and after</h2>
<p class="muted">Each pair uses the same colour stretch for both dates, so a brightness difference
is a difference in the data. The yellow outline is the detected object.</p>
{_chips(chips, detections, dates)}
<h2>Method and limits</h2>{_method(run, record)}
<h2>Provenance</h2>
<table><tr><th>date</th><th>acquired</th><th>files</th><th>scene ids</th>
<th>source / credit</th></tr>
{scene_rows}</table>
<h3>Parameters</h3>{_kv_table(params)}
<h3>Software and host</h3>{_kv_table({**tool_versions(), **host_info()})}
<p>The SHA-256 of every input and output file, this page included, is in
<code>manifest.json</code> in this folder. Check that nothing changed with
<code>borderwatch verify &lt;this folder&gt;</code>.</p>
</body></html>
"""


def write_report(
    path: str | os.PathLike[str],
    *,
    run: DetectionRun,
    detections: gpd.GeoDataFrame,
    chips: Sequence[Chip],
    overview: str,
    record: Mapping[str, Any],
    overwrite: bool = False,
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

    Returns
    -------
    pathlib.Path
    """
    text = render_report(
        run=run, detections=detections, chips=chips, overview=overview, record=record
    )
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
