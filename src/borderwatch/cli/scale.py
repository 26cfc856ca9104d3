"""Scale options shared by ``detect`` and ``batch``: rasters out, blocks, schedulers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

__all__ = ["raster_out_options"]


def raster_out_options(fn: Any) -> Any:
    """``--score-out`` and ``--mask-out`` (Cloud Optimized GeoTIFFs)."""
    fn = click.option(
        "--mask-out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the final detections as a mask (uint8 COG, 1 = detection).",
    )(fn)
    fn = click.option(
        "--score-out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the change score (float32 COG, NaN = no data).",
    )(fn)
    return fn
