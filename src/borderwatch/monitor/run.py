"""Run a stack of dates through the one detection engine, streamed date by date.

Design (how the two constraints of a stack are met):

- **Every input is read once.** Each date's files are read once, block by block, onto
  the stack's one analysis grid and kept as a temporary GeoTIFF ("staged" copy, pixels
  that are not clear set to nodata) together with a per-pixel state raster (clear,
  cloud, shadow, snow, nodata, no imagery). Everything after that (the engine's pair
  pass, the reference update, the per-structure assessment, the image strips) reads
  these temporary files, never the inputs again. Each input file is hashed once.
- **Memory stays bounded however many dates.** The dates are streamed in order; at any
  time only one date's blocks, the reference and the current date are worked on, and
  per date only its objects (polygons) and a few numbers are kept. Whole-grid rasters
  live on disk in a temporary folder (:class:`MonitorRun` removes it on ``close``).

The reference image is our own temporary GeoTIFF on the grid: it starts as the first
date's clear pixels and is filled with each later date's clear pixels where it had
none. Date ``k`` (``k >= 2``) is compared with the reference by the engine
(:func:`borderwatch.engine.detect`: the same fit/apply methods, threshold, clean-up and
classifier as ``borderwatch detect``), writing that date's score. Where a date filled
the reference, its score is 0 (it is the reference there).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import gc
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from rasterio.windows import Window

from borderwatch.aoi import AOI, aoi_polygon, aoi_polygon_lonlat, get_aoi
from borderwatch.engine import DetectParams, detect
from borderwatch.engine.params import MethodName
from borderwatch.engine.plan import DEFAULT_BLOCK_SIZE, Win, block_layout
from borderwatch.engine.pool import Progress
from borderwatch.engine.read import GDAL_CACHE_BYTES
from borderwatch.errors import InputError
from borderwatch.imagery import ImageryOptions, with_options
from borderwatch.io import DateSource, Grid, check_size, choose_grid, open_date, read_scene
from borderwatch.masks import find_mask, read_mask
from borderwatch.monitor import ledger as _ledger
from borderwatch.monitor import track
from borderwatch.monitor.masks import CLEAR, NO_IMAGERY, NODATA
from borderwatch.monitor.stack import StackEntry
from borderwatch.remote import input_sha256

__all__ = ["MONITOR_METHOD", "DateRecord", "MonitorRun", "monitor"]

#: Method of a stack's passes when no parameters are given: the unsupervised score the
#: dating rules and ``benchmarks/dating.py`` were measured with (``detect`` defaults to
#: ``auto``; the structure model's dating is not benchmarked yet).
MONITOR_METHOD: MethodName = "combined"

log = logging.getLogger(__name__)

_GTIFF = {"driver": "GTiff", "tiled": True, "blockxsize": 256, "blockysize": 256}


@dataclass(frozen=True)
class DateRecord:
    """One date of a monitoring run, as processed.

    Attributes
    ----------
    entry : StackEntry
        The stack row.
    source : DateSource
        Its files and imagery metadata (user values over the files').
    scene : str
        Scene label used in brackets: the scene id, else the first file's name.
    mask_kind : str
        Mask used (``"user"``, ``"scl"``, ``"qa_pixel"``, ``"s2cloudless"``, ``"none"``).
    mask_paths : tuple of str
        Files the mask was read from.
    threshold : float or None
        The engine's score threshold for this date against the reference (None for the
        first date and for a date the engine could not compare).
    detections : int
        Objects the engine found on this date.
    note : str
        Why the engine did not compare this date, if it did not.
    staged, state, score : Path
        The temporary rasters on the grid: clear pixels, state codes, score.
    """

    entry: StackEntry
    source: DateSource
    scene: str
    mask_kind: str
    mask_paths: tuple[str, ...]
    threshold: float | None
    detections: int
    note: str
    staged: Path
    state: Path
    score: Path

    @property
    def date(self) -> str:
        """Acquisition date, ``YYYY-MM-DD``."""
        return self.entry.date

    @property
    def credit(self) -> str:
        """Credit line of the date's imagery ("" when unknown)."""
        return self.source.imagery.credit or ""


