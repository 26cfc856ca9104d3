"""Tile loader: read just the needed windows of before/after imagery onto one grid.

A *date* is one multi-band raster or several single-band rasters (Sentinel-2 style,
one file per band, possibly at different resolutions and in any CRS GDAL reads).
:func:`load_pair` picks a common :class:`Grid` (by default the local UTM zone of the
area of interest at the finest input resolution), reads from every file only the
window that covers that grid plus a small margin, and resamples it onto the grid.
A boolean valid-data mask (nodata values, alpha bands and internal masks, and the
area outside each file's footprint) travels with the data.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import rasterio.errors
import rasterio.warp
import rasterio.windows
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from shapely.ops import transform as _shp_transform

from borderwatch.errors import InputError, NoOverlapError, RasterReadError
from borderwatch.imagery import Imagery, file_imagery, merge_imagery
from borderwatch.radiometry import apply_offsets, band_offsets
from borderwatch.remote import is_url

__all__ = [
    "expand_paths",
    "DateSource",
    "Grid",
    "MIN_INPUT_PX",
    "Scene",
    "check_shape",
    "check_size",
    "choose_grid",
    "load_pair",
    "open_date",
    "open_raster",
    "read_scene",
    "source_window",
]

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".img", ".vrt", ".png", ".hdr", "")
_BAND_RE = re.compile(r"(?:^|[_\-.])(B(?:0?[1-9]|1[0-2]|8A))(?=[_\-.]|$)", re.IGNORECASE)
#: Fewest pixels a side of an input file the detection assesses: phase correlation,
#: the threshold's histogram and the clean-up's opening need a 2-D patch, not a row.
MIN_INPUT_PX = 16


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid.

    Parameters
    ----------
    crs : rasterio.crs.CRS
        Coordinate reference system of the grid (projected, metres, for analysis).
    transform : affine.Affine
        Pixel-to-CRS transform of the upper-left corner.
    shape : tuple of int
        ``(rows, cols)``.
    """

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self) -> None:
        if len(self.shape) != 2 or min(self.shape) < 1:
            raise InputError(f"grid shape must be (rows, cols) >= 1, got {self.shape}")

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size ``(x, y)`` in CRS units (metres for UTM), both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in grid CRS units."""
        rows, cols = self.shape
        left, top = self.transform.c, self.transform.f
        return (left, top + self.transform.e * rows, left + self.transform.a * cols, top)

    @property
    def pixel_area(self) -> float:
        """Area of one pixel in square CRS units (m2 for a metric CRS)."""
        return abs(self.transform.a * self.transform.e)

    def window_grid(self, window: rasterio.windows.Window) -> Grid:
        """Return the sub-grid covered by ``window`` (row/col offsets into this grid)."""
        win = window.round_offsets().round_lengths()
        return Grid(
            self.crs,
            rasterio.windows.transform(win, self.transform),
            (int(win.height), int(win.width)),
        )


@dataclass(frozen=True)
class DateSource:
    """The files that make up one acquisition date, with metadata read from headers.

    Attributes
    ----------
    paths : tuple of str
        One multi-band file, or one single-band file per band.
    band_names : tuple of str
        One name per band (``B02``... for Sentinel-2 style names, else ``band1``...).
    date : str or None
        Acquisition date ``YYYY-MM-DD`` (``imagery.date``), if known.
    footprint : shapely geometry
        Union of the files' footprints in EPSG:4326 (lon, lat).
    min_res_m : float
        Finest pixel size among the files, in metres (approximate for geographic CRSs).
    imagery : Imagery
        Date, credit, scene id and synthetic flag and where each came from
        (:mod:`borderwatch.imagery`).
    offsets : tuple of float
        Radiometric offset (DN) added to each band when its pixels are decoded, clipped
        at 0 (Sentinel-2 baseline >= 04.00: ``-1000``, see :mod:`borderwatch.radiometry`);
        ``()`` for none.
    offset_source : str or None
        Where the offsets came from (product name, ``MTD_MSIL2A.xml``, tags...).
    """

    paths: tuple[str, ...]
    band_names: tuple[str, ...]
    date: str | None
    footprint: BaseGeometry = field(repr=False)
    min_res_m: float
    file_bands: tuple[tuple[str, int], ...] = field(repr=False)
    imagery: Imagery = field(default_factory=Imagery)
    offsets: tuple[float, ...] = ()
    offset_source: str | None = None


@dataclass(frozen=True)
class Scene:
    """One date resampled onto a :class:`Grid`.

    Attributes
    ----------
    data : numpy.ndarray
        ``float32`` array of shape ``(bands, rows, cols)``; invalid pixels hold NaN.
    valid : numpy.ndarray
        ``bool`` array ``(rows, cols)``: True where every band has valid data.
    grid : Grid
        The grid (CRS, transform, shape) the data lie on.
    source : DateSource
        The files and metadata this scene was read from.
    """

    data: np.ndarray
    valid: np.ndarray
    grid: Grid
    source: DateSource

    def __post_init__(self) -> None:
        if self.data.ndim != 3 or self.data.shape[1:] != self.grid.shape:
            raise InputError(
                f"scene data shape {self.data.shape} does not match grid {self.grid.shape}"
            )
        if self.valid.shape != self.grid.shape:
            raise InputError(f"valid mask shape {self.valid.shape} != grid {self.grid.shape}")


def expand_paths(paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[str]:
    """File paths of one date: files as given, folders expanded to their rasters (sorted).

    An ``http(s)://`` URL is kept as it is (a remote raster, see
    :mod:`borderwatch.remote`); a STAC Item JSON file becomes its band assets'
    hrefs (:func:`borderwatch.stac.item_date`).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in paths:
        if is_url(p):
            out.append(str(p))
            continue
        path = Path(p)
        if path.is_dir():
            found = sorted(
                str(q)
                for q in path.iterdir()
                if q.is_file() and q.suffix.lower() in (".tif", ".tiff", ".jp2")
            )
            if not found:
                raise RasterReadError(f"{path}: folder holds no .tif/.tiff/.jp2 raster")
            out.extend(found)
        elif path.suffix.lower() == ".json" and path.is_file():
            from borderwatch.stac import item_date  # stac imports io's callers

            out.extend(item_date(path).paths)
        else:
            out.append(str(path))
    if not out:
        raise InputError("no input raster given")
    return out


