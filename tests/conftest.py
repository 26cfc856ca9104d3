"""Shared fixtures: tiny georeferenced rasters made in tmp_path, and ../shared/data."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder beside the checkout; skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip(f"../shared/data absent ({SHARED}): real-data test not run")
    return SHARED


@pytest.fixture
def make_raster(tmp_path: Path) -> Callable[..., Path]:
    """Factory: write an array (bands, rows, cols) as a GeoTIFF and return its path."""

    def _make(
        name: str,
        data: np.ndarray,
        *,
        crs: str | None = "EPSG:32652",
        transform: Affine | None = Affine(1.0, 0, 500000.0, 0, -1.0, 4710000.0),
        nodata: float | None = None,
        tags: dict[str, str] | None = None,
    ) -> Path:
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        path = tmp_path / name
        profile = {
            "driver": "GTiff",
            "height": data.shape[1],
            "width": data.shape[2],
            "count": data.shape[0],
            "dtype": data.dtype,
        }
        if crs is not None:
            profile["crs"] = crs
        if transform is not None:
            profile["transform"] = transform
        if nodata is not None:
            profile["nodata"] = nodata
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if tags:
                dst.update_tags(**tags)
        return path

    return _make
