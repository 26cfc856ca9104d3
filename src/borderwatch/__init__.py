"""borderwatch: find and document new construction in satellite imagery.

Stages, each a module with a small public API: :mod:`borderwatch.aoi` (areas of
interest), :mod:`borderwatch.io` (tile loader), :mod:`borderwatch.change`
(vectorised change core), :mod:`borderwatch.objects` (masks to polygons) and
:mod:`borderwatch.export` (GeoJSON and reports). :mod:`borderwatch.pipeline`
chains them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