def open_raster(path: str | os.PathLike[str]) -> rasterio.DatasetReader:
    """Open a raster for reading, without rasterio's ``NotGeoreferencedWarning``.

    Plain images (PNG, un-georeferenced TIFF) are read knowingly: callers check
    ``crs``/``transform`` and say "not georeferenced" themselves where it matters.

    Raises
    ------
    RasterReadError
        The file is missing or not a readable raster (a URL: not reachable or not a
        raster there).
    """
    if not is_url(path) and not Path(path).exists():
        raise RasterReadError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterReadError(f"{path}: not a readable raster ({_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _res_metres(src: rasterio.DatasetReader) -> float:
    if src.crs.is_projected:
        factor = src.crs.linear_units_factor[1] if src.crs.linear_units_factor else 1.0
        return float(min(abs(src.transform.a), abs(src.transform.e)) * factor)
    # Geographic: metres per degree at the raster's centre latitude.
    lat = math.radians((src.bounds.top + src.bounds.bottom) / 2)
    m_lat = 111_132.954 - 559.822 * math.cos(2 * lat)
    m_lon = 111_412.84 * math.cos(lat)
    return float(min(abs(src.transform.a) * m_lon, abs(src.transform.e) * m_lat))


def open_date(paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]) -> DateSource:
    """Inspect the file(s) of one date without reading pixel data.

    Parameters
    ----------
    paths : path or sequence of paths
        One multi-band raster, several single-band rasters (one per band), a folder
        of ``.tif``/``.jp2`` files (taken in name order), ``http(s)://`` URLs of
        remote rasters (Cloud Optimized GeoTIFFs: only the windows needed are ever
        fetched, see :mod:`borderwatch.remote`), or one local STAC Item JSON file
        (its band assets are the files, its ``datetime`` the date, its ``id`` the
        scene id, its providers the credit; :func:`borderwatch.stac.item_date`).

    Returns
    -------
    DateSource

    Raises
    ------
    RasterReadError
        A file is missing or not a readable raster.
    InputError
        A file has no CRS or no geotransform.
    """
    given = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    items = [p for p in given if not is_url(p) and Path(p).suffix.lower() == ".json"]
    if items:
        return _open_item(items[0], given)
    return _open_files(expand_paths(given))


