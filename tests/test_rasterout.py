"""Streaming Cloud Optimized GeoTIFF writer (issue 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from borderwatch.errors import OutputExistsError
from borderwatch.io import Grid
from borderwatch.products.rasterout import cog_writer

GRID = Grid(CRS.from_epsg(32652), Affine(2.0, 0, 500000.0, 0, -2.0, 4720000.0), (1300, 1100))


def _blocks(shape: tuple[int, int], size: int):
    for r in range(0, shape[0], size):
        for c in range(0, shape[1], size):
            yield (r, c, min(size, shape[0] - r), min(size, shape[1] - c))


def test_blocks_in_any_order_make_a_valid_cog(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(0, 1, GRID.shape).astype(np.float32)
    truth[:40, :40] = np.nan
    out = tmp_path / "score.tif"
    wins = list(_blocks(GRID.shape, 300))[::-1]  # reversed: order must not matter
    with cog_writer(out, GRID, dtype="float32", nodata=float("nan"), resampling="average") as w:
        for r, c, h, wd in wins:
            w.write(truth[r : r + h, c : c + wd], (r, c, h, wd))
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), truth)
        assert ds.crs == GRID.crs and ds.transform == GRID.transform
        assert ds.profile["tiled"] and ds.block_shapes[0] == (512, 512)
        assert ds.compression.name.lower() == "deflate"
        assert ds.overviews(1), "COG must carry internal overviews"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["score.tif"]  # no scratch left


def test_existing_output_and_failure_leave_nothing_half_written(tmp_path: Path) -> None:
    out = tmp_path / "mask.tif"
    out.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError):
        with cog_writer(out, GRID, dtype="uint8"):
            pass
    assert out.read_bytes() == b"keep me"
    with pytest.raises(RuntimeError):
        with cog_writer(out, GRID, dtype="uint8", overwrite=True) as w:
            w.write(np.ones((10, 10), np.uint8), (0, 0, 10, 10))
            raise RuntimeError("boom")
    assert out.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif"]
