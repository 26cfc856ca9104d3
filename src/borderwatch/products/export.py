"""Exporters: RFC 7946 GeoJSON with run metadata, written atomically.

Every writer goes through :func:`atomic_write`: the output is written to a temporary
name in the destination folder and renamed into place only when complete, so a
failure never leaves a half-written file, and an existing file is only replaced
when ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pyogrio

from borderwatch.errors import BorderwatchError, InputError, OutputExistsError

if TYPE_CHECKING:
    from borderwatch.io import Grid

__all__ = [
    "atomic_write",
    "check_writable",
    "sha256_file",
    "to_rfc7946",
    "write_float_raster",
    "write_geojson",
]

#: Decimals of GeoJSON coordinates in degrees (1e-7 degree is about 1 cm): what GDAL
#: writes with ``RFC7946=YES``.
COORD_DECIMALS = 7


def check_writable(path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Fail early if ``path`` exists and may not be replaced, or its folder is missing.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(f"{p}: output exists; pass --overwrite to replace it")
    if not p.parent.exists():
        raise OutputExistsError(f"{p}: folder {p.parent} does not exist")
    return p


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], *, overwrite: bool) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    The temporary file is removed if the block raises, so nothing half-written stays.
    """
    dest = check_writable(path, overwrite=overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
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
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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