def _open_item(item: str | os.PathLike[str], given: Sequence[object]) -> DateSource:
    """Open a date given as a STAC Item JSON: its band assets, datetime, id and credit."""
    from borderwatch.stac import item_date  # stac uses pystac, loaded only for items

    if len(given) > 1:
        raise InputError(
            f"{item}: a STAC item is a whole date; give it alone, not with other files"
        )
    found = item_date(item)
    source = _open_files(list(found.paths))
    single = {p: n for p, n in zip(found.paths, found.band_names, strict=True) if n}
    counts = {p: sum(1 for q, _ in source.file_bands if q == p) for p in source.paths}
    names = tuple(
        single[p] if p in single and counts[p] == 1 else name
        for (p, _), name in zip(source.file_bands, source.band_names, strict=True)
    )
    meta = replace(
        source.imagery,
        date=found.date,
        date_source=f"STAC item {Path(item).name} datetime",
        scene_id=found.scene_id,
        stac_item=str(Path(item).resolve()),
    )
    if found.credit is not None:
        meta = replace(meta, credit=found.credit, credit_source="STAC item")
    return replace(source, band_names=names, date=meta.date, imagery=meta)


def _open_files(files: list[str]) -> DateSource:
    """:func:`open_date` of plain raster files (local paths or URLs)."""
    names: list[str] = []
    file_bands: list[tuple[str, int]] = []
    foot = None
    res = math.inf
    metas: list[Imagery] = []
    tags: dict[str, dict[str, str]] = {}
    for path in files:
        with open_raster(path) as src:
            if src.transform == Affine.identity() and (src.gcps[0] or src.rpcs):
                raise InputError(
                    f"{path}: georeferenced by ground control points or RPCs only; "
                    "warp it onto a map grid first (e.g. gdalwarp)"
                )
            if src.crs is None or src.transform == Affine.identity():
                missing = "no CRS" if src.crs is None else "no geotransform"
                raise InputError(
                    f"{path}: not georeferenced ({missing}); georeference it first "
                    "(plain images: borderwatch evaluate --pixel-size)"
                )
            try:
                bounds = rasterio.warp.transform_bounds(src.crs, "EPSG:4326", *src.bounds)
            except Exception as exc:  # noqa: BLE001 - PROJ raises several types
                raise InputError(f"{path}: cannot transform bounds ({_short(exc)})") from exc
            fp = box(*bounds)
            foot = fp if foot is None else foot.union(fp)
            res = min(res, _res_metres(src))
            tags[path] = src.tags()
            metas.append(
                file_imagery(
                    path, tags[path], envi=src.tags(ns="ENVI"), descriptions=src.descriptions
                )
            )
            band_idx = [
                i for i in range(1, src.count + 1) if src.colorinterp[i - 1].name != "alpha"
            ]
            m = _BAND_RE.search(Path(path).stem)
            for i in band_idx:
                desc = src.descriptions[i - 1]
                if len(files) > 1 and len(band_idx) == 1 and m:
                    names.append(m.group(1).upper())
                elif desc:
                    names.append(desc)
                else:
                    names.append(f"band{len(names) + 1}")
                file_bands.append((path, i))
    assert foot is not None
    meta = merge_imagery(metas)
    offsets, offset_source = band_offsets(file_bands, names, tags)
    return DateSource(
        tuple(files),
        tuple(names),
        meta.date,
        foot,
        res,
        tuple(file_bands),
        meta,
        offsets,
        offset_source,
    )


