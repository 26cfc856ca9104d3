"""Reading block windows: each date with its own valid mask, and a decode-once tile cache.

Blockwise detection reads every block with a halo of context. Read straight from a
DEFLATE GeoTIFF, a halo touches the neighbouring internal tiles, which GDAL then
decodes again for every block that touches them (2-4x the decoding of the file; GDAL's
block cache does not keep tiles of large multi-tile window reads). :class:`TileReader`
instead decodes each internal tile once, on its own pool of threads, keeps it only as
long as a later window still needs it (reference counts from the known window
sequence), and assembles halo windows from memory. Blocks are visited in column
stripes (:func:`stripe_order`) so that the tiles kept alive stay bounded by the stripe
width, not the scene width.

:func:`read_pair` is the plain per-window read used by Dask tasks, samples and any grid
that needs resampling.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.errors
import rasterio.warp
import rasterio.windows
from affine import Affine
from rasterio.enums import Resampling

from borderwatch.errors import InputError, RasterReadError
from borderwatch.io import DateSource, Grid, open_raster, read_scene
from borderwatch.radiometry import apply_offsets

#: GDAL block cache while decoding, MB.
GDAL_CACHE_MB = 64
#: The same in bytes, as ``rasterio.Env(GDAL_CACHEMAX=...)`` takes it: rasterio hands an
#: integer to ``GDALSetCacheMax64``, which counts bytes (64 would be 64 bytes, no cache).
GDAL_CACHE_BYTES = GDAL_CACHE_MB * 1024**2

__all__ = ["Pair", "TileReader", "coarse_valid", "read_pair", "stripe_order"]

Win = tuple[int, int, int, int]  # row0, col0, rows, cols
_Tile = tuple[np.ndarray, np.ndarray | None]  # raw data, valid mask (None: all valid)
#: Width of the column stripes blocks are visited in, pixels (see :func:`stripe_order`).
STRIPE_PX = 8192


@dataclass(frozen=True)
class Pair:
    """One window of both dates, ``float32 (bands, rows, cols)``, NaN where invalid.

    Attributes
    ----------
    before, after : numpy.ndarray
        Pixel values; each date is NaN only where *that* date is invalid.
    valid_before, valid_after : numpy.ndarray
        ``bool (rows, cols)`` per date.
    """

    before: np.ndarray
    after: np.ndarray
    valid_before: np.ndarray
    valid_after: np.ndarray


def _finish(b: np.ndarray, a: np.ndarray) -> Pair:
    return Pair(b, a, np.isfinite(b).all(axis=0), np.isfinite(a).all(axis=0))


def _read_raw(
    ds: rasterio.DatasetReader, bands: int, window: rasterio.windows.Window, dtype: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Bands ``1..bands`` of a window inside the file, and its valid mask (None: all valid)."""
    idx = list(range(1, bands + 1))
    data = ds.read(idx, window=window, out_dtype=dtype)
    ok = None
    if ds.nodata is not None or any(f.name != "all_valid" for f in ds.mask_flag_enums[0]):
        ok = np.ones(data.shape[1:], bool)
        for b in idx:
            ok &= ds.read_masks(b, window=window) > 0
    if data.dtype.kind == "f":  # NaN and infinities are invalid too
        finite = np.isfinite(data).all(axis=0)
        ok = finite if ok is None else ok & finite
    return data, None if ok is None or ok.all() else ok


def _read_file_window(ds: rasterio.DatasetReader, bands: int, win: Win) -> np.ndarray:
    """Window ``(row0, col0, rows, cols)`` in file pixels; NaN outside the file or invalid."""
    r0, c0, h, w = win
    want = rasterio.windows.Window(c0, r0, w, h)
    full = rasterio.windows.Window(0, 0, ds.width, ds.height)
    out = np.full((bands, h, w), np.nan, np.float32)
    try:
        got = want.intersection(full)
    except rasterio.errors.WindowError:
        return out
    gr, gc = int(got.row_off - want.row_off), int(got.col_off - want.col_off)
    data, ok = _read_raw(ds, bands, got, "float32")
    if ok is not None:
        data[:, ~ok] = np.nan
    out[:, gr : gr + data.shape[1], gc : gc + data.shape[2]] = data
    return out


