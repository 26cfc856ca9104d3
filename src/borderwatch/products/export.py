"""Exporters: RFC 7946 GeoJSON with run metadata, written atomically.

Every writer goes through :func:`atomic_write`: the output is written to a temporary
name in the destination folder and renamed into place only when complete, so a
failure never leaves a half-written file, and an existing file is only replaced
when ``overwrite=True``. A folder of outputs (an evidence packet) goes through
:func:`atomic_folder` the same way. Temporary names carry the writer's process id;
one left by a killed run is removed by the next run writing to that destination.
Write failures (read-only folder, full disk, GDAL errors) become one
:class:`~borderwatch.errors.OutputWriteError` naming the output.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import io
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pyogrio

from borderwatch.errors import BorderwatchError, InputError, OutputExistsError, OutputWriteError

if TYPE_CHECKING:
    from borderwatch.io import Grid

__all__ = [
    "atomic_folder",
    "atomic_write",
    "check_folder_writable",
    "check_replaceable",
    "check_sign_key_outside",
    "check_writable",
    "lies_in",
    "remove_stale",
    "sha256_file",
    "to_rfc7946",
    "write_float_raster",
    "write_geojson",
]

#: Decimals of GeoJSON coordinates in degrees (1e-7 degree is about 1 cm): what GDAL
#: writes with ``RFC7946=YES``.
COORD_DECIMALS = 7


def check_folder_writable(folder: str | os.PathLike[str], *, output: Path) -> None:
    """Fail early if ``folder`` (where ``output`` goes) is missing, read-only or not writable.

    Raises
    ------
    OutputExistsError
        ``folder`` does not exist.
    OutputWriteError
        ``folder`` is not a folder, lies on a read-only file system or may not be written.
    """
    d = Path(folder)
    if not d.exists():
        raise OutputExistsError(f"{output}: folder {d} does not exist")
    if not d.is_dir():
        raise OutputWriteError(f"{output}: {d} is not a folder")
    if os.statvfs(d).f_flag & os.ST_RDONLY:
        raise OutputWriteError(f"{output}: folder {d} is on a read-only file system")
    if not os.access(d, os.W_OK | os.X_OK):
        raise OutputWriteError(f"{output}: folder {d} is not writable")
    # os.access can say yes where creating a file fails (/proc, some network and FUSE
    # mounts, SELinux): create and remove one. Named as atomic_write's temporaries, so a
    # probe left by a killed run is removed by remove_stale.
    try:
        fd, probe = tempfile.mkstemp(
            prefix=f".{output.name}.pid-{os.getpid()}-", suffix=".part", dir=d
        )
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise OutputWriteError(f"{output}: cannot create a file in folder {d} ({why})") from exc


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Fail early if ``path`` exists and may not be replaced, or its folder is unusable.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False, or its folder is missing.
    OutputWriteError
        Its folder is read-only or not writable.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p}: output exists; pass --overwrite to replace it")
    check_folder_writable(p.parent, output=p)
    return p


def _write_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean an output could not be written (OS, SQLite, GDAL)."""
    import rasterio.errors

    return (
        OSError,
        sqlite3.Error,  # the GeoPackage's style table is written with sqlite3
        pyogrio.errors.DataSourceError,
        pyogrio.errors.DataLayerError,
        rasterio.errors.RasterioError,
    )


#: Free space under which a write error of GDAL or SQLite is reported as a full disk
#: (their messages often say only "Failed to commit transaction"), bytes.
_FULL_DISK_BYTES = 1 << 20


