"""The per-pixel state of one date on the analysis grid, from its clear-sky mask.

:func:`date_mask` finds and reads the date's mask through :mod:`borderwatch.masks`
(a user mask raster from the stack's ``mask`` column, Sentinel-2 SCL, Landsat
QA_PIXEL, or s2cloudless); the monitor adds the two states that come from the image
itself (:data:`NODATA`, :data:`NO_IMAGERY`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from borderwatch.io import Grid
from borderwatch.masks import MASK_CLEAR, MASK_CLOUD, MASK_SHADOW, MASK_SNOW, find_mask, read_mask

__all__ = ["CLEAR", "CLOUD", "MASK_NAMES", "NODATA", "NO_IMAGERY", "SHADOW", "SNOW", "date_mask"]

#: Per-pixel state codes of a date on the grid (uint8). 0-3 are the mask codes of
#: :mod:`borderwatch.masks`; 4 and 5 come from the image itself.
CLEAR, CLOUD, SHADOW, SNOW = MASK_CLEAR, MASK_CLOUD, MASK_SHADOW, MASK_SNOW
NODATA, NO_IMAGERY = 4, 5
#: Name of each masked code.
MASK_NAMES = {CLOUD: "cloud", SHADOW: "shadow", SNOW: "snow"}


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
    spec = find_mask(list(paths), user_mask=user_mask, band_names=list(band_names))
    return np.asarray(read_mask(spec, grid), np.uint8), spec.kind, tuple(spec.paths)
