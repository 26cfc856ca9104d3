"""Structures across dates: linking each date's objects, states per date, brackets, status.

Rules (stated in the products):

- **Linking.** Objects of the dates, in date order, are seen on every structure whose
  footprint they overlap by at least :data:`LINK_OVERLAP` of the smaller of the two
  areas; an object that overlaps one structure only grows its footprint (union). The
  part of an object outside the known footprints (plus :data:`BUFFER_PX` pixels),
  opened by one pixel, that is at least the engine's least object area is a part first
  seen on this date: it starts a structure of its own, dated by its own observations
  (a watchtower built before the fence around it, a building added to a row). An
  object that overlaps none starts a structure.
- **State per date.** The footprint plus a :data:`BUFFER_PX`-pixel buffer is read from
  the date's state and score rasters. ``clear_share`` is the share of those pixels that
  are clear and scored. Under :data:`CLEAR_FLOOR` the date is ``unassessable`` (cloud,
  shadow, snow, outside the image, nodata): never ``absent``. Otherwise it is
  ``present`` when the engine found one of the structure's objects on that date, or when
  at least :data:`PRESENT_SHARE` of the footprint's clear pixels score above the date's
  threshold; else ``absent``. Where a date filled the reference its score is 0: the
  first clear view of a place is what later dates are compared with.
- **Status and bracket.** Only a confirmed presence counts: ``present`` on at least two
  consecutive assessable dates, or on the stack's last date (one scene cannot make or
  date a structure; a lone ``present`` between ``absent`` dates stays in the
  observations only). If the last confirmed presence runs to the last assessable date
  and some date before it is ``absent``: ``new``, bracketed by the last absent date
  before it and its first date, when no confirmed presence came before. Never absent:
  ``present_throughout``. A confirmed presence later absent again (or back again
  after an absence): ``transient``, bracketed by its first confirmed presence. No
  confirmed presence: ``unconfirmed``. The rule is lopsided on purpose: a lone
  ``present`` is ignored, but a lone ``absent`` between two confirmed runs makes the
  structure ``transient``, so a false ``new`` costs two agreeing scenes while a real
  one is at worst reported as ``transient`` with all its observations.
- **Onset test** (:func:`onset_states`). A ``new`` or ``transient`` structure's last
  absent date is compared by :func:`onset_similarity` (blind to brightness and colour)
  with the dates of its presence run in turn; only dates the engine called ``absent``
  are ever the "before". A date with the same shapes (:data:`ONSET_SIMILAR` or above)
  did not show the structure: its state becomes ``absent`` and the bracket moves on to
  the first date that differs. A transient run with the same shapes throughout was a
  change of brightness and goes. A new run with the same shapes as its last absent date
  is compared with the earlier absent dates; if none differs, the shapes never changed
  (a bright roof against a hazy first date): every date becomes ``present`` and the
  structure is ``present_throughout``. Where the test cannot tell (under
  :data:`CLEAR_FLOOR` of the footprint clear on both dates) the engine's word stands.
  Each edited observation says so in ``onset_note``; ``status_reason`` says in words
  why the structure got its status.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window, from_bounds

from borderwatch.io import Grid
from borderwatch.monitor.masks import CLEAR
from borderwatch.products.schema import analyst_table

__all__ = [
    "BRACKET_COLUMNS",
    "BUFFER_PX",
    "OBSERVATION_COLUMNS",
    "ONSET_SHIFT_PX",
    "ONSET_SIMILAR",
    "CLEAR_FLOOR",
    "LINK_OVERLAP",
    "PRESENT_SHARE",
    "STATES",
    "STATUSES",
    "assess",
    "bracket_words",
    "link",
    "onset_similarity",
    "onset_states",
    "status_of",
]

#: Overlap (share of the smaller area) that links an object to a structure.
LINK_OVERLAP = 0.3
#: Buffer around a footprint whose pixels must be clear too, grid pixels.
BUFFER_PX = 2
#: Least clear share of footprint plus buffer for a date to be assessable.
CLEAR_FLOOR = 0.6
#: Share of a footprint's clear pixels above the threshold that makes it present.
PRESENT_SHARE = 0.5
#: Onset similarity (:func:`onset_similarity`) at or above which the bracket's two dates
#: show the same shapes: the change there is one of brightness or colour, not a new
#: structure.
ONSET_SIMILAR = 0.8
#: Largest shift, grid pixels, searched by :func:`onset_similarity`.
ONSET_SHIFT_PX = 2
_ONSET_MIN_PX = 16
#: States of a structure on a date.
STATES = ("present", "absent", "unassessable")
#: Statuses of a structure over the stack.
STATUSES = ("new", "transient", "present_throughout", "unconfirmed")
#: Columns of layer ``observations``.
OBSERVATION_COLUMNS = ("id", "date", "scene", "state", "clear_share", "score", "onset_note")
#: Columns added to the analyst columns in layer ``structures``.
BRACKET_COLUMNS = (
    "last_absent",
    "last_absent_scene",
    "first_present",
    "first_present_scene",
    "n_present",
    "n_absent",
    "n_unassessable",
    "status",
    "status_reason",
    "onset_similarity",
)
_DROP = ("before_date", "after_date", "residual_shift_px")


def link(
    per_date: Sequence[gpd.GeoDataFrame | None], *, pixel_m: float = 1.0, min_area_m2: float = 20.0
) -> list[dict[str, Any]]:
    """Group the dates' objects into structures (see the module notes).

    Parameters
    ----------
    per_date : sequence of GeoDataFrame or None
        Each date's objects (grid CRS, metres), None where the date was not compared.
    pixel_m : float, default 1.0
        Grid pixel size, metres (the opening of a new part and the footprint buffer).
    min_area_m2 : float, default 20.0
        Least area of a new part that splits off as its own structure, m2 (the engine's
        least object area).

    Returns
    -------
    list of dict
        ``geometry`` (footprint), ``members`` (list of ``(date index, object row)``).
    """
    out: list[dict[str, Any]] = []
    for k, objs in enumerate(per_date):
        if objs is None:
            continue
        for _, row in objs.iterrows():
            g = row.geometry
            hits = []
            for s in out:
                inter = shapely.intersection(s["geometry"], g).area
                small = min(s["geometry"].area, g.area)
                if small > 0 and inter / small >= LINK_OVERLAP:
                    hits.append((inter, s))
            if not hits:
                out.append({"geometry": g, "members": [(k, row)]})
                continue
            for _, s in hits:  # seen on this date wherever the object covers it
                s["members"].append((k, row))
            known = shapely.union_all([s["geometry"] for _, s in hits]).buffer(BUFFER_PX * pixel_m)
            rest = _opened(shapely.difference(g, known), pixel_m)
            if rest.area >= min_area_m2:
                # a part first seen now: its own structure, dated by its own dates
                out.append({"geometry": rest, "members": [(k, row)]})
            elif len(hits) == 1:
                hits[0][1]["geometry"] = shapely.union(hits[0][1]["geometry"], g)
    return out


def _opened(geom: Any, pixel_m: float) -> Any:
    """Morphological opening by one pixel: drops slivers along a footprint's edge."""
    if geom.is_empty:
        return geom
    return shapely.make_valid(geom.buffer(-pixel_m).buffer(pixel_m))