def check_size(source: DateSource, *, min_px: int = MIN_INPUT_PX) -> None:
    """Refuse a date whose files are narrower than ``min_px`` pixels on either side.

    Raises
    ------
    InputError
        A file is smaller than ``min_px`` x ``min_px`` pixels (the message names it).
    """
    for path in source.paths:
        with open_raster(path) as src:
            check_shape((src.height, src.width), path=path, min_px=min_px)


def check_shape(
    shape: tuple[int, int], *, path: str | os.PathLike[str], min_px: int = MIN_INPUT_PX
) -> None:
    """Refuse an image of ``shape`` ``(rows, cols)`` narrower than ``min_px`` on a side.

    Raises
    ------
    InputError
        Naming ``path``, the shape and the minimum.
    """
    rows, cols = shape
    if min(rows, cols) < min_px:
        raise InputError(
            f"{path}: {rows} x {cols} pixels is too small to assess "
            f"(needs at least {min_px} x {min_px} pixels)"
        )


def _as_source(
    date: DateSource | Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
) -> DateSource:
    return date if isinstance(date, DateSource) else open_date(date)


def choose_grid(
    sources: Sequence[DateSource],
    *,
    aoi: BaseGeometry | None = None,
    crs: CRS | str | None = None,
    resolution: float | None = None,
    margin_m: float = 0.0,
    match: DateSource | None = None,
) -> Grid:
    """Pick the common analysis grid for several dates.

    Parameters
    ----------
    sources : sequence of DateSource
        The dates to be compared.
    aoi : shapely geometry, optional
        Area of interest in EPSG:4326 (lon, lat). Without it, the overlap of all
        inputs is used.
    crs : CRS or str, optional
        Target CRS; default is the UTM zone of the area's centroid.
    resolution : float, optional
        Pixel size in target CRS units (metres); default is the finest input resolution.
    margin_m : float
        Extra margin around the area, in metres.
    match : DateSource, optional
        Use the native grid of this date's first file (cropped to the area) instead of
        a new UTM grid, so that results line up with labels made on that image.

    Returns
    -------
    Grid

    Raises
    ------
    NoOverlapError
        The inputs do not overlap each other or the AOI.
    """
    overlap = sources[0].footprint
    for s in sources[1:]:
        overlap = overlap.intersection(s.footprint)
        if overlap.is_empty or overlap.area == 0:
            raise NoOverlapError(
                f"{s.paths[0]} does not overlap {sources[0].paths[0]}"
                " (footprints in EPSG:4326 are disjoint)"
            )
    area = overlap
    if aoi is not None:
        area = overlap.intersection(aoi)
        if area.is_empty or area.area == 0:
            files = ", ".join(s.paths[0] for s in sources)
            raise NoOverlapError(f"the area of interest does not overlap the inputs ({files})")
    if match is not None:
        finest = _finest_file(match)
        with open_raster(finest) as src:
            dst_crs, tr = src.crs, src.transform
            full = rasterio.windows.Window(0, 0, src.width, src.height)
        left, bottom, right, top = rasterio.warp.transform_bounds(
            "EPSG:4326", dst_crs, *area.bounds
        )
        win = _outer_window(rasterio.windows.from_bounds(left, bottom, right, top, tr))
        win = win.intersection(full)
        return Grid(dst_crs, rasterio.windows.transform(win, tr), (int(win.height), int(win.width)))
    if crs is None:
        from borderwatch.aoi import utm_crs  # local import keeps io free of catalogue loading

        c = area.centroid
        dst_crs = utm_crs(c.x, c.y)
    else:
        dst_crs = CRS.from_user_input(crs)
    res = float(resolution) if resolution else min(s.min_res_m for s in sources)
    if res <= 0:
        raise InputError(f"resolution must be positive, got {res}")
    left, bottom, right, top = _bounds_in(area, dst_crs)
    left, bottom, right, top = left - margin_m, bottom - margin_m, right + margin_m, top + margin_m
    # Snap to a multiple of the resolution so repeated runs give identical grids.
    left = math.floor(left / res) * res
    top = math.ceil(top / res) * res
    cols = max(1, math.ceil((right - left) / res))
    rows = max(1, math.ceil((top - bottom) / res))
    return Grid(dst_crs, Affine(res, 0.0, left, 0.0, -res, top), (rows, cols))


