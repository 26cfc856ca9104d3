"""Dating benchmark of ``borderwatch monitor``: brackets per structure on stacks of dates.

Runs the product (the ``borderwatch monitor`` CLI, in a child process, as an analyst
runs it: ``borderwatch -q monitor --stack STACK.csv --out OUT.gpkg``) and scores its
GeoPackage layers ``structures``, ``observations`` and ``coverage``:

1. Synthetic stacks (``borderwatch.synthetic.make_stack``, ``--seeds``, 12 dates,
   ``--size`` px at 1 m): clouds masked by user masks (the default), the same clouds
   unmasked (for information), and the same stacks with nothing built. Reported: the
   share of planted structures whose bracket contains the true built date (floor
   0.95), the median bracket width against the median of the tightest bracket the
   stack allows (the gap between the two assessable dates around the true date, from
   the truth), structures wrongly ``absent`` on a date where the truth has them
   masked (must be 0), and false ``new`` structures per km2 on the no-construction
   stacks.
2. SpaceNet 7 (``--data``/spacenet7_samples: two places, six monthly Planet mosaics at
   about 4 m, building footprints whose ``Id`` persists across months, so each
   building's first month is known): the share of new buildings found (matched to an
   output structure of status ``new``), the share whose bracket contains the true
   month, and false ``new`` per km2.
3. Speed and memory: a 12-date stack of ``--speed-size`` px (default 2048) against
   reading every file of the stack once (same run, ratio), and peak resident memory
   (``/usr/bin/time``) for 4, 8, 12 and 24 dates of ``--mem-size`` px.

Matching rule (:func:`match`): a true structure is matched by the output structure with
the largest IoU if that IoU is at least 0.3; failing that, by an output structure that
contains the true structure's representative point (a point inside it, on the strip
for a fence ring) or whose representative point lies inside the true structure
(largest overlap first). Several true structures may match one output structure (at
4 m adjacent new buildings merge). A bracket ``[last_absent, first_present]``
contains a true date ``t`` when ``last_absent < t <= first_present`` (a structure never
seen absent has no bracket).

Usage::

    python benchmarks/dating.py [--data ../shared/data] [--seeds 0 1 2 3 4]
        [--product-pythonpath DIR] [--skip-speed] [--out benchmarks/results/dating.md]

Writes ``dating.md`` (tables), ``dating.json`` (every number) and ``dating.csv`` (one
row per true structure and run) beside ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import platform
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "dating.md"
BW = str(Path(sys.executable).with_name("borderwatch"))
MIN_IOU = 0.3
FLOOR_CONTAINS = 0.95
DATED = ("new", "transient")  # statuses that carry a bracket of the built date
_SN7_MONTH = re.compile(r"global_monthly_(\d{4})_(\d{2})_mosaic")
_READ_ALL = "import rasterio,sys\nfor p in sys.argv[1:]:\n    rasterio.open(p).read()\n"


# ------------------------------------------------------------------------ matching


def match(
    truth: gpd.GeoDataFrame, found: gpd.GeoDataFrame, *, min_iou: float = MIN_IOU
) -> pd.DataFrame:
    """Match each true structure to an output structure (rule in the module docstring).

    Parameters
    ----------
    truth, found : geopandas.GeoDataFrame
        Polygons with an ``id`` column; ``found`` is reprojected to ``truth``'s CRS.
    min_iou : float, default 0.3
        Least intersection over union for a match by overlap.

    Returns
    -------
    pandas.DataFrame
        One row per true structure: ``truth_id``, ``found_id`` (None when unmatched),
        ``iou`` and ``rule`` (``"iou"``, ``"point"`` or ``""``). Unmatched:
        ``found_id`` missing (None or NaN), ``rule`` "".
    """
    rows = []
    if len(found) and found.crs is not None and truth.crs is not None:
        found = found.to_crs(truth.crs)
    f_geoms = np.asarray(found.geometry.values) if len(found) else np.array([], dtype=object)
    f_points = shapely.point_on_surface(f_geoms) if len(found) else f_geoms
    for tid, g in zip(truth["id"], truth.geometry, strict=True):
        best: tuple[Any, float, str] = (None, 0.0, "")
        if len(found):
            inter = shapely.area(shapely.intersection(f_geoms, g))
            union = shapely.area(shapely.union(f_geoms, g))
            iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
            k = int(np.argmax(iou))
            if iou[k] >= min_iou:
                best = (found["id"].iloc[k], float(iou[k]), "iou")
            else:
                inside = shapely.contains(f_geoms, shapely.point_on_surface(g)) | shapely.contains(
                    g, f_points
                )
                if inside.any():
                    k = int(np.flatnonzero(inside)[np.argmax(inter[inside])])
                    best = (found["id"].iloc[k], float(iou[k]), "point")
        rows.append({"truth_id": tid, "found_id": best[0], "iou": best[1], "rule": best[2]})
    return pd.DataFrame(rows, columns=["truth_id", "found_id", "iou", "rule"])


# ------------------------------------------------------------------------ brackets


def _iso(value: Any) -> str | None:
    """An ISO date string, or None for a missing value (None, NaN, NaT, "")."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    text = str(value)[:10]
    return text or None


