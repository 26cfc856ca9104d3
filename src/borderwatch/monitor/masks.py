"""Per-pixel state codes of one date on the monitor's analysis grid.

0-3 are the clear-sky mask codes of :mod:`borderwatch.masks` (which finds and reads a
date's mask: a user mask raster from the stack's ``mask`` column, Sentinel-2 SCL,
Landsat QA_PIXEL, or s2cloudless); the monitor adds the two states that come from
the image itself (:data:`NODATA`, :data:`NO_IMAGERY`).
"""

from __future__ import annotations

from borderwatch.masks import MASK_CLEAR, MASK_CLOUD, MASK_SHADOW, MASK_SNOW

__all__ = ["CLEAR", "CLOUD", "MASK_NAMES", "NODATA", "NO_IMAGERY", "SHADOW", "SNOW"]

#: Per-pixel state codes of a date on the grid (uint8).
CLEAR, CLOUD, SHADOW, SNOW = MASK_CLEAR, MASK_CLOUD, MASK_SHADOW, MASK_SNOW
NODATA, NO_IMAGERY = 4, 5
#: Name of each masked code.
MASK_NAMES = {CLOUD: "cloud", SHADOW: "shadow", SNOW: "snow"}