def _finest_file(date: DateSource) -> str:
    """Path of the date's file with the smallest pixel size."""
    best, best_res = date.paths[0], math.inf
    for path in date.paths:
        with open_raster(path) as src:
            res = _res_metres(src)
        if res < best_res:
            best, best_res = path, res
    return best


def _bounds_in(geom_lonlat: BaseGeometry, crs: CRS) -> tuple[float, float, float, float]:
    from pyproj import Transformer

    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    projected = _shp_transform(tr.transform, geom_lonlat.segmentize(0.001))
    return tuple(projected.bounds)  # type: ignore[return-value]


def _outer_window(win: rasterio.windows.Window, pad: int = 0) -> rasterio.windows.Window:
    """Smallest whole-pixel window containing ``win``, grown by ``pad`` pixels."""
    col0 = math.floor(win.col_off + 1e-6) - pad
    row0 = math.floor(win.row_off + 1e-6) - pad
    col1 = math.ceil(win.col_off + win.width - 1e-6) + pad
    row1 = math.ceil(win.row_off + win.height - 1e-6) + pad
    return rasterio.windows.Window(col0, row0, col1 - col0, row1 - row0)


def source_window(
    src: rasterio.DatasetReader, grid: Grid, *, pad: int = 3
) -> rasterio.windows.Window | None:
    """Whole-pixel window of ``src`` covering ``grid``, grown by ``pad`` pixels.

    The window :func:`read_scene` reads (the pad lets resampling kernels at the
    grid's edge see real data), clipped to the file.

    Returns
    -------
    rasterio.windows.Window or None
        Inside the file; None when the file does not reach the grid at all.

    Raises
    ------
    InputError
        The grid's bounds cannot be transformed into the file's CRS.
    """
    try:
        sb = rasterio.warp.transform_bounds(grid.crs, src.crs, *grid.bounds, densify_pts=21)
    except Exception as exc:  # noqa: BLE001 - PROJ raises several types
        raise InputError(f"{src.name}: cannot transform grid bounds ({_short(exc)})") from exc
    win = _outer_window(rasterio.windows.from_bounds(*sb, transform=src.transform), pad=pad)
    try:
        return win.intersection(rasterio.windows.Window(0, 0, src.width, src.height))
    except rasterio.errors.WindowError:
        return None


def _valid_of(
    src: rasterio.DatasetReader, band: int, window: rasterio.windows.Window
) -> np.ndarray:
    """Valid-data mask of one band in a window: nodata, alpha and internal masks."""
    return src.read_masks(band, window=window) > 0