@dataclass
class MonitorRun:
    """Everything a monitoring run produced.

    Attributes
    ----------
    dates : list of DateRecord
        The dates in order, with the mask used and the engine's threshold.
    grid : Grid
        The analysis grid of the whole stack.
    aoi : AOI or None
        The area of interest (None: the stack's overlap).
    region : shapely geometry
        The assessed region in the grid CRS (AOI inside the grid, or the grid).
    params : DetectParams
        Detection parameters of every date's pass.
    structures : geopandas.GeoDataFrame
        One row per structure (grid CRS); see :func:`borderwatch.monitor.track.structures_table`.
    observations : pandas.DataFrame
        ``id, date, scene, state, clear_share, score``: one row per structure and date.
    ledger : pandas.DataFrame
        The coverage ledger (:func:`borderwatch.monitor.ledger.ledger_frame`).
    input_sha256 : dict
        SHA-256 of every input file (images and masks) by path, hashed once.
    started_utc : str
        Start time, ISO 8601 UTC.
    workdir : Path
        Temporary folder of the staged rasters (removed by :meth:`close`).
    """

    dates: list[DateRecord]
    grid: Grid
    aoi: AOI | None
    region: Any
    params: DetectParams
    structures: gpd.GeoDataFrame
    observations: pd.DataFrame
    ledger: pd.DataFrame
    input_sha256: dict[str, str]
    started_utc: str
    workdir: Path
    corridor: dict[str, Any] | None = None
    engine_params: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Remove the temporary rasters."""
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MonitorRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_date(self, k: int, window: Window) -> np.ndarray:
        """Read date ``k``'s clear pixels in a grid window from its staged copy.

        Returns ``float32 (bands, rows, cols)``, NaN where not clear; the input is not
        read again.
        """
        with rasterio.open(self.dates[k].staged) as src:
            return src.read(window=window, boundless=True, fill_value=np.nan)


def _tif(path: Path, grid: Grid, *, count: int, dtype: str, nodata: float | None) -> Any:
    return rasterio.open(
        path,
        "w",
        **_GTIFF,
        width=grid.shape[1],
        height=grid.shape[0],
        count=count,
        dtype=dtype,
        crs=grid.crs,
        transform=grid.transform,
        nodata=nodata,
    )


def _window(w: Win) -> Window:
    return Window(w[1], w[0], w[3], w[2])


def _footprint_on(source: DateSource, grid: Grid) -> np.ndarray:
    """Return True where the date's files reach the (sub-)grid (outside: no imagery)."""
    from rasterio.warp import transform_geom

    geom = transform_geom("EPSG:4326", grid.crs, shapely.geometry.mapping(source.footprint))
    return rasterio.features.geometry_mask(
        [geom], out_shape=grid.shape, transform=grid.transform, invert=True
    )


def _stage(
    rec_paths: tuple[Path, Path],
    source: DateSource,
    entry: StackEntry,
    grid: Grid,
    blocks: Sequence[Win],
) -> tuple[str, tuple[str, ...]]:
    """Read one date once onto the grid: its clear pixels and its state codes."""
    staged, state = rec_paths
    # Found once per date; read block by block.
    spec = find_mask(list(source.paths), user_mask=entry.mask, band_names=source.band_names)
    bands = len(source.band_names)
    with (
        _tif(staged, grid, count=bands, dtype="float32", nodata=float("nan")) as ds,
        _tif(state, grid, count=1, dtype="uint8", nodata=None) as dst,
    ):
        ds.descriptions = source.band_names  # the methods find band roles by name
        for w in blocks:
            sub = grid.window_grid(_window(w))
            scene = read_scene(source, sub)
            codes = np.array(read_mask(spec, sub), dtype=np.uint8)
            codes[(codes == CLEAR) & ~scene.valid] = NODATA
            codes[~_footprint_on(source, sub)] = NO_IMAGERY
            data = scene.data
            data[:, codes != CLEAR] = np.nan
            ds.write(data, window=_window(w))
            dst.write(codes, 1, window=_window(w))
    return spec.kind, tuple(spec.paths)


def _check_distinct(entries: Sequence[StackEntry]) -> None:
    """Refuse the same files on two dates (one image cannot date anything)."""
    seen: dict[tuple[str, ...], StackEntry] = {}
    for e in entries:
        key = tuple(sorted(str(Path(p).resolve()) if "://" not in p else p for p in e.paths))
        if key in seen:
            raise InputError(
                f"{e.where()}: the same files as date {seen[key].date} are given for "
                f"{e.date}; give each image once"
            )
        seen[key] = e


def _stack_grid(sources: Sequence[DateSource], area: AOI | None, params: DetectParams) -> Grid:
    """Choose one grid for the whole stack.

    The AOI inside the union of the dates (a date that misses part of the AOI has no
    imagery there), or without an AOI the dates' overlap.
    """
    res = params.resolution or min(s.min_res_m for s in sources)
    if area is None:
        return choose_grid(sources, crs=params.crs, resolution=res, margin_m=params.margin_m)
    union = dataclasses.replace(
        sources[0], footprint=shapely.union_all([s.footprint for s in sources])
    )
    return choose_grid(
        [union],
        aoi=aoi_polygon_lonlat(area, width_m=area.properties.get("width_m")),
        crs=params.crs,
        resolution=res,
        margin_m=params.margin_m,
    )


def _scene_label(entry: StackEntry, source: DateSource) -> str:
    return entry.scene_id or source.imagery.scene_id or Path(source.paths[0]).name


