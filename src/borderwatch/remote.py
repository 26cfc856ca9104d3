"""Remote rasters over http(s): GDAL settings, and provenance without a download.

A date may be a Cloud Optimized GeoTIFF on a web server, given by its ``http://`` or
``https://`` URL. rasterio opens it through GDAL's ``/vsicurl/`` file system, which
fetches only the byte ranges a read needs (the header, then the internal tiles of the
windows read). Nothing here reaches the network unless such a URL is given: a local
path never goes through this module's network code.

:func:`remote_env` holds the GDAL settings for remote reads (no directory listing of
the server, no probe for side-car files, retries on transient HTTP errors) for the
duration of a run; :func:`input_sha256` hashes a local file whole, as before, and a
remote file by the pixels of the window the run reads (:func:`window_record`), so a
remote file is never downloaded to be hashed.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import rasterio
import rasterio.errors
import rasterio.windows

from borderwatch.errors import RasterReadError

if TYPE_CHECKING:  # io imports this module
    from borderwatch.io import Grid

__all__ = [
    "REMOTE_GDAL_CONFIG",
    "WINDOW_SHA256_OF",
    "head_info",
    "input_sha256",
    "is_url",
    "remote_env",
    "url_name",
    "window_record",
    "window_strips",
]

#: GDAL configuration while remote files are read (see GDAL's "Configuration options"
#: and "/vsicurl/" pages): no directory listing on open (one request fewer, and no
#: ``.aux.xml``/``.ovr`` side-car probes), only raster extensions fetched, retries on
#: 429/5xx with a delay, a bounded wait, consecutive ranges merged into one request,
#: the tiles of a window fetched one range after another (``SERIAL``: they then go
#: through GDAL's cache of fetched ranges, so the blocks' repeated reads of a window
#: are not fetched again; the parallel default fetched the same tiles for every read,
#: 40 times the bytes on the test's COGs) and GDAL's in-memory cache of fetched ranges.
REMOTE_GDAL_CONFIG: dict[str, str] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.JP2,.vrt",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_TIMEOUT": "60",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIRANGE": "SERIAL",
    "VSI_CACHE": "TRUE",
}

#: What the ``sha256`` of a remote input is of (stated in the provenance).
WINDOW_SHA256_OF = (
    "decoded pixels of the window read, in strips of the file's block height from the "
    "top: for each strip, rasterio read(window=strip) of every band in the file's data "
    "type, C order (band, row, col)"
)


def is_url(path: object) -> bool:
    """Whether ``path`` is an ``http://`` or ``https://`` URL (a remote raster)."""
    return isinstance(path, str) and path.lower().startswith(("http://", "https://"))


def url_name(url: str) -> str:
    """Return the last segment of a URL's path (``before.tif``), for messages and redaction."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def remote_env(paths: Iterable[object]) -> contextlib.AbstractContextManager[Any]:
    """GDAL settings for remote reads while a run lasts, if any of ``paths`` is a URL.

    Returns :data:`REMOTE_GDAL_CONFIG` as a ``rasterio.Env`` when a URL is among
    ``paths`` (any nesting of lists/tuples, or DateSources), else a context that
    changes nothing.
    """
    if any(is_url(p) for p in _flat(paths)):
        return rasterio.Env(**REMOTE_GDAL_CONFIG)
    return contextlib.nullcontext()


def _flat(items: Iterable[object]) -> Iterator[object]:
    for item in items:
        paths = getattr(item, "paths", None)  # a DateSource
        if isinstance(paths, tuple):
            yield from paths
        elif isinstance(item, (list, tuple)):
            yield from _flat(item)
        else:
            yield item


@functools.lru_cache(maxsize=256)
def head_info(url: str) -> dict[str, Any]:
    """Size, ``ETag`` and ``Last-Modified`` of a remote file, from one HTTP ``HEAD``.

    Returns
    -------
    dict
        ``{"bytes": int or None, "etag": str or None, "last_modified": str or None}``;
        all None when the server refuses ``HEAD`` (recorded as unknown, not an error:
        the pixel hash still identifies what was read).
    """
    req = urllib.request.Request(url, method="HEAD")  # noqa: S310 - only the user's URL
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            headers = resp.headers
    except (urllib.error.URLError, OSError, ValueError):
        return {"bytes": None, "etag": None, "last_modified": None}
    size = headers.get("Content-Length")
    return {
        "bytes": int(size) if size and size.isdigit() else None,
        "etag": headers.get("ETag"),
        "last_modified": headers.get("Last-Modified"),
    }


def window_record(
    url: str, grid: Grid, *, sha256: str | None = None, hash_pixels: bool = True
) -> dict[str, Any]:
    """Provenance of a remote file: URL, HEAD fields, the window read and its pixel hash.

    The window is the file's pixels under ``grid`` (:func:`borderwatch.io.source_window`,
    the window the reads cover); its pixels are read in strips of the file's block
    height (:func:`window_strips`), so memory stays one strip and only the internal
    tiles under the window are requested, each once. Anyone with the file can
    recompute ``sha256`` by hashing ``src.read(window=strip).tobytes()`` for each
    strip of :func:`window_strips` in turn.

    Parameters
    ----------
    url : str
        The remote file.
    grid : Grid
        The analysis grid.
    sha256 : str, optional
        The hash already computed for this run (then no pixel is read again).
    hash_pixels : bool
        Without ``sha256``, read and hash the window's pixels (else ``sha256`` is None).

    Returns
    -------
    dict
        ``path`` and ``url`` (the URL), ``name``, ``bytes``, ``etag``, ``last_modified`` (from
        :func:`head_info`), ``window`` (``[col_off, row_off, width, height]`` in file
        pixels, or None when the grid misses the file), ``sha256`` and ``sha256_of``
        (:data:`WINDOW_SHA256_OF`).

    Raises
    ------
    RasterReadError
        The file cannot be opened or its pixels decoded.
    """
    from borderwatch.io import source_window  # io imports this module

    digest = hashlib.sha256()
    with remote_env([url]):
        try:
            with rasterio.open(url) as src:
                win = source_window(src, grid)
                if win is not None and sha256 is None and hash_pixels:
                    for strip in window_strips(win, int(src.block_shapes[0][0])):
                        digest.update(src.read(window=strip).tobytes())
        except rasterio.errors.RasterioError as exc:
            raise RasterReadError(f"{url}: cannot read pixels ({exc})") from exc
    return {
        "path": url,
        "url": url,
        "name": url_name(url),
        **head_info(url),
        "window": None
        if win is None
        else [int(win.col_off), int(win.row_off), int(win.width), int(win.height)],
        "sha256": sha256 or (digest.hexdigest() if hash_pixels else None),
        "sha256_of": WINDOW_SHA256_OF,
    }


def window_strips(
    window: rasterio.windows.Window, block_rows: int
) -> list[rasterio.windows.Window]:
    """``window`` cut into strips of ``block_rows`` rows (the last one shorter), from the top."""
    step = max(block_rows, 1)
    r0, r1 = int(window.row_off), int(window.row_off + window.height)
    return [
        rasterio.windows.Window(window.col_off, row, window.width, min(step, r1 - row))
        for row in range(r0, r1, step)
    ]


def input_sha256(path: str | os.PathLike[str], grid: Grid) -> str:
    """SHA-256 of an input: the whole file when local, the window read when remote.

    See :func:`window_record` for a remote file; a local file is hashed whole
    (:func:`borderwatch.products.export.sha256_file`), as every run has.
    """
    if is_url(path):
        return str(window_record(str(path), grid)["sha256"])
    from borderwatch.products.export import sha256_file  # products import io

    return sha256_file(path)
