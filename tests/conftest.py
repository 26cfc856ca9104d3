"""Shared fixtures: tiny georeferenced rasters made in tmp_path, and ../shared/data.

Every test runs with ``HOME`` and ``XDG_DATA_HOME`` in a fresh temporary folder
(:func:`isolated_home`), so nothing reads or writes the user's review store.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

UTM52_ORIGIN = Affine(1.0, 0, 500000.0, 0, -1.0, 4710000.0)  # 1 m pixels near Helong
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

#: The home folder and XDG data folder of the user running the tests, read before any
#: test changes them (for tests that check nothing was written there).
REAL_HOME = Path.home()
REAL_XDG_DATA_HOME = os.environ.get("XDG_DATA_HOME")


@pytest.fixture(autouse=True)
def isolated_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Point ``HOME`` and ``XDG_DATA_HOME`` at a new temporary folder for every test.

    The default review store (:func:`borderwatch.products.review.default_store_dir`) is then
    ``<that folder>/xdg-data/borderwatch/reviews``; ``BORDERWATCH_REVIEWS`` (the
    CLI's ``--reviews`` default) is unset. A folder of its own rather than a part of
    ``tmp_path``, so tests that list ``tmp_path`` see only their own files.

    Returns
    -------
    pathlib.Path
        The temporary home folder.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.delenv("BORDERWATCH_REVIEWS", raising=False)
    return home


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
        transform: Affine | None = UTM52_ORIGIN,
        nodata: float | None = None,
        tags: dict[str, str] | None = None,
        descriptions: tuple[str, ...] = (),
    ) -> Path:
        data = np.asarray(data)
        if data.ndim == 2:
            data = data[None]
        path = tmp_path / name  # an absolute name is kept as is
        path.parent.mkdir(parents=True, exist_ok=True)
        jp2 = path.suffix.lower() == ".jp2"  # lossless JPEG 2000, as Sentinel-2 ships
        profile = {
            "driver": "JP2OpenJPEG" if jp2 else "GTiff",
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
        if jp2:
            profile.update(REVERSIBLE="YES", QUALITY="100")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if tags:
                dst.update_tags(**tags)
            for i, d in enumerate(descriptions, start=1):
                dst.set_band_description(i, d)
        return path

    return _make


@pytest.fixture
def sample_detect_args() -> Callable[..., list[str]]:
    """Factory: ``borderwatch detect`` arguments for the sample tiles over Helong."""
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()

    def _args(out: Path, *extra: str) -> list[str]:
        return [
            "detect",
            *("--before", str(tiles / "before.tif"), "--after", str(tiles / "after.tif")),
            *("--aoi", "helong", "--out", str(out)),
            # the products' known answers are the combined score's (auto would take the
            # structure model at these tiles' 1 m; tests/test_structure.py has its own)
            *("--method", "combined"),
            *extra,
        ]

    return _args


@pytest.fixture(scope="session")
def analyst_outputs(tmp_path_factory: pytest.TempPathFactory):
    """The sample tiles run once over Helong with every analyst output written.

    The ``combined`` score (its known answers; the products are the same for any
    method). Session-scoped and shared: copy a file before changing it.
    """
    from types import SimpleNamespace

    from borderwatch.engine import DetectParams, detect
    from borderwatch.products.write import write_products
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    out = tmp_path_factory.mktemp("analyst_outputs")
    params = DetectParams(method="combined")
    run = detect(tiles / "before.tif", tiles / "after.tif", aoi="helong", params=params)
    gpkg, geojson = out / "detections.gpkg", out / "detections.geojson"
    products = write_products(run, outputs=(gpkg, geojson), evidence=out / "evidence")
    return SimpleNamespace(
        run=run,
        products=products,
        dir=out,
        gpkg=gpkg,
        geojson=geojson,
        evidence=out / "evidence",
        tiles=tiles,
    )
