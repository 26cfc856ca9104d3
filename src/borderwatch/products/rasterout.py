"""Change rasters as Cloud Optimized GeoTIFFs, written block by block.

:func:`cog_writer` yields a writer that accepts blocks in any order. Blocks go to an
uncompressed, tiled scratch GeoTIFF next to the destination; on success GDAL's COG
driver copies it into a tiled (512 px), DEFLATE-compressed COG with internal
overviews, under a temporary name that is then renamed into place
(:func:`borderwatch.products.export.atomic_write`). Nothing but one block and GDAL's
bounded cache is held in memory; a failure leaves no partial output.

References
----------
.. [1] Cloud Optimized GeoTIFF specification, OGC 21-026 (2023).
   https://docs.ogc.org/is/21-026/21-026.html
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import rasterio.shutil
import rasterio.windows

from borderwatch.engine.read import GDAL_CACHE_BYTES
from borderwatch.errors import InputError
from borderwatch.io import Grid
from borderwatch.products.export import atomic_write

__all__ = ["COG_OPTIONS", "CogWriter", "cog_writer"]

#: Creation options of the final COG (GDAL COG driver).
COG_OPTIONS = {
    "BLOCKSIZE": "512",
    "COMPRESS": "DEFLATE",
    "PREDICTOR": "YES",
    "LEVEL": "6",
    "BIGTIFF": "IF_SAFER",
    "NUM_THREADS": "ALL_CPUS",
    "OVERVIEWS": "AUTO",
}


@dataclass(frozen=True)
class CogWriter:
    """Accepts blocks of one band; see :func:`cog_writer`."""

    dataset: rasterio.io.DatasetWriter
    grid: Grid

    def write(self, block: np.ndarray, window: tuple[int, int, int, int]) -> None:
        """Write ``block`` (``(rows, cols)``) at ``window = (row0, col0, rows, cols)``."""
        r0, c0, h, w = window
        if block.shape != (h, w):
            raise InputError(f"block {block.shape} does not match window {(h, w)}")
        if r0 < 0 or c0 < 0 or r0 + h > self.grid.shape[0] or c0 + w > self.grid.shape[1]:
            raise InputError(f"window {window} lies outside the grid {self.grid.shape}")
        self.dataset.write(
            block.astype(self.dataset.dtypes[0], copy=False),
            1,
            window=rasterio.windows.Window(c0, r0, w, h),
        )


@contextlib.contextmanager
def cog_writer(
    path: str | os.PathLike[str],
    grid: Grid,
    *,
    dtype: str = "float32",
    nodata: float | None = None,
    resampling: Literal["nearest", "average", "mode"] = "nearest",
    overwrite: bool = False,
) -> Iterator[CogWriter]:
    """Stream blocks into a single-band Cloud Optimized GeoTIFF on ``grid``.

    Parameters
    ----------
    path : path
        Destination ``.tif``.
    grid : Grid
        Grid of the raster (its CRS and transform are written).
    dtype : str
        Pixel type, e.g. ``"float32"`` for scores, ``"uint8"`` for masks.
    nodata : float, optional
        Nodata value (NaN allowed for float types).
    resampling : str
        Overview resampling: ``"average"`` for scores, ``"nearest"`` for masks.
    overwrite : bool
        Replace an existing file.

    Yields
    ------
    CogWriter
        Call ``write(block, (row0, col0, rows, cols))`` for every block.

    Raises
    ------
    OutputExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    dest = Path(path)
    with atomic_write(dest, overwrite=overwrite) as tmp:
        scratch = tmp.with_name(tmp.name + ".scratch.tif")
        profile = {
            "driver": "GTiff",
            "width": grid.shape[1],
            "height": grid.shape[0],
            "count": 1,
            "dtype": dtype,
            "crs": grid.crs,
            "transform": grid.transform,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": 512,
            "blockysize": 512,
            "BIGTIFF": "IF_SAFER",
            "SPARSE_OK": "TRUE",
        }
        try:
            with (
                rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
                rasterio.open(scratch, "w", **profile) as ds,
            ):
                yield CogWriter(ds, grid)
            with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES):
                rasterio.shutil.copy(
                    scratch,
                    tmp,
                    driver="COG",
                    RESAMPLING=resampling.upper(),
                    **COG_OPTIONS,
                )
        finally:
            if scratch.exists():
                scratch.unlink()