def _region(area: AOI | None, grid: Grid, sources: Sequence[DateSource]) -> tuple[Any, float]:
    """Return the region on the grid (grid CRS) and the region's area off the grid, m2.

    The region is the AOI, or without one the dates' overlap. The grid covers the AOI
    only where some date has imagery: the rest has no imagery on any date.
    """
    from rasterio.warp import transform_geom

    left, bottom, right, top = grid.bounds
    box = shapely.box(left, bottom, right, top)
    if area is None:
        overlap = shapely.intersection_all([s.footprint for s in sources])
        poly = shapely.geometry.shape(
            transform_geom("EPSG:4326", grid.crs, shapely.geometry.mapping(overlap))
        )
        return shapely.intersection(poly, box), 0.0
    poly, crs = aoi_polygon(area, width_m=area.properties.get("width_m"))
    if crs != grid.crs:
        poly = shapely.geometry.shape(transform_geom(crs, grid.crs, shapely.geometry.mapping(poly)))
    inside = shapely.intersection(poly, box)
    return inside, max(float(poly.area - inside.area), 0.0)


def _compare(
    ref: Path,
    rec: DateRecord,
    prev: str,
    grid: Grid,
    params: DetectParams,
    out: Path,
    progress: Progress | None,
) -> tuple[gpd.GeoDataFrame | None, float | None, str, dict[str, Any]]:
    """Run the engine's pair pass: reference vs this date's staged copy."""
    e = rec.entry
    imagery = {
        "before": ImageryOptions(date=prev, scene_id="reference"),
        "after": ImageryOptions(date=e.date, credit=rec.source.imagery.credit, scene_id=rec.scene),
    }
    try:
        run = detect(
            str(ref),
            str(rec.staged),
            grid=grid,
            params=params,
            score_out=out,
            imagery=imagery,
            allow_reversed=True,
            progress=progress,
        )
    except InputError as exc:  # e.g. no clear pixel shared with the reference
        log.warning("%s: not compared with the reference: %s", e.date, exc)
        return None, None, str(exc), {}
    return run.objects, float(run.change.threshold), "", dict(run.change.params)