def bracket_contains(last_absent: Any, first_present: Any, true_date: str) -> bool:
    """Whether ``last_absent < true_date <= first_present`` (ISO dates; None: False)."""
    lo, hi = _iso(last_absent), _iso(first_present)
    return lo is not None and hi is not None and lo < true_date <= hi


def days(a: Any, b: Any) -> float:
    """Days from ISO date ``a`` to ``b`` (NaN when either is missing)."""
    lo, hi = _iso(a), _iso(b)
    if lo is None or hi is None:
        return math.nan
    return float((dt.date.fromisoformat(hi) - dt.date.fromisoformat(lo)).days)


def wrongly_absent(
    matches: pd.DataFrame, observations: pd.DataFrame, hidden: dict[Any, set[str]]
) -> int:
    """Count (structure, date) observations ``absent`` on a date the truth has hidden.

    Parameters
    ----------
    matches : pandas.DataFrame
        From :func:`match`.
    observations : pandas.DataFrame
        The product's ``observations`` layer (``id, date, state``).
    hidden : dict
        Per true structure id, the ISO dates on which it is masked (or without data).

    Returns
    -------
    int
        Observations of matched output structures that say ``absent`` there.
    """
    obs = observations.assign(date=observations["date"].map(_iso))
    n = 0
    for tid, fid in zip(matches["truth_id"], matches["found_id"], strict=True):
        if pd.isna(fid) or not hidden.get(tid):
            continue
        rows = obs[(obs["id"] == fid) & obs["date"].isin(hidden[tid])]
        n += int((rows["state"] == "absent").sum())
    return n


def false_new(
    structures: pd.DataFrame, matches: pd.DataFrame, *, area_km2: float
) -> tuple[int, float]:
    """Output structures of status ``new`` that match no true new structure.

    Returns
    -------
    count : int
    per_km2 : float
        ``count / area_km2``.
    """
    matched = set(matches["found_id"].dropna())
    new = structures[structures["status"] == "new"]
    count = int((~new["id"].isin(matched)).sum())
    return count, count / area_km2


def score_dating(
    truth: pd.DataFrame, structures: pd.DataFrame, matches: pd.DataFrame
) -> pd.DataFrame:
    """Join each true structure to its match's status and bracket.

    Parameters
    ----------
    truth : pandas.DataFrame
        ``id``, ``built`` (ISO true date) and optionally ``tight_lo``/``tight_hi`` (the
        tightest bracket the stack allows).
    structures : pandas.DataFrame
        The product's ``structures`` layer.
    matches : pandas.DataFrame
        From :func:`match`.

    Returns
    -------
    pandas.DataFrame
        Per true structure: ``id, built, found_id, status, last_absent, first_present,
        contains, width_days, tight_days, tight`` (``tight``: the bracket contains the
        true date and is as narrow as the tightest one).
    """
    out = truth.merge(matches, left_on="id", right_on="truth_id", how="left")
    by_id = structures.set_index("id")
    rows = []
    for r in out.itertuples(index=False):
        fid = r.found_id
        s = by_id.loc[fid] if not pd.isna(fid) and fid in by_id.index else None
        status = s["status"] if s is not None else "missed"
        lo = s["last_absent"] if s is not None else None
        hi = s["first_present"] if s is not None else None
        dated = status in DATED
        tlo, thi = getattr(r, "tight_lo", None), getattr(r, "tight_hi", None)
        width = days(lo, hi) if dated else math.nan
        tight = days(tlo, thi)
        rows.append(
            {
                "id": r.id,
                "built": r.built,
                "found_id": fid,
                "status": status,
                "last_absent": _iso(lo),
                "first_present": _iso(hi),
                "contains": bool(dated and bracket_contains(lo, hi, r.built)),
                "width_days": width,
                "tight_days": tight,
                "tight": bool(dated and bracket_contains(lo, hi, r.built) and width == tight),
            }
        )
    return pd.DataFrame(rows)