def _present_runs(states: Sequence[str]) -> list[list[int]]:
    """Return the runs of ``present`` dates, consecutive among the assessable dates."""
    runs: list[list[int]] = []
    prev = ""
    for i, s in enumerate(states):
        if s == "unassessable":
            continue
        if s == "present":
            if prev == "present":
                runs[-1].append(i)
            else:
                runs.append([i])
        prev = s
    return runs


def status_of(states: Sequence[str]) -> tuple[str, int | None, int | None]:
    """Status, and the bracket ``(last absent, first present)`` date indices.

    Only a confirmed presence dates a structure: a run of ``present`` on at least two
    consecutive assessable dates, or on the stack's last date. A lone ``present`` between
    ``absent`` dates is one scene's word and is left out of the status (the observation
    keeps it).

    Examples
    --------
    >>> status_of(["absent", "absent", "present", "unassessable", "present"])
    ('new', 1, 2)
    >>> status_of(["absent", "present", "present", "absent"])
    ('transient', 0, 1)
    >>> status_of(["unassessable", "present", "present"])
    ('present_throughout', None, 1)
    >>> status_of(["absent", "present", "absent", "absent", "present", "present"])
    ('new', 3, 4)
    >>> status_of(["absent", "present", "present", "absent", "present", "present"])
    ('transient', 0, 1)
    """
    runs = _present_runs(states)
    last = len(states) - 1
    confirmed = [r for r in runs if len(r) >= 2 or r[-1] == last]
    absent = [i for i, s in enumerate(states) if s == "absent"]

    def before(i: int) -> int | None:
        earlier = [a for a in absent if a < i]
        return earlier[-1] if earlier else None

    if not confirmed:
        if not runs:
            return "unconfirmed", (absent[-1] if absent else None), None
        return "unconfirmed", before(runs[-1][0]), runs[-1][0]
    final = confirmed[-1]
    if not absent:
        return "present_throughout", None, final[0]
    if absent[-1] < final[0] and final is confirmed[0]:
        return "new", before(final[0]), final[0]
    # gone again, or back after an absence: no one step from absent to present
    return "transient", before(confirmed[0][0]), confirmed[0][0]