def _update(
    ref: Any,
    k: int,
    rec: DateRecord,
    engine_score: Path | None,
    blocks: Sequence[Win],
    acc: _ledger.LedgerAccumulator,
) -> None:
    """Fill the reference with the date's clear pixels where it had none.

    Also write the date's score (0 where it filled the reference) and add the date to
    the ledger.
    """
    eng = rasterio.open(engine_score) if engine_score is not None else None
    try:
        with (
            rasterio.open(rec.staged) as st,
            rasterio.open(rec.state) as sm,
            _tif(rec.score, acc.grid, count=1, dtype="float32", nodata=float("nan")) as out,
        ):
            for w in blocks:
                win = _window(w)
                data = st.read(window=win)
                codes = sm.read(1, window=win)
                r = ref.read(window=win)
                fill = np.isnan(r).any(axis=0) & (codes == CLEAR)
                r[:, fill] = data[:, fill]
                ref.write(r, window=win)
                score = (
                    eng.read(1, window=win).astype(np.float32)
                    if eng is not None
                    else np.full(codes.shape, np.nan, np.float32)
                )
                score[fill] = 0.0
                score[codes != CLEAR] = np.nan
                out.write(score, 1, window=win)
                acc.add(k, w, codes)
    finally:
        if eng is not None:
            eng.close()


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """Return glibc's ``malloc_trim``, or None off Linux or without glibc (resolved once)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def _release_memory() -> None:
    """Hand the freed memory of a finished date back to the system.

    Python and GDAL free a date's arrays when it is done, but glibc's allocator keeps
    the freed pages, so without this the resident size creeps up date after date.
    Elsewhere only the garbage collector runs.
    """
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def monitor(
    entries: Sequence[StackEntry],
    *,
    aoi: AOI | str | os.PathLike[str] | None = None,
    params: DetectParams | None = None,
    block_size: int | None = None,
    workdir: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> MonitorRun:
    """Monitor a stack of dates: structures, their bracketed dates, and a coverage ledger.

    Parameters
    ----------
    entries : sequence of StackEntry
        The dates (any order; processed by date).
    aoi : AOI, str or path, optional
        Catalogue id/name, AOI file or AOI; default the overlap of every date.
    params : DetectParams, optional
        Detection parameters of every date's pass (default: :data:`MONITOR_METHOD`).
    block_size : int, optional
        Block edge, pixels, of the staging and reference passes.
    workdir : path, optional
        Folder for the temporary rasters (default: the system's temporary folder).
    progress : Progress, optional
        Progress sink of each date's engine pass (:mod:`borderwatch.progress`).

    Returns
    -------
    MonitorRun
        Close it (or use it as a context manager) to remove the temporary rasters.

    Raises
    ------
    InputError
        Fewer than two dates, band counts that differ, or an unreadable input.
    NoOverlapError
        The dates do not overlap each other or the AOI.
    """
    import datetime as _dt

    params = params or DetectParams(method=MONITOR_METHOD)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    entries = sorted(entries, key=lambda e: (e.date, e.scene_id or ""))
    if len(entries) < 2:
        raise InputError(f"a stack needs at least two dates; got {len(entries)}")
    _check_distinct(entries)
    area = get_aoi(aoi) if isinstance(aoi, (str, os.PathLike)) else aoi
    sources = []
    for e in entries:
        src = open_date(list(e.paths))
        check_size(src)
        given = ImageryOptions(  # the stack's values over the files' (a file's own date stays)
            date=e.date if e.date != src.date else None, credit=e.credit, scene_id=e.scene_id
        )
        src = with_options(src, given)
        sources.append(src)
    first = sources[0]
    for e, src in zip(entries[1:], sources[1:], strict=True):
        if len(src.band_names) != len(first.band_names):
            raise InputError(
                f"{e.where()}: {e.date} has {len(src.band_names)} bands but {entries[0].date} "
                f"has {len(first.band_names)}; give the same bands for every date"
            )
    grid = _stack_grid(sources, area, params)
    blocks = [
        w for _, w in block_layout(grid.shape, block_size=block_size or DEFAULT_BLOCK_SIZE).blocks()
    ]
    log.info(
        "monitor: %d dates on a %s x %s px grid, %d blocks", len(entries), *grid.shape, len(blocks)
    )
    hashes: dict[str, str] = {}
    tmp = Path(tempfile.mkdtemp(prefix="borderwatch-monitor-", dir=workdir))
    try:
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):  # bounded, however many dates
            region, off_grid_m2 = _region(area, grid, sources)
            acc = _ledger.LedgerAccumulator(grid, region, len(entries), off_grid_m2=off_grid_m2)
            ref_path = tmp / "reference.tif"
            with _tif(
                ref_path, grid, count=len(first.band_names), dtype="float32", nodata=float("nan")
            ) as ref:
                ref.descriptions = first.band_names
                for w in blocks:  # starts empty: nothing is known before the first date
                    nan = np.full((len(first.band_names), w[2], w[3]), np.nan, np.float32)
                    ref.write(nan, window=_window(w))
            records: list[DateRecord] = []
            per_date: list[gpd.GeoDataFrame | None] = []
            engine_params: dict[str, Any] = {}
            for k, (e, src) in enumerate(zip(entries, sources, strict=True)):
                for p in (*src.paths, *((e.mask,) if e.mask else ())):
                    if p not in hashes:
                        hashes[p] = input_sha256(p, grid)  # a URL: the window read
                paths = (tmp / f"date{k:03d}.tif", tmp / f"state{k:03d}.tif")
                kind, mpaths = _stage(paths, src, e, grid, blocks)
                rec = DateRecord(
                    e,
                    src,
                    _scene_label(e, src),
                    kind,
                    mpaths,
                    None,
                    0,
                    "",
                    *paths,
                    tmp / f"score{k:03d}.tif",
                )
                objs: gpd.GeoDataFrame | None = None
                thr: float | None = None
                note = "reference" if k == 0 else ""
                engine_score: Path | None = None
                if k > 0:
                    engine_score = tmp / f"engine{k:03d}.tif"
                    objs, thr, note, eparams = _compare(
                        ref_path, rec, entries[k - 1].date, grid, params, engine_score, progress
                    )
                    if objs is None:
                        engine_score = None
                    engine_params = engine_params or eparams
                rec = dataclasses.replace(
                    rec, threshold=thr, detections=0 if objs is None else len(objs), note=note
                )
                with rasterio.open(ref_path, "r+") as ref:
                    _update(ref, k, rec, engine_score, blocks, acc)
                if engine_score is not None:
                    engine_score.unlink(missing_ok=True)
                records.append(rec)
                per_date.append(objs)
                log.info("%s: %d detections (mask %s)", e.date, rec.detections, kind)
                _release_memory()  # the next date's peak starts low
            structures, observations = track.assess(
                per_date,
                records,
                grid,
                input_hashes=[hashes[p] for p in hashes],
                min_area_m2=params.min_area_m2,
            )
            ledger = acc.frame(records)
            if area is not None and "border_km" in area.properties:
                ledger = _ledger.add_km(ledger, float(area.properties["border_km"]))
            corridor = _ledger.corridor_summary(area, ledger, structures)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return MonitorRun(
        records,
        grid,
        area,
        region,
        params,
        structures,
        observations,
        ledger,
        hashes,
        started,
        tmp,
        corridor,
        engine_params,
    )
