"""borderwatch: find and document new construction in satellite imagery.

The public API: :func:`detect` (the one engine, :mod:`borderwatch.engine`) with its
:class:`DetectParams` and result :class:`DetectionRun`, :func:`get_aoi` (the AOI
catalogue, :mod:`borderwatch.aoi`) and :func:`open_date` (the tile loader,
:mod:`borderwatch.io`). Methods are in :mod:`borderwatch.methods`, products in
:mod:`borderwatch.products.write`, evaluation in :mod:`borderwatch.evaluation.metrics`.
"""

from __future__ import annotations

__version__ = "0.1.0"

from borderwatch.aoi import get_aoi  # noqa: E402
from borderwatch.engine import DetectionRun, DetectParams, detect  # noqa: E402
from borderwatch.io import open_date  # noqa: E402

__all__ = ["DetectParams", "DetectionRun", "__version__", "detect", "get_aoi", "open_date"]