def _window(geom: Any, grid: Grid, pad: int, *, clip: bool = True) -> Window:
    win = from_bounds(*geom.bounds, transform=grid.transform)
    r0 = math.floor(win.row_off) - pad
    c0 = math.floor(win.col_off) - pad
    r1 = math.ceil(win.row_off + win.height) + pad
    c1 = math.ceil(win.col_off + win.width) + pad
    if clip:
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, grid.shape[0]), min(c1, grid.shape[1])
    return Window(c0, r0, max(c1 - c0, 1), max(r1 - r0, 1))


def _masks(geom: Any, grid: Grid, win: Window) -> tuple[np.ndarray, np.ndarray]:
    sub = grid.window_grid(win)
    foot = rasterio.features.geometry_mask(
        [geom], out_shape=sub.shape, transform=sub.transform, invert=True
    )
    if not foot.any():  # a sliver: the pixel under its centre
        foot = rasterio.features.geometry_mask(
            [geom], out_shape=sub.shape, transform=sub.transform, invert=True, all_touched=True
        )
    buf = rasterio.features.geometry_mask(
        [geom.buffer(BUFFER_PX * grid.res[0])],
        out_shape=sub.shape,
        transform=sub.transform,
        invert=True,
    )
    return foot, buf | foot


def _observe(
    geom: Any, grid: Grid, state: Any, score: Any, threshold: float | None, detected: bool
) -> tuple[str, float, float]:
    win = _window(geom, grid, BUFFER_PX + 1)
    foot, buf = _masks(geom, grid, win)
    codes = state.read(1, window=win)
    sc = score.read(1, window=win)
    ok = (codes == CLEAR) & np.isfinite(sc)
    clear_share = float(ok[buf].mean()) if buf.any() else 0.0
    vals = sc[foot & ok]
    mean = float(vals.mean()) if vals.size else float("nan")
    if clear_share < CLEAR_FLOOR or not vals.size:
        return "unassessable", clear_share, mean
    above = float((vals > threshold).mean()) if threshold is not None else 0.0
    present = detected or above >= PRESENT_SHARE
    return ("present" if present else "absent"), clear_share, mean