def _read_path_window(path: str, bands: int, win: Win) -> np.ndarray:
    """:func:`_read_file_window` of a file by path; a decoding error names the file."""
    try:
        with rasterio.open(path) as ds:
            return _read_file_window(ds, bands, win)
    except rasterio.errors.RasterioError as exc:
        raise RasterReadError(f"{path}: cannot read pixels ({_cause(exc)})") from exc


def _cause(exc: BaseException) -> str:
    """Return the innermost message of a rasterio error (it hides GDAL's under 'Read failed')."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_pair(src: object, win: Win) -> Pair:
    """Read one grid window of both dates of a :class:`~borderwatch.blocktasks.PairSource`."""
    r0, c0, h, w = win
    native = src.native  # type: ignore[attr-defined]
    bands = src.bands  # type: ignore[attr-defined]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
        if native is not None:
            fwin = (r0 + native[0], c0 + native[1], h, w)
            b = _read_path_window(src.before.paths[0], bands, fwin)  # type: ignore[attr-defined]
            a = _read_path_window(src.after.paths[0], bands, fwin)  # type: ignore[attr-defined]
            apply_offsets(b, src.before.offsets)  # type: ignore[attr-defined]
            apply_offsets(a, src.after.offsets)  # type: ignore[attr-defined]
        else:
            g: Grid = src.grid  # type: ignore[attr-defined]
            sub = Grid(g.crs, g.transform @ Affine.translation(c0, r0), (h, w))
            b = read_scene(src.before, sub).data.astype(np.float32)  # type: ignore[attr-defined]
            a = read_scene(src.after, sub).data.astype(np.float32)  # type: ignore[attr-defined]
    return _finish(b, a)


def coarse_valid(date: DateSource, grid: Grid, step: int) -> np.ndarray:
    """Where ``date`` has valid pixels on ``grid``, one value per ``step`` x ``step`` cell.

    Each file's valid-data mask (nodata, alpha, internal mask) is read decimated by
    ``step`` with GDAL's ``average`` (a cell holding any valid pixel counts), then put
    on the coarse grid (CRS of ``grid``, pixel ``step`` times the grid's) with
    ``max``. Memory is that of the coarse masks only, whatever the scene's size.

    Returns
    -------
    numpy.ndarray
        ``bool (ceil(rows / step), ceil(cols / step))``: True where every file of the
        date has a valid pixel.
    """
    rows, cols = math.ceil(grid.shape[0] / step), math.ceil(grid.shape[1] / step)
    coarse = grid.transform @ Affine.scale(step)
    out = np.ones((rows, cols), bool)
    for path in date.paths:
        with open_raster(path) as ds:
            ch, cw = max(math.ceil(ds.height / step), 1), max(math.ceil(ds.width / step), 1)
            try:
                mask = ds.dataset_mask(out_shape=(ch, cw), resampling=Resampling.average)
            except rasterio.errors.RasterioError as exc:
                raise RasterReadError(
                    f"{path}: cannot read the valid-data mask ({_cause(exc)})"
                ) from exc
            dst = np.zeros((rows, cols), np.uint8)
            rasterio.warp.reproject(
                (mask > 0).astype(np.uint8),
                dst,
                src_transform=ds.transform @ Affine.scale(ds.width / cw, ds.height / ch),
                src_crs=ds.crs,
                dst_transform=coarse,
                dst_crs=grid.crs,
                src_nodata=None,
                dst_nodata=0,
                resampling=Resampling.max,
                init_dest_nodata=True,
            )
            out &= dst > 0
    return out


def stripe_order(
    blocks: Sequence[tuple[tuple[int, int], Win]], *, stripe_px: int = STRIPE_PX
) -> list[int]:
    """Indexes of ``blocks`` in column-stripe order: stripes left to right, raster inside.

    A block's halo reuses tiles decoded for the block row above; visiting a stripe of
    at most ``stripe_px`` columns at a time keeps those tiles few on wide scenes.
    """
    return sorted(range(len(blocks)), key=lambda k: (blocks[k][1][1] // stripe_px, k))


class TileReader:
    """Assemble grid windows of a pair from internal tiles decoded once each.

    Only for pairs read natively (each date one file on the grid, see
    :class:`~borderwatch.blocktasks.PairSource`). ``windows`` is the full sequence of
    windows that will be asked for, in order; a decoded tile is dropped once the last
    window that needs it has been assembled.

    Parameters
    ----------
    src : PairSource
        The pair (``native`` must not be None).
    windows : sequence of tuple
        Grid windows ``(row0, col0, rows, cols)`` in the order they will be read.
    threads : int
        Decoding threads (each has its own dataset handles).
    groups : sequence of int, optional
        Group (column stripe) of each window. A tile is kept only while windows of the
        same group still need it, and decoded again for another group: tiles on a
        stripe edge are decoded twice rather than kept for a whole stripe.
    """

    def __init__(
        self,
        src: object,
        windows: Sequence[Win],
        *,
        threads: int = 2,
        groups: Sequence[int] | None = None,
    ) -> None:
        if src.native is None:  # type: ignore[attr-defined]
            raise InputError("TileReader needs a natively aligned pair")
        self._src = src
        self._paths = (src.before.paths[0], src.after.paths[0])  # type: ignore[attr-defined]
        self._bands = src.bands  # type: ignore[attr-defined]
        self._off = src.native  # type: ignore[attr-defined]
        th, tw = src.tile  # type: ignore[attr-defined]
        self._tile = (max(th, 1), max(tw, 1)) if min(th, tw) >= 16 else (256, 256)
        self._shapes = []  # per date: the files may differ in size (the grid is inside both)
        for path in self._paths:
            with rasterio.open(path) as ds:
                self._shapes.append((ds.height, ds.width))
        self._shape = (max(s[0] for s in self._shapes), max(s[1] for s in self._shapes))
        self._groups = dict(zip(map(tuple, windows), groups or [0] * len(windows), strict=False))
        self._uses: dict[tuple[int, int, int], int] = {}
        for win in windows:
            for t in self._tiles_of(win):
                self._uses[t] = self._uses.get(t, 0) + 1
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int, int], Future[list[_Tile]]] = {}
        self._local = threading.local()
        self._handles: list[rasterio.DatasetReader] = []
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="borderwatch-tile")

    def _tiles_of(self, win: Win) -> list[tuple[int, int, int]]:
        """``(group, tile_row, tile_col)`` of every tile ``win`` touches."""
        g = self._groups.get(tuple(win), 0)  # type: ignore[call-overload]
        r0, c0, h, w = win
        fr0, fc0 = r0 + self._off[0], c0 + self._off[1]
        th, tw = self._tile
        r1, c1 = min(fr0 + h, self._shape[0]), min(fc0 + w, self._shape[1])
        if r1 <= max(fr0, 0) or c1 <= max(fc0, 0):  # wholly outside the files
            return []
        rows = range(max(fr0, 0) // th, (r1 - 1) // th + 1)
        cols = range(max(fc0, 0) // tw, (c1 - 1) // tw + 1)
        return [(g, i, j) for i in rows for j in cols]

    def _decode(self, tile: tuple[int, int, int]) -> list[_Tile]:
        handles = getattr(self._local, "handles", None)
        if handles is None:
            handles = [rasterio.open(p) for p in self._paths]
            self._local.handles = handles
            with self._lock:
                self._handles += handles
        th, tw = self._tile
        r0, c0 = tile[1] * th, tile[2] * tw
        parts = []
        # Whole tiles gain nothing from GDAL's block cache; outside an Env it defaults to
        # 5 % of RAM and would grow with the scene.
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
            for ds, (rows, cols) in zip(handles, self._shapes, strict=True):
                h, w = max(min(th, rows - r0), 0), max(min(tw, cols - c0), 0)
                if h and w:  # kept in the file's own dtype (uint16: half of float32)
                    window = rasterio.windows.Window(c0, r0, w, h)
                    try:
                        parts.append(_read_raw(ds, self._bands, window, None))
                    except rasterio.errors.RasterioError as exc:
                        raise RasterReadError(
                            f"{ds.name}: cannot read pixels ({_cause(exc)})"
                        ) from exc
                else:  # past this date's (smaller) file
                    parts.append((np.zeros((self._bands, 0, 0), np.uint8), None))
            return parts

    def prefetch(self, win: Win) -> None:
        """Start decoding the tiles of ``win`` (no-op for tiles already decoded)."""
        with self._lock:
            for t in self._tiles_of(win):
                if t not in self._cache:
                    self._cache[t] = self._pool.submit(self._decode, t)

    def read(self, win: Win) -> Pair:
        """Assemble ``win``; releases the tiles that no later window needs."""
        self.prefetch(win)
        r0, c0, h, w = win
        fr0, fc0 = r0 + self._off[0], c0 + self._off[1]
        th, tw = self._tile
        dates = [np.empty((self._bands, h, w), np.float32) for _ in range(2)]
        valids = [np.zeros((h, w), bool) for _ in range(2)]
        tiles = self._tiles_of(win)
        for t in tiles:
            with self._lock:
                fut = self._cache[t]
            parts = fut.result()
            tr0, tc0 = t[1] * th, t[2] * tw
            for out_arr, ok_arr, (data, ok) in zip(dates, valids, parts, strict=True):
                _, dh, dw = data.shape  # edge tiles are cut at the file's edge
                rs, re = max(fr0, tr0), min(fr0 + h, tr0 + dh)
                cs, ce = max(fc0, tc0), min(fc0 + w, tc0 + dw)
                if re <= rs or ce <= cs:
                    continue
                dst = (slice(rs - fr0, re - fr0), slice(cs - fc0, ce - fc0))
                srcs = (slice(rs - tr0, re - tr0), slice(cs - tc0, ce - tc0))
                block = out_arr[(slice(None), *dst)]
                block[...] = data[(slice(None), *srcs)]
                if ok is None:
                    ok_arr[dst] = True
                else:
                    ok_arr[dst] = ok[srcs]
                    block[:, ~ok[srcs]] = np.nan
        # Outside each file: NaN (the tiles above covered the part inside it).
        for out_arr, shape in zip(dates, self._shapes, strict=True):
            rows = (min(max(-fr0, 0), h), max(min(shape[0] - fr0, h), 0))
            cols = (min(max(-fc0, 0), w), max(min(shape[1] - fc0, w), 0))
            out_arr[:, : rows[0]] = np.nan
            out_arr[:, max(rows[1], rows[0]) :] = np.nan
            out_arr[:, :, : cols[0]] = np.nan
            out_arr[:, :, max(cols[1], cols[0]) :] = np.nan
        apply_offsets(dates[0], self._src.before.offsets)  # type: ignore[attr-defined]
        apply_offsets(dates[1], self._src.after.offsets)  # type: ignore[attr-defined]
        with self._lock:
            for t in tiles:
                self._uses[t] -= 1
                if self._uses[t] <= 0:
                    self._cache.pop(t, None)
        return Pair(dates[0], dates[1], valids[0], valids[1])

    def close(self) -> None:
        """Stop the decoding threads and close every dataset handle."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        for ds in self._handles:
            ds.close()
        self._cache.clear()

    def __enter__(self) -> TileReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