def read_scene(
    date: DateSource | Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    grid: Grid,
    *,
    resampling: Resampling | Literal["bilinear", "nearest", "cubic", "average"] = "bilinear",
) -> Scene:
    """Read one date onto ``grid``, touching only the needed window of each file.

    Parameters
    ----------
    date : DateSource or path(s)
        The file(s) of one date, see :func:`open_date`.
    grid : Grid
        Target grid.
    resampling : str or rasterio.enums.Resampling
        Resampling for the data. Downsampling by more than 1.5x uses ``average``.

    Returns
    -------
    Scene
        Data as float32 with NaN at invalid pixels, and the valid mask.

    Raises
    ------
    RasterReadError
        A file cannot be decoded (e.g. truncated).
    """
    source = _as_source(date)
    rs = Resampling[resampling] if isinstance(resampling, str) else resampling
    rows, cols = grid.shape
    nb = len(source.file_bands)
    data = np.full((nb, rows, cols), np.nan, dtype=np.float32)
    valid = np.ones((rows, cols), dtype=bool)
    k = 0
    for path in source.paths:
        bands = [b for (p, b) in source.file_bands if p == path]
        with open_raster(path) as src:
            win = source_window(src, grid)
            if win is None:
                valid[:] = False  # this file does not reach the grid at all
                k += len(bands)
                continue
            src_tr = rasterio.windows.transform(win, src.transform)
            src_res = _res_metres(src)
            rs_band = Resampling.average if src_res * 1.5 < min(grid.res) else rs
            try:
                arr = src.read(bands, window=win, out_dtype="float32")
                masks = np.stack([_valid_of(src, b, win) for b in bands])
            except rasterio.errors.RasterioIOError as exc:
                raise RasterReadError(
                    f"{path}: cannot decode pixels ({_short(exc)}); is it truncated?"
                ) from exc
            file_valid = masks.all(axis=0).astype(np.uint8)
            arr[~masks] = np.nan
            if source.offsets:  # Sentinel-2 baseline >= 04.00 (borderwatch.radiometry)
                apply_offsets(arr, source.offsets[k : k + len(bands)])
            for j in range(len(bands)):
                band = arr[j]
                dst = np.full((rows, cols), np.nan, dtype=np.float32)
                rasterio.warp.reproject(
                    np.where(np.isnan(band), 0, band).astype(np.float32),
                    dst,
                    src_transform=src_tr,
                    src_crs=src.crs,
                    src_nodata=None,
                    dst_transform=grid.transform,
                    dst_crs=grid.crs,
                    dst_nodata=np.nan,
                    resampling=rs_band,
                    init_dest_nodata=True,
                )
                data[k] = dst
                k += 1
            vdst = np.zeros((rows, cols), dtype=np.uint8)
            rasterio.warp.reproject(
                file_valid,
                vdst,
                src_transform=src_tr,
                src_crs=src.crs,
                dst_transform=grid.transform,
                dst_crs=grid.crs,
                dst_nodata=0,
                resampling=Resampling.nearest,
                init_dest_nodata=True,
            )
            valid &= vdst > 0
    valid &= np.isfinite(data).all(axis=0)
    data[:, ~valid] = np.nan
    return Scene(data, valid, grid, source)


def load_pair(
    before: DateSource | Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    after: DateSource | Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    aoi: BaseGeometry | None = None,
    crs: CRS | str | None = None,
    resolution: float | None = None,
    margin_m: float = 0.0,
    match_before: bool = False,
    grid: Grid | None = None,
) -> tuple[Scene, Scene]:
    """Read a before/after pair onto one grid.

    Parameters
    ----------
    before, after : DateSource or path(s)
        The two dates (see :func:`open_date`).
    aoi : shapely geometry, optional
        Area of interest in EPSG:4326 (lon, lat); default is the inputs' overlap.
    crs, resolution, margin_m
        See :func:`choose_grid`.
    match_before : bool
        Analyse on the before image's native grid (for labels made on that grid).
    grid : Grid, optional
        Use this grid as is (overrides the options above).

    Returns
    -------
    before_scene, after_scene : Scene

    Raises
    ------
    InputError
        The dates have different band counts.
    NoOverlapError
        The inputs do not overlap each other or the AOI.
    """
    b, a = _as_source(before), _as_source(after)
    if len(b.band_names) != len(a.band_names):
        raise InputError(
            f"{a.paths[0]}: after date has {len(a.band_names)} bands but before date "
            f"({b.paths[0]}) has {len(b.band_names)}; give the same bands for both dates"
        )
    if grid is None:
        grid = choose_grid(
            [b, a],
            aoi=aoi,
            crs=crs,
            resolution=resolution,
            margin_m=margin_m,
            match=b if match_before else None,
        )
    sb, sa = read_scene(b, grid), read_scene(a, grid)
    if not (sb.valid & sa.valid).any():
        raise NoOverlapError(
            f"{a.paths[0]} and {b.paths[0]} have no valid pixels in common inside the area"
        )
    return sb, sa