def onset_similarity(geom: Any, grid: Grid, before: Any, after: Any) -> float:
    """Similarity of a structure's place on two dates, blind to brightness and colour.

    The Pearson correlation of the two dates' pixels over the footprint plus a
    :data:`BUFFER_PX`-pixel buffer, per band and averaged over the bands with any
    variance, at the best of the shifts up to :data:`ONSET_SHIFT_PX` pixels (what
    alignment may leave). A gain, an offset or haze (season, illumination, sensor)
    leaves it near 1; a structure that was not there before changes the pattern and
    takes it far lower. A shift counts only where at least :data:`CLEAR_FLOOR` of the
    footprint is clear on both dates. A faint or thin structure on textured ground (contrast
    about the ground's texture spread) correlates highly whatever happened: the test
    is meant for the change of brightness of what stands out.

    Parameters
    ----------
    geom : shapely geometry
        The structure's footprint (grid CRS, metres).
    grid : Grid
        The analysis grid.
    before, after : rasterio dataset
        The two dates' staged rasters on the grid (NaN where not clear).

    Returns
    -------
    float
        The correlation (-1 to 1), or NaN where the test cannot tell (too few clear
        pixels).
    """
    s = ONSET_SHIFT_PX
    win = _window(geom, grid, BUFFER_PX + 1 + s, clip=False)
    foot, buf = _masks(geom, grid, win)
    a = before.read(window=win, boundless=True, fill_value=np.nan).astype(np.float64)
    b = after.read(window=win, boundless=True, fill_value=np.nan).astype(np.float64)
    h, w = buf.shape
    inner = (slice(s, h - s), slice(s, w - s))
    aa = a[(slice(None), *inner)]
    shifted = [
        b[:, s + dr : h - s + dr, s + dc : w - s + dc]
        for dr in range(-s, s + 1)
        for dc in range(-s, s + 1)
    ]
    base = buf[inner] & np.isfinite(aa).all(axis=0)
    core = foot[inner]
    need = max(CLEAR_FLOOR * core.sum(), 1)
    best = float("nan")
    for bb in shifted:
        ok = base & np.isfinite(bb).all(axis=0)
        # each shift is scored only on most of the footprint: none may drop the roof
        if ok.sum() < _ONSET_MIN_PX or (ok & core).sum() < need:
            continue
        x = aa[:, ok] - aa[:, ok].mean(axis=1, keepdims=True)
        y = bb[:, ok] - bb[:, ok].mean(axis=1, keepdims=True)
        den = np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
        keep = den > 0  # a band without variance says nothing
        if not keep.any():
            continue
        r = float(np.mean((x * y).sum(axis=1)[keep] / den[keep]))
        if math.isnan(best) or r > best:
            best = r
    return best


Similarity = Callable[[int, int], float]


