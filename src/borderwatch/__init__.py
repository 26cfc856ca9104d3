"""borderwatch: find and document new construction in satellite imagery.

The public API: :func:`detect` (the one engine, :mod:`borderwatch.engine`) with its
:class:`DetectParams` and result :class:`DetectionRun`, :func:`get_aoi` (the AOI
catalogue, :mod:`borderwatch.aoi`) and :func:`open_date` (the tile loader,
:mod:`borderwatch.io`). Methods are in :mod:`borderwatch.methods`, objects in
:mod:`borderwatch.objects`, products in :mod:`borderwatch.products`, evaluation in
:mod:`borderwatch.evaluation`.

The names are imported on first use, so ``import borderwatch`` (and every CLI command
that does not detect) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["DetectParams", "DetectionRun", "__version__", "detect", "get_aoi", "open_date"]

_WHERE = {
    "DetectParams": "borderwatch.engine",
    "DetectionRun": "borderwatch.engine",
    "detect": "borderwatch.engine",
    "get_aoi": "borderwatch.aoi",
    "open_date": "borderwatch.io",
}

if TYPE_CHECKING:
    from borderwatch.aoi import get_aoi
    from borderwatch.engine import DetectionRun, DetectParams, detect
    from borderwatch.io import open_date


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'borderwatch' has no attribute {name!r}")