def early_late(scored: pd.DataFrame) -> dict[str, int]:
    """Count the dated structures whose bracket is wholly before or after the true date."""
    dated = scored[scored["status"].isin(DATED)]
    hi = dated["first_present"].fillna("")
    lo = dated["last_absent"].fillna("")
    return {
        "early": int(((hi != "") & (hi < dated["built"])).sum()),
        "late": int(((lo != "") & (lo >= dated["built"])).sum()),
    }


def summarise(scored: pd.DataFrame) -> dict[str, Any]:
    """Shares and medians of :func:`score_dating` rows."""
    n = len(scored)
    dated = scored[~scored["width_days"].isna()]
    return {
        "n": n,
        "found": int(scored["status"].isin(DATED).sum()),
        "contains": int(scored["contains"].sum()),
        "contains_share": float(scored["contains"].mean()) if n else math.nan,
        "median_width_days": float(dated["width_days"].median()) if len(dated) else math.nan,
        "median_tight_days": float(scored["tight_days"].median()) if n else math.nan,
        "tight_share": float(scored["tight"].mean()) if n else math.nan,
    }


# ------------------------------------------------------------------------ the product


def timed(cmd: list[str], *, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd`` under /usr/bin/time; (wall s, peak RSS MiB, status), as throughput.py."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    from throughput import timed as _timed

    return _timed(cmd, env=env)


def run_monitor(stack_csv: Path, out: Path, *, env: dict[str, str]) -> tuple[float, float, str]:
    """``borderwatch -q monitor --stack STACK.csv --out OUT.gpkg``, timed."""
    return timed([BW, "-q", "monitor", "--stack", str(stack_csv), "--out", str(out)], env=env)


def read_layers(gpkg: Path) -> tuple[gpd.GeoDataFrame, pd.DataFrame, pd.DataFrame]:
    """The ``structures``, ``observations`` and ``coverage`` layers of a monitor output."""
    structures = gpd.read_file(gpkg, layer="structures", engine="pyogrio")
    observations = pd.DataFrame(gpd.read_file(gpkg, layer="observations", engine="pyogrio"))
    coverage = pd.DataFrame(gpd.read_file(gpkg, layer="coverage", engine="pyogrio"))
    return structures, observations, coverage


def region_km2(coverage: pd.DataFrame, fallback_km2: float) -> float:
    """The assessed region's area from the coverage ledger (its ``total`` row), km2."""
    if "region_m2" in coverage.columns and len(coverage):
        total = coverage[coverage["date"].astype(str) == "total"]
        row = total if len(total) else coverage
        return float(row["region_m2"].iloc[0]) / 1e6
    return fallback_km2


# ------------------------------------------------------------------------ synthetic


def synthetic_truth(truth: Any) -> tuple[pd.DataFrame, dict[Any, set[str]], dict[Any, set[str]]]:
    """True dates, tightest brackets and hidden dates of a ``StackTruth``."""
    rows = []
    masked: dict[Any, set[str]] = {}
    nodata: dict[Any, set[str]] = {}
    from borderwatch.errors import BorderwatchError

    for sid, built in zip(truth.structures["id"], truth.structures["built"], strict=True):
        try:
            lo, hi = truth.tightest_bracket(int(sid))
        except BorderwatchError:  # never assessable from its built date on
            lo = hi = None
        rows.append({"id": sid, "built": built, "tight_lo": lo, "tight_hi": hi})
        for d in truth.dates:
            if d.masked_share.get(int(sid), 0.0) >= 0.5:
                masked.setdefault(sid, set()).add(d.date)
            if d.nodata_share_by_id.get(int(sid), 0.0) >= 0.5:
                nodata.setdefault(sid, set()).add(d.date)
    return pd.DataFrame(rows), masked, nodata


def run_synthetic(
    seeds: Sequence[int], size: int, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Every seed in the masked, unmasked and no-construction scenarios."""
    from borderwatch.synthetic.stack import make_stack

    scenarios = {
        "masked clouds": {},
        "unmasked clouds": {"mask_clouds": False},
        "no construction": {"construction": False},
    }
    per_row: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    for name, kwargs in scenarios.items():
        scored_all, runs, n_false, area = [], [], 0, 0.0
        absent_masked = absent_nodata = 0
        for seed in seeds:
            folder = work / f"{name.replace(' ', '_')}_{seed}"
            truth = make_stack(folder, seed=seed, size_px=size, **kwargs)
            wall, rss, status = run_monitor(truth.csv_path, folder / "out.gpkg", env=env)
            runs.append({"seed": seed, "wall_s": wall, "rss_mib": rss, "status": status})
            if status != "ok":
                continue
            structures, observations, coverage = read_layers(folder / "out.gpkg")
            km2 = region_km2(coverage, (size * truth.transform.a) ** 2 / 1e6)
            area += km2
            tframe, masked, nodata = synthetic_truth(truth)
            matches = match(truth.structures, structures)
            n_false += false_new(structures, matches, area_km2=km2)[0]
            if len(tframe):
                scored = score_dating(tframe, structures, matches).assign(scenario=name, seed=seed)
                scored_all.append(scored)
                per_row += scored.to_dict("records")
                absent_masked += wrongly_absent(matches, observations, masked)
                absent_nodata += wrongly_absent(matches, observations, nodata)
        summary = summarise(pd.concat(scored_all)) if scored_all else {}
        result[name] = {
            **summary,
            "absent_on_masked": absent_masked,
            "absent_on_nodata": absent_nodata,
            "false_new": n_false,
            "area_km2": area,
            "false_new_per_km2": n_false / area if area else math.nan,
            "runs": runs,
        }
    result["rows"] = per_row
    return result


# ------------------------------------------------------------------------ SpaceNet 7


def sn7_place(place: Path) -> tuple[list[dict[str, str]], gpd.GeoDataFrame]:
    """A SpaceNet 7 place's stack rows and its buildings with their first month.

    Returns
    -------
    rows : list of dict
        ``date`` (first of the month), ``path``, ``credit``, ``scene_id``, ``mask`` ("").
    buildings : geopandas.GeoDataFrame
        One row per ``Id``: ``id``, ``built`` (first month seen, ISO), ``new`` (not in
        the first month) and the footprint of that month, EPSG:3857.
    """
    rows, first = [], {}
    for tif in sorted((place / "images").glob("*.tif")):
        m = _SN7_MONTH.search(tif.name)
        if m is None:
            continue
        date = f"{m.group(1)}-{m.group(2)}-01"
        rows.append(
            {
                "date": date,
                "path": str(tif),
                "credit": "SpaceNet 7 (Planet monthly mosaic), CC BY-SA 4.0",
                "scene_id": tif.stem,
                "mask": "",
            }
        )
        labels = place / "labels_match" / f"{tif.stem}_Buildings.geojson"
        for bid, geom in zip(*_sn7_labels(labels), strict=True):
            first.setdefault(bid, (date, geom))
    start = rows[0]["date"]
    b = gpd.GeoDataFrame(
        {
            "id": list(first),
            "built": [v[0] for v in first.values()],
            "new": [v[0] > start for v in first.values()],
        },
        geometry=[v[1] for v in first.values()],
        crs=3857,
    )
    return rows, b


def _sn7_labels(path: Path) -> tuple[list[int], list[Any]]:
    gdf = gpd.read_file(path, engine="pyogrio")
    if gdf.crs is None:
        gdf = gdf.set_crs(3857)
    gdf = gdf.to_crs(3857)
    return [int(v) for v in gdf["Id"]], list(gdf.geometry)


def run_sn7(data: Path, work: Path, env: dict[str, str]) -> dict[str, Any]:
    """Both SpaceNet 7 places: found, bracket contains the true month, false new."""
    root = data / "spacenet7_samples"
    if not root.is_dir():
        return {"skipped": f"{root} absent"}
    out: dict[str, Any] = {}
    for place in sorted(p for p in root.iterdir() if p.is_dir()):
        rows, buildings = sn7_place(place)
        folder = work / place.name
        folder.mkdir(parents=True)
        stack = folder / "STACK.csv"
        with open(stack, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=["date", "path", "credit", "scene_id", "mask"])
            w.writeheader()
            w.writerows(rows)
        wall, rss, status = run_monitor(stack, folder / "out.gpkg", env=env)
        entry: dict[str, Any] = {"wall_s": wall, "rss_mib": rss, "status": status}
        if status == "ok":
            structures, _, coverage = read_layers(folder / "out.gpkg")
            new = buildings[buildings["new"]].reset_index(drop=True)
            matches = match(new, structures)
            scored = score_dating(pd.DataFrame(new[["id", "built"]]), structures, matches)
            km2 = region_km2(coverage, footprint_km2(rows[0]["path"]))
            n_false, per_km2 = false_new(structures, matches, area_km2=km2)
            entry |= {
                "new_buildings": len(new),
                "found": int((scored["status"] == "new").sum()),
                "found_share": float((scored["status"] == "new").mean()) if len(new) else math.nan,
                "contains": int(scored["contains"].sum()),
                "contains_share": float(scored["contains"].mean()) if len(new) else math.nan,
                **early_late(scored),
                "false_new": n_false,
                "area_km2": km2,
                "false_new_per_km2": per_km2,
            }
        out[place.name] = entry
    return out


def footprint_km2(path: str) -> float:
    """Ground area of a raster's footprint, km2 (in the local UTM zone)."""
    import rasterio
    from rasterio.warp import transform_geom

    from borderwatch.aoi import area_km2

    with rasterio.open(path) as src:
        box = shapely.geometry.mapping(shapely.box(*src.bounds))
        geom = transform_geom(src.crs, "EPSG:4326", box)
    return area_km2(shapely.geometry.shape(geom))


# ------------------------------------------------------------------------ speed


def run_speed(
    speed_size: int, mem_size: int, mem_dates: Sequence[int], work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Monitor vs reading the stack once (12 dates), and peak RSS by number of dates."""
    from borderwatch.synthetic.stack import make_stack

    truth = make_stack(work / "speed", seed=0, size_px=speed_size, dates=12)
    files = [str(d.path) for d in truth.dates] + [
        str(d.mask_path) for d in truth.dates if d.mask_path
    ]
    read_wall, read_rss, read_status = timed([sys.executable, "-c", _READ_ALL, *files], env=env)
    wall, rss, status = run_monitor(truth.csv_path, work / "speed" / "out.gpkg", env=env)
    memory = []
    for n in mem_dates:
        t = make_stack(work / f"mem{n}", seed=0, size_px=mem_size, dates=n)
        w, r, s = run_monitor(t.csv_path, work / f"mem{n}" / "out.gpkg", env=env)
        memory.append({"dates": n, "wall_s": w, "rss_mib": r, "status": s})
    ok = [m["rss_mib"] for m in memory if m["status"] == "ok"]
    return {
        "size_px": speed_size,
        "dates": 12,
        "read_once_s": read_wall,
        "read_once_rss_mib": read_rss,
        "read_status": read_status,
        "monitor_s": wall,
        "monitor_rss_mib": rss,
        "monitor_status": status,
        "ratio": wall / read_wall if read_wall > 0 and status == "ok" else math.nan,
        "memory_size_px": mem_size,
        "memory": memory,
        "rss_max_over_min": max(ok) / min(ok) if len(ok) >= 2 else math.nan,
    }


# ------------------------------------------------------------------------ report


def _f(v: Any, fmt: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt) if isinstance(v, float) else str(v)


def report(res: dict[str, Any], *, command: str, product: str | None = None) -> str:
    """The Markdown tables of a run (``product``: the PYTHONPATH the CLI ran with)."""
    import borderwatch

    lines = [
        "# Dating benchmark: brackets per structure from `borderwatch monitor`",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{command}`; borderwatch "
        f"{borderwatch.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs"
        + (f"; the `borderwatch monitor` CLI run from PYTHONPATH={product}." if product else "."),
        "",
        "Matching: IoU >= 0.3 with the best output structure, else an output structure "
        "containing the true structure's representative point or with its own inside it. "
        "A bracket contains the true date t when last_absent < t <= first_present. "
        f"Floor: share containing >= {FLOOR_CONTAINS}; wrongly absent on masked dates = 0.",
        "",
        "## Synthetic stacks (`borderwatch.synthetic.make_stack`)",
        "",
        "| scenario | planted | dated | bracket contains true date | median width (d) | "
        "median tightest (d) | as tight as allowed | absent on masked date | "
        "absent on nodata date | false new / km2 (area km2) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if list(res["synthetic"]) == ["rows"]:
        lines[-2:] = ["Not run (--skip-synthetic)."]
    for name, r in res["synthetic"].items():
        if name == "rows":
            continue
        lines.append(
            f"| {name} | {r.get('n', 0)} | {r.get('found', 0)} | "
            f"{r.get('contains', 0)} ({_f(r.get('contains_share'))}) | "
            f"{_f(r.get('median_width_days'), '.0f')} | {_f(r.get('median_tight_days'), '.0f')} | "
            f"{_f(r.get('tight_share'))} | {r['absent_on_masked']} | {r['absent_on_nodata']} | "
            f"{r['false_new']} / {_f(r['area_km2'])} = {_f(r['false_new_per_km2'])} |"
        )
    failed = [
        f"{name} seed {x['seed']}: {x['status']}"
        for name, r in res["synthetic"].items()
        if name != "rows"
        for x in r["runs"]
        if x["status"] != "ok"
    ]
    lines += [f"- not scored: {f}" for f in failed]
    lines += ["", "## SpaceNet 7 (real, ~4 m monthly mosaics)", ""]
    sn7 = res["sn7"]
    if "skipped" in sn7:
        lines.append(f"Not run: {sn7['skipped']}.")
    else:
        lines += [
            "| place | new buildings | found (status new) | bracket contains true month | "
            "dated early / late | false new / km2 (area km2) | wall (s) | status |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for place, r in sn7.items():
            lines.append(
                f"| {place} | {r.get('new_buildings', '-')} | {r.get('found', '-')} "
                f"({_f(r.get('found_share'))}) | {r.get('contains', '-')} "
                f"({_f(r.get('contains_share'))}) | {r.get('early', '-')} / "
                f"{r.get('late', '-')} | {r.get('false_new', '-')} / "
                f"{_f(r.get('area_km2'))} = {_f(r.get('false_new_per_km2'))} | "
                f"{_f(r['wall_s'], '.1f')} | {r['status']} |"
            )
    sp = res.get("speed")
    lines += ["", "## Speed and memory", ""]
    if sp is None:
        lines.append("Not run (--skip-speed).")
    else:
        lines += [
            f"12 dates of {sp['size_px']} px: reading every file once {_f(sp['read_once_s'])} s; "
            f"`monitor` {_f(sp['monitor_s'])} s ({sp['monitor_status']}), "
            f"ratio {_f(sp['ratio'])}, peak RSS {_f(sp['monitor_rss_mib'], '.0f')} MiB.",
            "",
            f"| dates ({sp['memory_size_px']} px) | wall (s) | peak RSS (MiB) | status |",
            "|---:|---:|---:|---|",
        ]
        for m in sp["memory"]:
            wall, rss = _f(m["wall_s"], ".1f"), _f(m["rss_mib"], ".0f")
            lines.append(f"| {m['dates']} | {wall} | {rss} | {m['status']} |")
        lines.append(f"\nPeak RSS max / min over the date counts: {_f(sp['rss_max_over_min'])}.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--size", type=int, default=512, help="Synthetic stack size, px.")
    ap.add_argument("--speed-size", type=int, default=2048)
    ap.add_argument("--mem-size", type=int, default=1024)
    ap.add_argument("--mem-dates", type=int, nargs="+", default=[4, 8, 12, 24])
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-sn7", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument(
        "--product-pythonpath",
        default=None,
        help="PYTHONPATH of the `borderwatch monitor` child processes (default: inherited).",
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    env = dict(os.environ)
    if args.product_pythonpath:
        env["PYTHONPATH"] = args.product_pythonpath
    res: dict[str, Any] = {"sn7": {"skipped": "not run yet"}}
    command = "python benchmarks/dating.py " + " ".join(argv if argv is not None else sys.argv[1:])
    command = command.strip()
    with tempfile.TemporaryDirectory(prefix="bw-dating-") as tmp:
        work = Path(tmp)
        res["synthetic"] = (
            {"rows": []}
            if args.skip_synthetic
            else run_synthetic(args.seeds, args.size, work / "syn", env)
        )
        write_results(res, args.out, command=command, product=args.product_pythonpath)
        res["sn7"] = (
            {"skipped": "--skip-sn7"} if args.skip_sn7 else run_sn7(args.data, work / "sn7", env)
        )
        write_results(res, args.out, command=command, product=args.product_pythonpath)
        if not args.skip_speed:
            res["speed"] = run_speed(
                args.speed_size, args.mem_size, args.mem_dates, work / "speed", env
            )
            write_results(res, args.out, command=command, product=args.product_pythonpath)
    print(f"wrote {args.out} (+ .json, .csv)")


def write_results(res: dict[str, Any], out: Path, *, command: str, product: str | None) -> None:
    """Write the Markdown, JSON and CSV results (after each section, so a cut run keeps them)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report(res, command=command, product=product), encoding="utf-8")
    doc = {**res, "synthetic": {k: v for k, v in res["synthetic"].items() if k != "rows"}}
    out.with_suffix(".json").write_text(
        json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8"
    )
    pd.DataFrame(res["synthetic"]["rows"]).to_csv(out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