def onset_states(
    names: list[str], similarity: Similarity, dates: Sequence[str]
) -> tuple[str, int | None, int | None, float, dict[int, str]]:
    """Status and bracket after the onset test (module notes); edits ``names`` in place.

    Only dates the engine called ``absent`` are ever the "before" of a comparison.

    - The bracket's presence run is compared in turn with its last absent date: the
      dates with the same shapes (:data:`ONSET_SIMILAR` or above) did not show the
      structure and become ``absent``; the first that differs (or where the test cannot
      tell) is its onset.
    - A ``transient`` run with the same shapes throughout was a change of brightness:
      it becomes ``absent`` and the rest of the stack is tested again.
    - A ``new`` run with the same shapes as its last absent date: the earlier absent
      dates are compared with its first date, latest first; the first that differs
      brackets the structure (the dates after it become ``present``). When none
      differs the shapes never changed: every absent date becomes ``present`` and the
      structure is ``present_throughout``.

    Parameters
    ----------
    names : list of str
        States per date (``present``/``absent``/``unassessable``), edited in place.
    similarity : callable
        ``similarity(i, j)``: :func:`onset_similarity` of dates ``i`` and ``j`` (NaN:
        cannot tell).
    dates : sequence of str
        ISO dates, for the notes.

    Returns
    -------
    status : str
    last_absent, first_present : int or None
        Date indices of the bracket.
    similarity : float
        The similarity that decided (NaN where none was tested).
    notes : dict of int to str
        Per edited date, what the engine said and why it was changed.
    """
    notes: dict[int, str] = {}

    def same(i: int, j: int) -> tuple[bool, float]:
        v = similarity(i, j)
        return bool(v >= ONSET_SIMILAR), v

    for _ in range(len(names) + 1):
        status, la, fp = status_of(names)
        if status not in ("new", "transient") or la is None or fp is None:
            return status, la, fp, float("nan"), notes
        run = [fp]
        for j in range(fp + 1, len(names)):
            if names[j] == "absent":
                break
            if names[j] == "present":
                run.append(j)
        tested = [same(la, j) for j in run]
        first_diff = next((m for m, (eq, _) in enumerate(tested) if not eq), None)
        if first_diff == 0:
            return status, la, fp, tested[0][1], notes
        if first_diff is not None:
            for j, (_, v) in zip(run[:first_diff], tested, strict=False):
                names[j] = "absent"
                notes[j] = f"present by score; the same shapes as on {dates[la]} ({v:.2f})"
            st, la2, fp2 = status_of(names)
            return st, la2, fp2, tested[first_diff][1], notes
        if status == "transient":  # a change of brightness that came and went
            for j, (_, v) in zip(run, tested, strict=True):
                names[j] = "absent"
                notes[j] = f"present by score; the same shapes as on {dates[la]} ({v:.2f})"
            continue
        earlier = [i for i in range(la - 1, -1, -1) if names[i] == "absent"]
        for i in earlier:
            eq, v = same(i, fp)
            if not eq:
                for j in range(i + 1, fp):
                    if names[j] == "absent":
                        names[j] = "present"
                        notes[j] = f"absent by score; the same shapes as on {dates[fp]}"
                st, la2, fp2 = status_of(names)
                return st, la2, fp2, v, notes
        for j, n in enumerate(names):
            if n == "absent":
                names[j] = "present"
                notes[j] = f"absent by score; the same shapes as on {dates[fp]}"
        st, la2, fp2 = status_of(names)
        return st, la2, fp2, tested[0][1], notes
    return (*status_of(names), float("nan"), notes)


def _onset(
    geom: Any, grid: Grid, records: Sequence[Any], names: list[str]
) -> tuple[str, int | None, int | None, float, dict[int, str]]:
    """Run :func:`onset_states` on a structure with its dates' staged rasters."""
    cache: dict[tuple[int, int], float] = {}

    def similarity(i: int, j: int) -> float:
        if (i, j) not in cache:
            with rasterio.open(records[i].staged) as b, rasterio.open(records[j].staged) as a:
                cache[(i, j)] = onset_similarity(geom, grid, b, a)
        return cache[(i, j)]

    return onset_states(names, similarity, [r.date for r in records])


def _iou(a: Any, b: Any) -> float:
    union = shapely.union(a, b).area
    return float(shapely.intersection(a, b).area / union) if union > 0 else 0.0


def _member_attrs(geom: Any, members: list[tuple[int, Any]]) -> dict[str, Any]:
    rows = [r for _, r in members]
    big = max(rows, key=lambda r: _iou(geom, r.geometry))  # the object most like it
    conf = [float(r["confidence"]) for r in rows if "confidence" in r and pd.notna(r["confidence"])]
    score = [
        float(r[c]) for r in rows for c in ("score", "mean_score") if c in r and pd.notna(r[c])
    ]
    return {
        "class": big.get("class", "other"),
        "class_reason": big.get("class_reason", ""),
        "confidence": max(conf) if conf else np.nan,
        "score": max(score) if score else np.nan,
    }