def _disk_full(folder: Path, exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    try:
        return shutil.disk_usage(folder).free < _FULL_DISK_BYTES
    except OSError:
        return False


def _write_error(dest: Path, exc: BaseException) -> OutputWriteError:
    if _disk_full(dest.parent, exc):
        why = "disk full"
    elif isinstance(exc, OSError) and exc.errno == errno.EROFS:
        why = "read-only file system"
    elif isinstance(exc, OSError) and exc.strerror:
        why = exc.strerror
    else:
        why = " ".join(str(exc).split()) or type(exc).__name__
    return OutputWriteError(f"{dest}: cannot write ({why}); nothing was left behind")


def _writer_gone(temp: Path, dest: Path) -> bool:
    """Tell whether ``temp`` (``.<name>.<kind>-<pid>-...``) was left by a process now gone."""
    try:
        pid = int(temp.name[len(dest.name) + 2 :].split("-")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def remove_stale(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files and folders that killed runs left beside ``path``.

    These are ``.<name>.pid-<pid>-*.part*`` files and ``.<name>.partial-<pid>-*`` and
    ``.<name>.old-<pid>-*`` folders whose process ``<pid>`` is gone.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    dest = Path(path)
    if not dest.parent.is_dir():
        return []
    gone = []
    name = glob.escape(dest.name)
    for pattern in (f".{name}.pid-*.part*", f".{name}.partial-*", f".{name}.old-*"):
        for p in dest.parent.glob(pattern):
            if not _writer_gone(p, dest):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(p)
    return gone


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary file is removed if the block raises, so nothing half-written stays;
    an OS or GDAL write error in the block becomes an :class:`OutputWriteError`.
    """
    dest = check_writable(path, overwrite=overwrite)
    remove_stale(dest)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dest.name}.pid-{os.getpid()}-", suffix=".part", dir=dest.parent
        )
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give outputs the usual permissions (umask applied).
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        if dest.exists() and not overwrite:
            raise OutputExistsError(f"{dest}: output appeared while writing; not replaced")
        os.replace(tmp_path, dest)
    except BorderwatchError:
        raise
    except _write_errors() as exc:
        raise _write_error(dest, exc) from exc
    finally:
        # The temporary file and GDAL's side files (SQLite -journal) beside it.
        for p in tmp_path.parent.glob(f"{glob.escape(tmp_path.name)}*"):
            p.unlink(missing_ok=True)


def lies_in(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> bool:
    """Tell whether ``path`` lies in ``folder`` (absolute, normalised paths; links not followed)."""
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def check_sign_key_outside(
    sign_key_file: str | os.PathLike[str], evidence: str | os.PathLike[str]
) -> None:
    """Refuse a private key file inside the evidence folder (published, or replaced).

    Raises
    ------
    InputError
        ``sign_key_file`` lies in ``evidence`` (by its path as given, or with links resolved).
    """
    key, root = Path(sign_key_file), Path(evidence)
    if lies_in(key, root) or key.resolve().is_relative_to(root.resolve()):
        raise InputError(
            f"{key}: the signing key lies in the evidence folder {root}; "
            "keep the private key outside the packet"
        )


def check_folder(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Fail early if the output folder ``path`` may not be written.

    ``path`` may be missing (its parents are created when it is written) or an empty
    folder; a non-empty one only with ``overwrite``, and only when it is a borderwatch
    packet that holds nothing but its listed files (:func:`check_replaceable`).

    Raises
    ------
    OutputExistsError
        ``path`` is a file, a non-empty folder and ``overwrite`` is False, or a folder
        ``overwrite`` may not replace.
    OutputWriteError
        The nearest existing folder above it is read-only or not writable.
    """
    root = Path(path)
    if root.is_symlink():
        raise OutputExistsError(f"{root}: is a symbolic link; give the folder it points to")
    if root.exists() and not root.is_dir():
        raise OutputExistsError(f"{root}: exists and is not a folder")
    if root.exists() and not overwrite and any(root.iterdir()):
        raise OutputExistsError(f"{root}: folder exists and is not empty; pass --overwrite")
    if root.exists() and overwrite:
        check_replaceable(root)
    parent = root.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    check_folder_writable(parent, output=root)
    return root


#: Unlisted files a refusal of :func:`check_replaceable` names.
_SHOW_UNLISTED = 3


def check_replaceable(folder: str | os.PathLike[str]) -> None:
    """Fail unless ``folder`` is empty or a packet whose every file its manifest lists.

    ``--overwrite`` replaces a whole folder, so it may only replace one that holds
    nothing else: an empty folder, or a borderwatch packet whose files are all listed
    in its ``manifest.json`` (besides the manifest, its signature, time-stamp files and
    custody log; :func:`borderwatch.products.manifest.unlisted_files`).

    Raises
    ------
    OutputExistsError
        ``folder`` holds files that are not part of such a packet (the first few named).
    """
    # manifest imports this module for atomic_write and sha256_file.
    from borderwatch.products.manifest import MANIFEST_NAME, unlisted_files

    root = Path(folder)
    unlisted = unlisted_files(root)
    if not unlisted:
        return
    shown = ", ".join(unlisted[:_SHOW_UNLISTED])
    more = len(unlisted) - _SHOW_UNLISTED
    shown += f" and {more} more" if more > 0 else ""
    raise OutputExistsError(
        f"{root}: --overwrite replaces only an empty folder or a borderwatch packet, and "
        f"this folder holds files its {MANIFEST_NAME} does not list: {shown}; "
        "move them away or choose another folder"
    )


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a new temporary folder beside ``path``; rename it to ``path`` on success.

    The folder is ``.<name>.partial-<pid>-<random>`` in the same parent (so the rename
    is atomic); an existing ``path`` is replaced only once the new folder is complete.
    If the block raises, or the process is killed, ``path`` is untouched (a killed
    run's folder is removed by the next run at ``path``). An existing ``path`` must be
    one :func:`check_replaceable` allows, both before and after the block.

    Raises
    ------
    OutputExistsError
        See :func:`check_folder`.
    OutputWriteError
        A file could not be written (the message names ``path``).
    """
    dest = check_folder(path, overwrite=overwrite)
    try:
        dest.absolute().parent.mkdir(parents=True, exist_ok=True)
        remove_stale(dest)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-{os.getpid()}-", dir=dest.parent))
    except OSError as exc:
        raise _write_error(dest, exc) from exc
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    old: Path | None = None
    try:
        yield tmp
        if dest.exists() and not overwrite and any(dest.iterdir()):
            raise OutputExistsError(f"{dest}: folder appeared while writing; not replaced")
        if dest.exists():
            check_replaceable(dest)  # again: files may have been added while writing
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-{os.getpid()}-", dir=dest.parent))
            os.replace(dest, old / dest.name)
        os.replace(tmp, dest)
    except OutputWriteError as exc:  # name the destination, not the temporary folder
        raise OutputWriteError(str(exc).replace(str(tmp), str(dest))) from exc
    except BorderwatchError:
        raise
    except _write_errors() as exc:
        raise _write_error(dest, exc) from exc
    finally:
        if old is not None:
            if not dest.exists() and (old / dest.name).exists():
                os.replace(old / dest.name, dest)  # stopped between the renames: put it back
            shutil.rmtree(old, ignore_errors=True)
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes.

    Streams the file through :func:`hashlib.file_digest` (one small reused buffer, so
    hashing beside the blocks adds almost nothing to their memory budget; hashlib
    releases the GIL while it hashes). As fast as the hand-written ``readinto`` loop
    it replaced: about 0.43 CPU-s for 500 MB from the page cache, either way
    (``benchmarks/results/library_swaps.md``).

    Parameters
    ----------
    path : path
        File to hash.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    # Unbuffered: file_digest reads straight into its own buffer with readinto.
    with open(path, "rb", buffering=0) as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


#: Oldest GDAL whose GeoJSON driver writes foreign members (``FOREIGN_MEMBERS_*``).
MIN_GDAL = (3, 9, 0)


def _json_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return None if not np.isfinite(f) else f
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (np.datetime64,)):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _lonlat(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``gdf`` in EPSG:4326, reprojected by pyproj, with non-finite floats as NaN.

    GDAL skips a non-finite number (with a warning) instead of writing ``null``.
    """
    if gdf.crs is None and len(gdf):
        raise InputError("cannot write GeoJSON: the layer has no CRS")
    g = gdf.to_crs("EPSG:4326") if gdf.crs is not None else gdf.set_crs("EPSG:4326")
    for name in g.columns:
        col = g[name]
        if name != g.geometry.name and col.dtype.kind == "f" and np.isinf(col.to_numpy()).any():
            g = g.assign(**{name: col.where(np.isfinite(col.to_numpy()))})
    return g


def _layer_options(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """GDAL GeoJSON layer creation options of :func:`write_geojson`."""
    # RFC7946=YES rounds to COORD_DECIMALS (7) by default. Passing COORDINATE_PRECISION
    # would add GDAL's own "xy_coordinate_resolution" member; WRITE_NAME=NO leaves out
    # the layer's "name" member.
    options = {"RFC7946": "YES", "WRITE_NAME": "NO"}
    if metadata is not None:
        if pyogrio.__gdal_version__ < MIN_GDAL:
            need = ".".join(map(str, MIN_GDAL))
            raise BorderwatchError(
                f"cannot store run metadata in GeoJSON: pyogrio uses GDAL "
                f"{pyogrio.__gdal_version_string__}, needs >= {need} (pyogrio >= 0.10 wheels)"
            )
        member = {"borderwatch": metadata}
        options["FOREIGN_MEMBERS_COLLECTION"] = json.dumps(
            member, default=_json_value, ensure_ascii=False
        )
    return options


def _write_gdal(
    gdf: gpd.GeoDataFrame, dest: str | io.BytesIO, metadata: Mapping[str, Any] | None
) -> None:
    pyogrio.write_dataframe(
        _lonlat(gdf),
        dest,
        driver="GeoJSON",
        promote_to_multi=False,
        layer_options=_layer_options(metadata),
    )


def to_rfc7946(
    gdf: gpd.GeoDataFrame, *, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build an RFC 7946 FeatureCollection from a GeoDataFrame.

    The same document :func:`write_geojson` writes, parsed: geometries reprojected to
    EPSG:4326 (lon, lat), polygon exteriors counter-clockwise (holes clockwise),
    coordinates rounded to :data:`COORD_DECIMALS` decimals (about 1 cm), NaN and
    infinite numbers ``null``; ``metadata`` is the foreign member ``"borderwatch"``.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Any CRS; must have one unless empty.
    metadata : mapping, optional
        JSON-serialisable run metadata (numpy scalars and dates are converted).

    Returns
    -------
    dict
        A GeoJSON FeatureCollection.

    Raises
    ------
    InputError
        ``gdf`` has rows but no CRS.
    """
    buf = io.BytesIO()
    _write_gdal(gdf, buf, metadata)
    return json.loads(buf.getvalue())


def write_geojson(
    gdf: gpd.GeoDataFrame,
    path: str | os.PathLike[str],
    *,
    metadata: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``gdf`` as RFC 7946 GeoJSON, atomically.

    GDAL's GeoJSON driver writes the file (``RFC7946=YES``): EPSG:4326 lon/lat,
    counter-clockwise exteriors, :data:`COORD_DECIMALS` decimals, every column a
    property (an ``id`` column too), NaN ``null``. The layer is reprojected with
    pyproj first, as :meth:`geopandas.GeoDataFrame.to_crs` does.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        Detections (any projected or geographic CRS; none only when empty).
    path : path
        Output ``.geojson`` file.
    metadata : mapping, optional
        Run metadata stored as the foreign member ``"borderwatch"`` of the
        FeatureCollection (GDAL's ``FOREIGN_MEMBERS_COLLECTION``; needs GDAL >= 3.9).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    InputError
        ``gdf`` has rows but no CRS.
    BorderwatchError
        ``metadata`` given and pyogrio's GDAL is older than 3.9.
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    with atomic_write(path, overwrite=overwrite) as tmp:
        _write_gdal(gdf, str(tmp), metadata)
    return Path(path)


def write_float_raster(
    path: str | os.PathLike[str],
    data: np.ndarray,
    grid: Grid,
    *,
    band_names: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``float32 (bands, rows, cols)`` values on ``grid`` as a DEFLATE GeoTIFF, atomically.

    NaN is the nodata value; ``band_names`` become the band descriptions and ``tags``
    dataset tags (e.g. ``ACQUISITION_DATE``).
    """
    import rasterio

    profile = {
        "driver": "GTiff",
        "width": grid.shape[1],
        "height": grid.shape[0],
        "count": data.shape[0],
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": float("nan"),
        "compress": "deflate",
    }
    with atomic_write(path, overwrite=overwrite) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(data.astype(np.float32, copy=False))
            if band_names:
                dst.descriptions = tuple(band_names)
            if tags:
                dst.update_tags(**tags)
    return Path(path)
