"""The clear-sky mask of one date on the analysis grid.

One small function, :func:`date_mask`, so the monitor does not depend on how a mask is
found: it uses :mod:`borderwatch.masks` (SCL, QA_PIXEL, user rasters, s2cloudless) when
that module is installed, and otherwise reads the stack's ``mask`` raster itself.

A user mask raster: 0 is clear; 1, 2 and 3 are cloud, shadow and snow (the codes of
:mod:`borderwatch.masks`); any other nonzero value is cloud. It is read nearest onto the
grid; grid pixels outside the mask raster are clear (the image's own valid mask still
applies).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import numpy as np
import rasterio
import rasterio.warp
from rasterio.enums import Resampling

from borderwatch.errors import RasterReadError
from borderwatch.io import Grid, open_raster

__all__ = ["CLEAR", "CLOUD", "MASK_NAMES", "NODATA", "NO_IMAGERY", "SHADOW", "SNOW", "date_mask"]

#: Per-pixel state codes of a date on the grid (uint8). 0-3 are the mask codes of
#: :mod:`borderwatch.masks`; 4 and 5 come from the image itself.
CLEAR, CLOUD, SHADOW, SNOW, NODATA, NO_IMAGERY = 0, 1, 2, 3, 4, 5
#: Name of each masked code.
MASK_NAMES = {CLOUD: "cloud", SHADOW: "shadow", SNOW: "snow"}


def _masks_module():  # noqa: ANN202 - optional module
    try:
        return importlib.import_module("borderwatch.masks")
    except ImportError:
        return None


def _user_mask(path: str, grid: Grid) -> np.ndarray:
    out = np.zeros(grid.shape, np.uint8)
    with open_raster(path) as src:
        try:
            raw = src.read(1)
        except rasterio.errors.RasterioIOError as exc:
            raise RasterReadError(f"{path}: cannot decode the mask raster ({exc})") from exc
        codes = np.where(raw == 0, CLEAR, np.where(np.isin(raw, (1, 2, 3)), raw, CLOUD))
        rasterio.warp.reproject(
            codes.astype(np.uint8),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            resampling=Resampling.nearest,
        )
    return out


def date_mask(
    paths: Sequence[str], grid: Grid, *, user_mask: str | None, band_names: Sequence[str] = ()
) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """Mask codes of one date on ``grid`` (a block's sub-grid).

    Returns
    -------
    codes : numpy.ndarray
        ``uint8 (rows, cols)``: :data:`CLEAR`, :data:`CLOUD`, :data:`SHADOW`, :data:`SNOW`.
    kind : str
        The mask used: ``"user"``, ``"scl"``, ``"qa_pixel"``, ``"s2cloudless"`` or ``"none"``.
    mask_paths : tuple of str
        The files the mask was read from.
    """
    masks = _masks_module()
    if masks is not None:
        spec = masks.find_mask(list(paths), user_mask=user_mask, band_names=list(band_names))
        return np.asarray(masks.read_mask(spec, grid), np.uint8), spec.kind, tuple(spec.paths)
    if user_mask is None:
        return np.zeros(grid.shape, np.uint8), "none", ()
    return _user_mask(user_mask, grid), "user", (user_mask,)