def assess(
    per_date: Sequence[gpd.GeoDataFrame | None],
    records: Sequence[Any],
    grid: Grid,
    *,
    input_hashes: Sequence[str],
    min_area_m2: float = 20.0,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Link the objects and decide every structure's state on every date.

    Parameters
    ----------
    per_date : sequence of GeoDataFrame or None
        Each date's objects from the engine (grid CRS), None where not compared.
    records : sequence of DateRecord
        The dates (:class:`borderwatch.monitor.run.DateRecord`), with their rasters.
    grid : Grid
        The analysis grid.
    input_hashes : sequence of str
        SHA-256 of every input, in date order (the stable ids' seed).
    min_area_m2 : float, default 20.0
        The engine's least object area, m2: the least new part that splits off (:func:`link`).

    Returns
    -------
    structures : geopandas.GeoDataFrame
        Analyst columns (:func:`borderwatch.products.schema.analyst_table`, without the
        pair's ``before_date``/``after_date``/``residual_shift_px``), then
        :data:`BRACKET_COLUMNS`; grid CRS.
    observations : pandas.DataFrame
        :data:`OBSERVATION_COLUMNS`: ``onset_note`` says where the onset test changed
        the engine's state, and why.
    """
    groups = link(per_date, pixel_m=float(grid.res[0]), min_area_m2=min_area_m2)
    states: list[list[tuple[str, float, float]]] = [[] for _ in groups]
    for k, rec in enumerate(records):
        with rasterio.open(rec.state) as st, rasterio.open(rec.score) as sc:
            for i, g in enumerate(groups):
                detected = any(m == k for m, _ in g["members"])
                states[i].append(_observe(g["geometry"], grid, st, sc, rec.threshold, detected))
    geoms = [shapely.make_valid(g["geometry"]) for g in groups]
    frame = gpd.GeoDataFrame(
        [_member_attrs(g["geometry"], g["members"]) for g in groups] or None,
        columns=["class", "class_reason", "confidence", "score"],
        geometry=geoms,
        crs=grid.crs,
    )
    frame["area_m2"] = frame.geometry.area
    table = analyst_table(frame, input_hashes=input_hashes)
    table = table.drop(columns=[c for c in _DROP if c in table.columns])
    table["id"] = table["id"].astype(str)  # also when there is no structure
    obs_rows = []
    extra: dict[str, list[Any]] = {c: [] for c in BRACKET_COLUMNS}
    for i, sid in enumerate(table["id"]):
        names = [s for s, _, _ in states[i]]
        status, last_abs, first_pres, sim, notes = _onset(geoms[i], grid, records, names)
        states[i] = [(n, c, v) for n, (_, c, v) in zip(names, states[i], strict=True)]
        reason = _reason(status, names, records, first_pres, sim, notes)
        extra["last_absent"].append(records[last_abs].date if last_abs is not None else "")
        extra["last_absent_scene"].append(records[last_abs].scene if last_abs is not None else "")
        extra["first_present"].append(records[first_pres].date if first_pres is not None else "")
        extra["first_present_scene"].append(
            records[first_pres].scene if first_pres is not None else ""
        )
        extra["n_present"].append(names.count("present"))
        extra["n_absent"].append(names.count("absent"))
        extra["n_unassessable"].append(names.count("unassessable"))
        extra["status"].append(status)
        extra["status_reason"].append(reason)
        extra["onset_similarity"].append(round(sim, 3) if math.isfinite(sim) else np.nan)
        for k, (rec, (state, clear, score)) in enumerate(zip(records, states[i], strict=True)):
            obs_rows.append(
                {
                    "id": sid,
                    "date": rec.date,
                    "scene": rec.scene,
                    "state": state,
                    "clear_share": round(clear, 4),
                    "score": score,
                    "onset_note": notes.get(k, ""),
                }
            )
    geometry = table.geometry
    table = pd.DataFrame(table.drop(columns=table.geometry.name))
    dtypes = {"onset_similarity": np.float64}
    for c in BRACKET_COLUMNS:
        dtype = dtypes.get(c, np.int64 if c.startswith("n_") else object)
        table[c] = pd.Series(extra[c], index=table.index, dtype=dtype)
    cols = [c for c in table.columns if c not in ("review", "note")] + ["review", "note"]
    structures = gpd.GeoDataFrame(table[cols], geometry=geometry, crs=grid.crs)
    observations = pd.DataFrame(obs_rows, columns=list(OBSERVATION_COLUMNS))
    return structures, observations


def _reason(
    status: str,
    names: Sequence[str],
    records: Sequence[Any],
    first_pres: int | None,
    sim: float,
    notes: dict[int, str],
) -> str:
    """Say in words why a structure got its status (layer ``structures``, ``status_reason``).

    Parameters
    ----------
    status : str
        The structure's status.
    names : sequence of str
        Its state per date, after the onset test.
    records : sequence of DateRecord
        The dates.
    first_pres : int or None
        Index of the bracket's first present date.
    sim : float
        The onset similarity that decided (NaN: none tested or cannot tell).
    notes : dict of int to str
        Dates whose state the onset test changed.
    """
    date = [r.date for r in records]
    moved = ""
    if notes:
        which = ", ".join(date[k] for k in sorted(notes))
        moved = f"; onset test changed the state of {which} (same shapes)"
    if status in ("new", "transient"):
        if math.isfinite(sim):
            onset = f"; the shapes differ (similarity {sim:.2f} < {ONSET_SIMILAR})"
        else:
            onset = "; onset test not possible (too few clear pixels on both dates)"
    else:
        onset = ""
    start = date[first_pres] if first_pres is not None else "?"
    if status == "new":
        return f"absent, then present from {start} on every later assessable date{onset}{moved}"
    if status == "transient":
        after = [i for i in range(len(names)) if first_pres is not None and i > first_pres]
        gone = next((i for i in after if names[i] == "absent"), None)
        back = next(
            (i for i in after if gone is not None and i > gone and names[i] == "present"), None
        )
        text = f"present from {start}, absent again on {date[gone] if gone is not None else '?'}"
        if back is not None:
            text += f", back on {date[back]}"
        return text + onset + moved
    if status == "present_throughout":
        if notes and math.isfinite(sim):
            return (
                f"the same shapes on every assessable date (similarity {sim:.2f} >= "
                f"{ONSET_SIMILAR}): the score saw brightness or colour change, not a new "
                f"structure{moved}"
            )
        return "never absent on an assessable date"
    seen = [date[i] for i, n in enumerate(names) if n == "present"]
    if seen:
        return f"present on {', '.join(seen)} only, never on two assessable dates in a row"
    if all(n == "unassessable" for n in names):
        return "never assessable"
    return "never present on an assessable date"


def bracket_words(row: Any, observations: pd.DataFrame) -> str:
    """Write a structure's bracket in words.

    E.g. ``not present on 2020-05-03 (scene X); present on 2020-09-14 (scene Y) and on
    3 later images``.
    """
    mine = observations[observations["id"] == row["id"]]
    parts = []
    if row["last_absent"]:
        parts.append(f"not present on {row['last_absent']} (scene {row['last_absent_scene']})")
    if row["first_present"]:
        later = mine[(mine["date"] > row["first_present"]) & (mine["state"] == "present")]
        n = len(later)
        tail = f" and on {n} later image{'s' if n != 1 else ''}" if n else ""
        parts.append(
            f"present on {row['first_present']} (scene {row['first_present_scene']}){tail}"
        )
    else:
        parts.append("never present on an assessable image")
    gone = mine[(mine["date"] > (row["first_present"] or "")) & (mine["state"] == "absent")]
    if row["status"] == "transient" and len(gone):
        parts.append(f"absent again on {gone['date'].iloc[0]} (scene {gone['scene'].iloc[0]})")
    return "; ".join(parts)
