"""The pair: :class:`SyntheticPair`, rendering it (:func:`make_pair`) and its files.

:func:`make_pair` validates the arguments, spawns the seeded random streams, renders
the ground and structures of both dates, applies the confounders (illumination and
haze, season, point-spread blur, sub-pixel shift, sensor noise) and quantises.
:func:`write_pair` writes the two GeoTIFFs and the GeoJSON truth atomically.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Final

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.crs import CRS
from scipy import ndimage

from borderwatch.errors import InputError, OutputExistsError
from borderwatch.synthetic.frame import EPSG, LAYOUT_M, Grid
from borderwatch.synthetic.ground import (
    apply_season,
    draw_illumination,
    fourier_shift,
    quantise,
    render_ground,
    smooth_noise,
)
from borderwatch.synthetic.structures import (
    EXISTING,
    new_structures,
    paint_ring,
    paint_structures,
    truth_footprints,
)

__all__ = ["BAND_NAMES", "DATES", "SyntheticPair", "make_pair", "write_pair"]

BAND_NAMES: Final = ("blue", "green", "red", "nir")
DATES: Final = ("2019-06-14", "2021-09-02")
_PSF_SIGMA_M: Final = 0.6  # Gaussian blur standing in for the sensor MTF


@dataclass(frozen=True, eq=False)
class SyntheticPair:
    """A synthetic co-registered before/after scene and its planted truth.

    Attributes
    ----------
    before, after : ndarray of uint16, shape (4, rows, cols)
        Bands in ``band_names`` order; DN about surface reflectance x 10 000.
        ``nodata`` (0) never occurs. Arrays are read-only.
    transform : affine.Affine
        North-up pixel-to-map transform in ``crs`` (metres, whole-metre origin).
    crs : rasterio.crs.CRS
        EPSG:32652 (WGS 84 / UTM zone 52N).
    truth : geopandas.GeoDataFrame
        Planted change footprints in ``crs``: ``id``, ``class`` (``"building"`` or
        ``"fence_or_wall"``), ``area_m2``, ``length_m`` (fence centreline length in
        metres, NaN for buildings) and polygon ``geometry``. Empty without changes.
    band_names : tuple of str
        ``("blue", "green", "red", "nir")``.
    dates : tuple of str
        ISO acquisition dates of before and after.
    seed : int
        Seed the pair was generated from.
    nodata : int
        Nodata value, 0.
    """

    before: NDArray[np.uint16]
    after: NDArray[np.uint16]
    transform: Affine
    crs: CRS
    truth: gpd.GeoDataFrame
    band_names: tuple[str, ...] = BAND_NAMES
    dates: tuple[str, str] = DATES
    seed: int = 0
    nodata: int = 0

    def __post_init__(self) -> None:
        for name in ("before", "after"):
            arr = getattr(self, name)
            if arr.dtype != np.uint16 or arr.ndim != 3 or arr.shape[0] != len(self.band_names):
                raise InputError(
                    f"SyntheticPair.{name} must be uint16 with shape "
                    f"({len(self.band_names)}, rows, cols); got {arr.dtype} {arr.shape}"
                )
        if self.before.shape != self.after.shape:
            raise InputError(
                f"before {self.before.shape} and after {self.after.shape} differ in shape"
            )


def make_pair(
    *,
    seed: int = 0,
    size: int = 512,
    pixel_m: float = 1.0,
    changes: bool = True,
    shift_px: tuple[float, float] = (0.35, -0.25),
    illumination: bool = True,
    season: bool = True,
    noise_sigma: float = 20.0,
    centre_lonlat: tuple[float, float] = (129.0039, 42.5403),
) -> SyntheticPair:
    """Render a deterministic synthetic before/after pair with planted construction.

    Parameters
    ----------
    seed : int, default 0
        Seed for all randomness (textures, field layout, jitter of the new
        structures by up to 4 m, confounders, noise). Same arguments, same arrays.
    size : int, default 512
        Rows and columns of the square scene, pixels.
    pixel_m : float, default 1.0
        Pixel size, metres. ``size * pixel_m`` must be at least 512 m.
    changes : bool, default True
        Plant new construction in the after date: seven new buildings (8 x 10 m to
        40 x 20 m), a 4 x 4 m watchtower and an 80 x 60 m fence ring drawn as a
        3 m strip (fence plus cleared patrol strip).
    shift_px : tuple of float, default (0.35, -0.25)
        Mis-registration of the after image, (rows, cols) pixels: content at
        (r, c) in before appears at (r + shift_px[0], c + shift_px[1]) in after.
        Applied by Fourier shift. Each component must lie within [-4, 4].
    illumination : bool, default True
        Apply a per-band gain (0.85--1.15) and haze offset to the after date.
    season : bool, default True
        Apply a smooth late-summer change to the after date: vegetation NIR and
        green lowered, red raised, bare surfaces mildly brightened.
    noise_sigma : float, default 20.0
        Standard deviation of independent Gaussian sensor noise per date, DN.
    centre_lonlat : tuple of float, default (129.0039, 42.5403)
        Scene centre as (longitude, latitude), degrees, EPSG:4326. Must fall in
        UTM zone 52N (126--132 degrees E, 0--84 degrees N).

    Returns
    -------
    SyntheticPair
        Arrays, EPSG:32652 transform and CRS, and the truth footprints.

    Raises
    ------
    InputError
        If an argument is out of range.

    Notes
    -----
    Truth polygons are the footprints as planted on the ground, in the before
    image's grid; the after image is additionally displaced by ``shift_px``.
    Building shadows (to the north-north-west) fall outside the truth polygons.

    Examples
    --------
    >>> pair = make_pair(seed=1, noise_sigma=0.0)
    >>> pair.before.shape, pair.crs.to_epsg(), len(pair.truth)
    ((4, 512, 512), 32652, 9)
    """
    size, pixel_m, shift, noise_sigma, lon, lat = validate_scene(
        size, pixel_m, shift_px, noise_sigma, centre_lonlat
    )
    extent = size * pixel_m
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{EPSG}", always_xy=True)
    cx, cy = to_utm.transform(lon, lat)
    left, top = round(cx - extent / 2), round(cy + extent / 2)
    transform = Affine(pixel_m, 0.0, left, 0.0, -pixel_m, top)
    grid = Grid(size=size, pixel_m=pixel_m, off=(extent - LAYOUT_M) / 2)

    tex_rng, layout_rng, conf_rng, nb_rng, na_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    ground, tex = render_ground(grid, tex_rng)
    new_boxes, ring, tower = new_structures(layout_rng)

    before: NDArray[np.floating] = paint_structures(ground.copy(), grid, tex, list(EXISTING))
    after: NDArray[np.floating]
    if changes:
        paint_ring(ground, grid, ring)
        after = paint_structures(ground, grid, tex, [*EXISTING, *new_boxes, tower])
    else:
        after = paint_structures(ground, grid, tex, list(EXISTING))

    gains, offsets = draw_illumination(conf_rng)
    season_field = 1.0 + 0.25 * smooth_noise(conf_rng, (size, size), 150.0 / pixel_m)
    if season:
        after = apply_season(after, season_field)

    psf = _PSF_SIGMA_M / pixel_m
    before = ndimage.gaussian_filter(before, (0, psf, psf), mode="reflect")
    after = ndimage.gaussian_filter(after, (0, psf, psf), mode="reflect")
    if shift != (0.0, 0.0):
        after = fourier_shift(after, shift)
    if illumination:
        after = after * gains[:, None, None] + offsets[:, None, None]
    if noise_sigma > 0:
        before = before + nb_rng.normal(0.0, noise_sigma, before.shape)
        after = after + na_rng.normal(0.0, noise_sigma, after.shape)

    truth = truth_footprints(
        new_boxes + [tower] if changes else [],
        ring if changes else None,
        left=left,
        top=top,
        off=grid.off,
    )
    return SyntheticPair(
        before=quantise(before),
        after=quantise(after),
        transform=transform,
        crs=CRS.from_epsg(EPSG),
        truth=truth,
        seed=seed,
    )


def write_pair(
    pair: SyntheticPair,
    out_dir: str | os.PathLike[str],
    *,
    prefix: str = "",
    overwrite: bool = False,
) -> dict[str, Path]:
    """Write a pair as two GeoTIFFs and a GeoJSON truth file, atomically.

    Parameters
    ----------
    pair : SyntheticPair
        Pair from :func:`make_pair`.
    out_dir : str or os.PathLike
        Folder to write into; created if missing.
    prefix : str, default ""
        Prepended to the file names ``before.tif``, ``after.tif``, ``truth.geojson``.
    overwrite : bool, default False
        Replace existing files instead of raising.

    Returns
    -------
    dict of str to Path
        Paths under the keys ``"before"``, ``"after"`` and ``"truth"``.

    Raises
    ------
    OutputExistsError
        If a target exists and ``overwrite`` is false.

    Notes
    -----
    GeoTIFFs: 4 bands uint16 in the pair's CRS (EPSG:32652), nodata 0, 256 x 256
    tiles, DEFLATE with horizontal predictor, band descriptions set to the band
    names, tags ``ACQUISITION_DATE`` (ISO date) and ``TIFFTAG_DATETIME``.
    ``truth.geojson`` is RFC 7946 (EPSG:4326 longitude/latitude, 7 decimals).
    Each file is written under a temporary name in ``out_dir`` and moved into
    place with :func:`os.replace`.
    """
    out = Path(out_dir)
    paths = {
        "before": out / f"{prefix}before.tif",
        "after": out / f"{prefix}after.tif",
        "truth": out / f"{prefix}truth.geojson",
    }
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise OutputExistsError(
                f"{', '.join(existing)} already exist; pass overwrite=True or choose "
                "another out_dir/prefix"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(paths["before"], partial(_write_tif, pair, pair.before, pair.dates[0]))
    atomic_write(paths["after"], partial(_write_tif, pair, pair.after, pair.dates[1]))
    atomic_write(paths["truth"], partial(_write_truth, pair.truth))
    return paths


def validate_scene(
    size: int,
    pixel_m: float,
    shift_px: tuple[float, float],
    noise_sigma: float,
    centre_lonlat: tuple[float, float],
) -> tuple[int, float, tuple[float, float], float, float, float]:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise InputError(f"size must be a positive integer number of pixels; got {size!r}")
    if not (math.isfinite(pixel_m) and pixel_m > 0):
        raise InputError(f"pixel_m must be a positive number of metres; got {pixel_m!r}")
    if size * pixel_m < LAYOUT_M:
        raise InputError(
            f"scene of {size} px x {pixel_m} m = {size * pixel_m:g} m is smaller than the "
            f"{LAYOUT_M:g} m layout; raise size to at least {math.ceil(LAYOUT_M / pixel_m)}"
        )
    if len(shift_px) != 2 or not all(math.isfinite(s) and abs(s) <= 4 for s in shift_px):
        raise InputError(f"shift_px must be two numbers within [-4, 4] pixels; got {shift_px!r}")
    if not (math.isfinite(noise_sigma) and noise_sigma >= 0):
        raise InputError(f"noise_sigma must be a non-negative number of DN; got {noise_sigma!r}")
    lon, lat = (float(v) for v in centre_lonlat)
    if not (126.0 <= lon <= 132.0 and 0.0 <= lat <= 84.0):
        raise InputError(
            f"centre_lonlat {centre_lonlat!r} lies outside UTM zone 52N (EPSG:32652): "
            "longitude must be 126..132, latitude 0..84 degrees"
        )
    return (
        int(size),
        float(pixel_m),
        (float(shift_px[0]), float(shift_px[1])),
        float(noise_sigma),
        lon,
        lat,
    )


def _write_tif(pair: SyntheticPair, arr: NDArray[np.uint16], date: str, path: Path) -> None:
    """Write one date as a tiled, compressed GeoTIFF with band names and date tags."""
    write_raster(
        path,
        arr,
        crs=pair.crs,
        transform=pair.transform,
        nodata=pair.nodata,
        band_names=pair.band_names,
        tags={
            "ACQUISITION_DATE": date,
            "TIFFTAG_DATETIME": date.replace("-", ":") + " 00:00:00",
            "SYNTHETIC": "yes",
            "GENERATOR": f"borderwatch.synthetic.make_pair(seed={pair.seed})",
        },
    )


def write_raster(
    path: Path,
    arr: NDArray[np.integer],
    *,
    crs: CRS,
    transform: Affine,
    nodata: int | None,
    band_names: tuple[str, ...],
    tags: dict[str, str],
) -> None:
    """Write a (bands, rows, cols) array as a 256 x 256 tiled, DEFLATE GeoTIFF.

    Parameters
    ----------
    path : Path
        File to write (replaced if it exists).
    arr : ndarray of uint8 or uint16, shape (bands, rows, cols)
        Pixel values.
    crs : rasterio.crs.CRS
        CRS of ``transform``.
    transform : affine.Affine
        Pixel-to-map transform, map units of ``crs``.
    nodata : int or None
        Nodata value, or None for none.
    band_names : tuple of str
        Band descriptions, one per band.
    tags : dict of str to str
        Dataset tags (e.g. ``ACQUISITION_DATE``, ``SYNTHETIC``).
    """
    _, rows, cols = arr.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": arr.shape[0],
        "dtype": arr.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, name in enumerate(band_names, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**tags)


def _write_truth(truth: gpd.GeoDataFrame, path: Path) -> None:
    truth.to_crs("EPSG:4326").to_file(
        path,
        driver="GeoJSON",
        engine="pyogrio",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7", "WRITE_NAME": "NO"},
    )


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
