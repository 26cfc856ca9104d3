"""Deterministic synthetic before/after image pairs with planted new construction.

The scene imitates ~1 m four-band (blue, green, red, NIR) imagery of a peri-urban
valley near Helong, Jilin, on the China--North Korea border: a paved road, dirt
tracks, field strips, a stream, woodland and roadside trees, a village of existing
buildings and an existing walled detention-centre-like compound. The "after" date
can add new buildings, a new fence ring and a watchtower (the truth), and always
carries the confounders a change detector must ignore: illumination and haze,
a seasonal vegetation change, independent sensor noise and a sub-pixel shift.

Everything is drawn from ``numpy.random.default_rng`` streams spawned from one
seed, so the same arguments give identical arrays. Nothing here is real imagery.

The layout is designed in a 512 m x 512 m frame (metres from its top-left corner,
y pointing south) that is centred in the scene; larger scenes extend the roads,
fields and woodland around it.
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
import shapely
from affine import Affine
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.crs import CRS
from scipy import fft, ndimage, special
from shapely.geometry.polygon import orient
from skimage.draw import polygon as draw_polygon

from borderwatch.errors import InputError, OutputExistsError

__all__ = ["BAND_NAMES", "DATES", "SyntheticPair", "make_pair", "write_pair"]

BAND_NAMES: Final = ("blue", "green", "red", "nir")
DATES: Final = ("2019-06-14", "2021-09-02")
_EPSG: Final = 32652
_LAYOUT_M: Final = 512.0  # side of the design frame, metres
_PSF_SIGMA_M: Final = 0.6  # Gaussian blur standing in for the sensor MTF

# Surface spectra in DN (about surface reflectance x 10 000): blue, green, red, NIR.
_SPECTRA: Final[dict[str, tuple[float, float, float, float]]] = {
    "grass": (380, 690, 470, 2700),
    "dry_grass": (520, 770, 800, 2150),
    "soil": (730, 970, 1230, 1850),
    "crop": (300, 680, 360, 3100),
    "young_crop": (470, 760, 690, 2350),
    "stubble": (650, 890, 1050, 2000),
    "tree": (260, 470, 290, 2500),
    "water": (520, 560, 380, 220),
    "asphalt": (820, 860, 900, 980),
    "dirt": (880, 1080, 1300, 1650),
    "yard": (1050, 1200, 1350, 1600),
    "concrete": (1450, 1550, 1600, 1750),
    "fence": (1150, 1200, 1200, 1300),
    "cleared": (950, 1200, 1450, 1900),
    "metal_roof": (2350, 2450, 2500, 2600),
    "blue_roof": (1500, 980, 520, 880),
    "red_roof": (560, 620, 1450, 1380),
    "dark_roof": (430, 450, 470, 560),
    "green_roof": (520, 1050, 620, 900),
}
_GABLED: Final = frozenset({"metal_roof", "blue_roof", "red_roof", "green_roof"})
_FIELD_CROPS: Final = ("crop", "young_crop", "soil", "stubble")
_SHADOW_PER_M: Final = (-0.30, -0.55)  # shadow offset (x east, y south) per metre height


@dataclass(frozen=True)
class _Box:
    """A rotated rectangle in the design frame (metres; x east, y south)."""

    cx: float
    cy: float
    w: float
    h: float
    angle: float  # degrees
    material: str
    height: float  # metres, sets the shadow length

    def corners(self, dx: float = 0.0, dy: float = 0.0) -> NDArray[np.float64]:
        t = math.radians(self.angle)
        ux, uy = math.cos(t), math.sin(t)
        hw, hh = self.w / 2, self.h / 2
        local = np.array([(-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)])
        x = self.cx + dx + local[:, 0] * ux - local[:, 1] * uy
        y = self.cy + dy + local[:, 0] * uy + local[:, 1] * ux
        return np.column_stack([x, y])

    def moved(self, dx: float, dy: float) -> _Box:
        return _Box(
            self.cx + dx, self.cy + dy, self.w, self.h, self.angle, self.material, self.height
        )


# Layout in the 512 m design frame. Existing structures appear on both dates.
_EXISTING: Final = (
    _Box(180, 270, 12, 8, -8, "red_roof", 4),
    _Box(250, 262, 14, 9, -8, "blue_roof", 4),
    _Box(190, 235, 10, 8, 0, "dark_roof", 3),
    _Box(255, 222, 18, 10, 0, "metal_roof", 5),
    _Box(185, 195, 9, 9, 0, "red_roof", 3),
    _Box(110, 280, 26, 12, -8, "metal_roof", 6),
    _Box(130, 250, 12, 9, -8, "green_roof", 3),
    _Box(300, 248, 16, 8, -8, "red_roof", 3),
    _Box(470, 330, 12, 8, -8, "red_roof", 3),
    # detention-centre-like compound: cell blocks, admin block, gate house, towers
    _Box(378, 58, 64, 11, 0, "blue_roof", 7),
    _Box(378, 82, 64, 11, 0, "blue_roof", 7),
    _Box(370, 106, 44, 10, 0, "blue_roof", 6),
    _Box(432, 72, 22, 36, 0, "dark_roof", 9),
    _Box(420, 112, 8, 6, 0, "dark_roof", 3),
    _Box(339.5, 41.5, 4, 4, 0, "concrete", 9),
    _Box(450.5, 118.5, 4, 4, 0, "concrete", 9),
)
_COMPOUND: Final = _Box(395, 80, 120, 86, 0, "concrete", 3)  # outer wall edge
_COMPOUND_WALL_M: Final = 2.0
# New structures (after date only, when changes=True).
_NEW_BUILDINGS: Final = (
    _Box(140, 205, 8, 10, 0, "blue_roof", 3),
    _Box(300, 200, 15, 12, -8, "red_roof", 4),
    _Box(160, 380, 40, 20, -8, "metal_roof", 7),
    _Box(420, 350, 20, 12, -8, "dark_roof", 4),
    _Box(260, 150, 15, 10, 0, "metal_roof", 4),
    _Box(470, 230, 10, 25, 0, "blue_roof", 4),
    _Box(370, 410, 12, 10, -8, "green_roof", 3),
)
_RING: Final = _Box(400, 180, 80, 60, 6, "cleared", 0)  # fence centreline rectangle
_RING_STRIP_M: Final = 3.0
_TOWER_LOCAL: Final = (33.0, -23.0)  # watchtower centre relative to the ring centre, metres
_TOWER_SIZE_M: Final = 4.0
_JITTER_M: Final = 4.0  # seeded displacement of each new structure, metres

_MAIN_ROAD: Final = ((0.0, 330.0), (512.0, 260.0))
_MAIN_ROAD_W: Final = 7.0
# (polyline, width m, material); end points far outside so larger scenes continue them.
_TRACKS: Final = (
    (((215.0, 300.6), (235.0, 0.0), (265.0, -1e4)), 4.5, "dirt"),
    (((345.0, 122.0), (345.0, 282.8)), 4.0, "dirt"),
    (((330.0, 284.9), (300.0, 512.0), (240.0, 1e4)), 3.5, "dirt"),
)
_STREAM: Final = (
    (-1e4, 440.0),
    (0.0, 440.0),
    (90.0, 456.0),
    (190.0, 432.0),
    (290.0, 468.0),
    (400.0, 448.0),
    (512.0, 474.0),
    (1e4, 474.0),
)
_STREAM_W: Final = 5.5


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
    size, pixel_m, shift, noise_sigma, lon, lat = _validate(
        size, pixel_m, shift_px, noise_sigma, centre_lonlat
    )
    extent = size * pixel_m
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{_EPSG}", always_xy=True)
    cx, cy = to_utm.transform(lon, lat)
    left, top = round(cx - extent / 2), round(cy + extent / 2)
    transform = Affine(pixel_m, 0.0, left, 0.0, -pixel_m, top)
    grid = _Grid(size=size, pixel_m=pixel_m, off=(extent - _LAYOUT_M) / 2)

    tex_rng, layout_rng, conf_rng, nb_rng, na_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)
    )
    ground, tex = _render_ground(grid, tex_rng)
    new_boxes, ring, tower = _new_structures(layout_rng)

    before: NDArray[np.floating] = _paint_structures(ground.copy(), grid, tex, list(_EXISTING))
    after: NDArray[np.floating]
    if changes:
        _paint_ring(ground, grid, ring)
        after = _paint_structures(ground, grid, tex, [*_EXISTING, *new_boxes, tower])
    else:
        after = _paint_structures(ground, grid, tex, list(_EXISTING))

    gains = conf_rng.uniform(0.85, 1.15, 4)
    haze = conf_rng.uniform(-0.4, 1.0)
    offsets = haze * np.array([110.0, 75.0, 45.0, 20.0]) + conf_rng.normal(0.0, 8.0, 4)
    season_field = 1.0 + 0.25 * _smooth_noise(conf_rng, (size, size), 150.0 / pixel_m)
    if season:
        after = _apply_season(after, season_field)

    psf = _PSF_SIGMA_M / pixel_m
    before = ndimage.gaussian_filter(before, (0, psf, psf), mode="reflect")
    after = ndimage.gaussian_filter(after, (0, psf, psf), mode="reflect")
    if shift != (0.0, 0.0):
        after = _fourier_shift(after, shift)
    if illumination:
        after = after * gains[:, None, None] + offsets[:, None, None]
    if noise_sigma > 0:
        before = before + nb_rng.normal(0.0, noise_sigma, before.shape)
        after = after + na_rng.normal(0.0, noise_sigma, after.shape)

    truth = _truth(
        new_boxes + [tower] if changes else [],
        ring if changes else None,
        left=left,
        top=top,
        off=grid.off,
    )
    return SyntheticPair(
        before=_quantise(before),
        after=_quantise(after),
        transform=transform,
        crs=CRS.from_epsg(_EPSG),
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
    _atomic(paths["before"], partial(_write_tif, pair, pair.before, pair.dates[0]))
    _atomic(paths["after"], partial(_write_tif, pair, pair.after, pair.dates[1]))
    _atomic(paths["truth"], partial(_write_truth, pair.truth))
    return paths


# --------------------------------------------------------------------------- helpers


@dataclass(frozen=True)
class _Grid:
    size: int
    pixel_m: float
    off: float  # design frame origin, metres from the scene's top-left corner

    def coords(self) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """Pixel-centre coordinates in the design frame, metres (x east, y south)."""
        c = (np.arange(self.size, dtype=np.float32) + 0.5) * self.pixel_m - self.off
        return c[None, :], c[:, None]

    def mask(self, corners: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Pixels whose centres fall inside a design-frame polygon."""
        m = np.zeros((self.size, self.size), dtype=bool)
        rr, cc = self.pixels(corners)
        m[rr, cc] = True
        return m

    def pixels(self, corners: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
        r = (corners[:, 1] + self.off) / self.pixel_m - 0.5
        c = (corners[:, 0] + self.off) / self.pixel_m - 0.5
        return draw_polygon(r, c, shape=(self.size, self.size))


def _validate(
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
    if size * pixel_m < _LAYOUT_M:
        raise InputError(
            f"scene of {size} px x {pixel_m} m = {size * pixel_m:g} m is smaller than the "
            f"{_LAYOUT_M:g} m layout; raise size to at least {math.ceil(_LAYOUT_M / pixel_m)}"
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


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: float
) -> NDArray[np.float32]:
    """Gaussian-filtered white noise with unit variance (correlation ~``sigma_px``)."""
    rows, cols = shape
    f = max(1, int(sigma_px // 3))  # filter large scales on a coarse grid, then upsample
    small = rng.standard_normal((rows // f + 3, cols // f + 3))
    small = ndimage.gaussian_filter(small, max(sigma_px / f, 0.3), mode="wrap")
    if f > 1:
        small = ndimage.zoom(small, f, order=1)
    field = small[:rows, :cols]
    return ((field - field.mean()) / (field.std() + 1e-12)).astype(np.float32)


def _fbm(
    rng: np.random.Generator, shape: tuple[int, int], scales_px: tuple[float, ...]
) -> NDArray[np.float32]:
    """Sum of smooth noise at several scales, weights halving, unit variance."""
    out = np.zeros(shape, dtype=np.float32)
    for i, s in enumerate(scales_px):
        out += (0.5**i) * _smooth_noise(rng, shape, s)
    return ((out - out.mean()) / out.std()).astype(np.float32)


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return special.expit(x).astype(np.float32)


def _spec(name: str) -> NDArray[np.float32]:
    """Spectrum of a material, shape (4, 1, 1), to broadcast over an image."""
    return np.asarray(_SPECTRA[name], dtype=np.float32)[:, None, None]


def _spec_col(name: str) -> NDArray[np.float32]:
    """Spectrum of a material, shape (4, 1), to broadcast over selected pixels."""
    return np.asarray(_SPECTRA[name], dtype=np.float32)[:, None]


def _blend(
    img: NDArray[np.float32], alpha: NDArray[np.floating], value: NDArray[np.floating]
) -> None:
    """In place: ``img = img * (1 - alpha) + value * alpha``."""
    img += alpha[None] * (value - img)


def _polyline_distance(
    x: NDArray[np.float32], y: NDArray[np.float32], pts: tuple[tuple[float, float], ...]
) -> NDArray[np.float32]:
    """Distance from each pixel centre to a polyline, metres."""
    best = np.full(np.broadcast_shapes(x.shape, y.shape), np.inf, dtype=np.float32)
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
        d = np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))
        np.minimum(best, d, out=best)
    return best


def _render_ground(
    grid: _Grid, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Render land cover without buildings: grass, fields, stream, trees, roads, yard."""
    n, px = grid.size, grid.pixel_m
    shape = (n, n)
    x, y = grid.coords()
    n_veg = _fbm(rng, shape, (60 / px, 20 / px, 6 / px))
    n_bare = _fbm(rng, shape, (40 / px, 10 / px))
    n_fine = _smooth_noise(rng, shape, 0.7 / px)
    n_crown = _smooth_noise(rng, shape, 1.4 / px)
    n_wood = _fbm(rng, shape, (45 / px, 12 / px))
    n_field = _fbm(rng, shape, (25 / px, 6 / px))

    # natural background: grass <-> dry grass, with bare-soil patches
    w_dry = _sigmoid(1.6 * n_veg)[None]
    img = _spec("grass") * (1 - w_dry) + _spec("dry_grass") * w_dry
    img = img * (1 + 0.05 * n_fine + 0.04 * n_veg)[None]
    _blend(img, _sigmoid(4 * (n_bare - 1.3)) * 0.9, _spec("soil") * (1 + 0.04 * n_fine)[None])

    # field strips south of the main road, perpendicular to it
    (ax, ay), (bx, by) = _MAIN_ROAD
    length = math.hypot(bx - ax, by - ay)
    dx, dy = (bx - ax) / length, (by - ay) / length
    u = (x - ax) * dx + (y - ay) * dy  # along the road
    v = (x - ax) * -dy + (y - ay) * dx  # across, positive south
    extent = n * px
    n_strips = int(math.ceil(6 * extent / 18)) + 2
    bounds = -3 * extent + np.cumsum(rng.uniform(18, 45, n_strips))
    splits = rng.uniform(50, 130, n_strips + 1)
    kinds = rng.choice(len(_FIELD_CROPS), size=(n_strips + 1, 2), p=[0.35, 0.25, 0.2, 0.2])
    jitter = rng.uniform(0.92, 1.08, size=(n_strips + 1, 2, 4)).astype(np.float32)
    idx = np.searchsorted(bounds, u)
    side = (v > splits[idx]).astype(np.intp)
    table = np.stack([np.asarray(_SPECTRA[k], np.float32) for k in _FIELD_CROPS])
    field = np.moveaxis(table[kinds[idx, side]] * jitter[idx, side], -1, 0)
    field *= (1 + 0.06 * n_field + 0.03 * n_fine)[None]
    lo = bounds[np.clip(idx - 1, 0, n_strips - 1)]
    hi = bounds[np.clip(idx, 0, n_strips - 1)]
    bund = np.minimum(np.minimum(np.abs(u - lo), np.abs(hi - u)), np.abs(v - splits[idx]))
    d_stream = _polyline_distance(x, y, _STREAM)
    a_field = (
        np.clip(bund / px - 0.3, 0, 1)
        * np.clip((v - _MAIN_ROAD_W / 2 - 9) / 2, 0, 1)
        * np.clip((d_stream - 14) / 3, 0, 1)
    )
    _blend(img, a_field.astype(np.float32), field)

    # stream and its bank
    _blend(img, np.clip(_STREAM_W / 2 + 2.5 - d_stream, 0, 1) * 0.6, _spec("soil"))
    _blend(
        img,
        np.clip(_STREAM_W / 2 - d_stream + 0.5, 0, 1),
        _spec("water") * (1 + 0.05 * n_field)[None],
    )

    # trees: woodland on the north-west slope, riparian and roadside rows
    crowns = _spec("tree") * np.clip(1 + 0.25 * n_crown, 0.45, 1.5)[None]
    canopy = _sigmoid(3 * (n_crown + 0.9))
    a_wood = _sigmoid(3 * ((200 - (x + y)) / 30 + 0.8 * n_wood)) * canopy
    band = np.clip(np.minimum(d_stream - _STREAM_W / 2 - 1.5, 12 - d_stream), 0, 1)
    a_rip = band * _sigmoid(3 * (n_crown + 0.2)) * _sigmoid(2 * n_wood + 1)
    junctions = [
        u_j for (pts, _, _) in _TRACKS for u_j in [(pts[0][0] - ax) * dx + (pts[0][1] - ay) * dy]
    ]
    gap = np.min(np.abs(u[..., None] - np.asarray(junctions, np.float32)), axis=-1)
    verge = -v - _MAIN_ROAD_W / 2
    a_road_trees = (
        np.clip(np.minimum(verge - 2.5, 9 - verge), 0, 1)
        * np.clip(gap - 12, 0, 1)
        * _sigmoid(3 * (n_crown + 0.3))
    )
    a_trees = np.maximum(np.maximum(a_wood, a_rip), a_road_trees)
    _blend(img, a_trees.astype(np.float32), crowns)

    # roads and the compound yard (drawn on the ground so shadows fall on them)
    for pts, width, material in _TRACKS:
        d = _polyline_distance(x, y, pts)
        _blend(
            img,
            np.clip(width / 2 - d + 0.5, 0, 1),
            _spec(material) * (1 + 0.05 * n_fine + 0.03 * n_field)[None],
        )
    d_main = np.abs(v)
    _blend(img, np.clip(_MAIN_ROAD_W / 2 + 1.5 - d_main, 0, 1) * 0.7, _spec("dirt"))
    _blend(
        img,
        np.clip(_MAIN_ROAD_W / 2 - d_main + 0.5, 0, 1),
        _spec("asphalt") * (1 + 0.03 * n_fine)[None],
    )
    wall = _COMPOUND
    inner = _Box(
        wall.cx,
        wall.cy,
        wall.w - 2 * _COMPOUND_WALL_M,
        wall.h - 2 * _COMPOUND_WALL_M,
        wall.angle,
        "yard",
        0,
    )
    m_outer, m_inner = grid.mask(wall.corners()), grid.mask(inner.corners())
    yard = _spec("yard") * (1 + 0.04 * n_fine + 0.05 * n_field)[None]
    img = np.where(m_inner[None], yard, img)
    img = np.where((m_outer & ~m_inner)[None], _spec("concrete"), img)
    return img.astype(np.float32), n_fine


def _new_structures(rng: np.random.Generator) -> tuple[list[_Box], _Box, _Box]:
    """Place the new buildings, fence ring and watchtower, each jittered by up to 4 m."""
    jit = rng.uniform(-_JITTER_M, _JITTER_M, size=(len(_NEW_BUILDINGS) + 1, 2))
    boxes = [b.moved(*j) for b, j in zip(_NEW_BUILDINGS, jit[:-1], strict=True)]
    ring = _RING.moved(*jit[-1])
    t = math.radians(ring.angle)
    lx, ly = _TOWER_LOCAL
    tower = _Box(
        ring.cx + lx * math.cos(t) - ly * math.sin(t),
        ring.cy + lx * math.sin(t) + ly * math.cos(t),
        _TOWER_SIZE_M,
        _TOWER_SIZE_M,
        ring.angle,
        "concrete",
        10,
    )
    return boxes, ring, tower


def _ring_boxes(ring: _Box, half_width: float) -> tuple[_Box, _Box]:
    grow = _Box(
        ring.cx,
        ring.cy,
        ring.w + 2 * half_width,
        ring.h + 2 * half_width,
        ring.angle,
        ring.material,
        0,
    )
    shrink = _Box(
        ring.cx,
        ring.cy,
        ring.w - 2 * half_width,
        ring.h - 2 * half_width,
        ring.angle,
        ring.material,
        0,
    )
    return grow, shrink


def _paint_ring(img: NDArray[np.float32], grid: _Grid, ring: _Box) -> None:
    """In place: the new fence ring, a cleared strip with the fence on its centreline."""
    outer, inner = _ring_boxes(ring, _RING_STRIP_M / 2)
    strip = grid.mask(outer.corners()) & ~grid.mask(inner.corners())
    f_out, f_in = _ring_boxes(ring, 0.5)
    fence = grid.mask(f_out.corners()) & ~grid.mask(f_in.corners())
    img[:, strip] = _spec_col("cleared")
    img[:, fence] = _spec_col("fence")


def _paint_structures(
    img: NDArray[np.float32], grid: _Grid, fine: NDArray[np.float32], boxes: list[_Box]
) -> NDArray[np.float32]:
    """In place and returned: shadows on the ground, then roofs (gabled roofs shaded)."""
    roofs = np.zeros((grid.size, grid.size), dtype=bool)
    shade = np.zeros_like(roofs)
    for b in boxes:
        sx, sy = _SHADOW_PER_M[0] * b.height, _SHADOW_PER_M[1] * b.height
        pts = np.vstack([b.corners(), b.corners(sx, sy)])
        hull = np.asarray(shapely.MultiPoint(pts).convex_hull.exterior.coords)
        rr, cc = grid.pixels(hull)
        shade[rr, cc] = True
        rr, cc = grid.pixels(b.corners())
        roofs[rr, cc] = True
    shade &= ~roofs
    img[:3, shade] *= 0.38
    img[3, shade] *= 0.33
    x, y = grid.coords()
    for b in boxes:
        rr, cc = grid.pixels(b.corners())
        value = _spec_col(b.material) * (1 + 0.02 * fine[rr, cc])
        if b.material in _GABLED:
            # ridge along the long side: the sun-facing half is brighter
            t = math.radians(b.angle + (90 if b.w >= b.h else 0))
            across = (x[0, cc] - b.cx) * math.cos(t) + (y[rr, 0] - b.cy) * math.sin(t)
            value = value * np.where(across > 0, 1.07, 0.93)
        img[:, rr, cc] = value
    return img


def _apply_season(img: NDArray[np.float32], amplitude: NDArray[np.float32]) -> NDArray[np.float32]:
    """Late-summer look: vegetation NIR and green down, red up, bare surfaces brighter."""
    blue, green, red, nir = img
    ndvi = (nir - red) / np.maximum(nir + red, 1.0)
    veg = np.clip((ndvi - 0.2) / 0.5, 0, 1) * amplitude
    bare = (1 - np.clip((ndvi - 0.2) / 0.5, 0, 1)) * amplitude
    factor = np.stack(
        [
            1 + 0.06 * bare,
            (1 - 0.10 * veg) * (1 + 0.06 * bare),
            (1 + 0.08 * veg) * (1 + 0.06 * bare),
            (1 - 0.18 * veg) * (1 + 0.03 * bare),
        ]
    )
    return (img * factor).astype(np.float32)


def _fourier_shift(img: NDArray[np.float32], shift: tuple[float, float]) -> NDArray[np.float32]:
    """Shift each band by (rows, cols) pixels; reflect-padded to avoid wrap-around."""
    pad = 8 + int(math.ceil(max(abs(shift[0]), abs(shift[1]))))
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    spec = ndimage.fourier_shift(
        fft.rfft2(padded, axes=(-2, -1)), (0.0, *shift), n=padded.shape[-1], axis=-1
    )
    out = fft.irfft2(spec, s=padded.shape[-2:], axes=(-2, -1))
    return out[:, pad:-pad, pad:-pad].astype(np.float32)


def _quantise(img: NDArray[np.floating]) -> NDArray[np.uint16]:
    out = np.clip(np.rint(img), 1, np.iinfo(np.uint16).max).astype(np.uint16)
    out.setflags(write=False)
    return out


def _truth(
    boxes: list[_Box], ring: _Box | None, *, left: float, top: float, off: float
) -> gpd.GeoDataFrame:
    """Planted footprints as an EPSG:32652 GeoDataFrame."""

    def to_map(corners: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack([left + off + corners[:, 0], top - off - corners[:, 1]])

    geoms, classes, lengths = [], [], []
    for b in boxes:
        geoms.append(shapely.Polygon(to_map(b.corners())))
        classes.append("building")
        lengths.append(np.nan)
    if ring is not None:
        outer, inner = _ring_boxes(ring, _RING_STRIP_M / 2)
        geoms.append(shapely.Polygon(to_map(outer.corners()), [to_map(inner.corners())]))
        classes.append("fence_or_wall")
        lengths.append(2.0 * (ring.w + ring.h))
    geoms = [orient(g, sign=1.0) for g in geoms]  # exterior counter-clockwise (RFC 7946)
    return gpd.GeoDataFrame(
        {
            "id": np.arange(1, len(geoms) + 1, dtype=np.int64),
            "class": np.asarray(classes, dtype=object),
            "area_m2": np.asarray([round(g.area, 2) for g in geoms], dtype=np.float64),
            "length_m": np.asarray(lengths, dtype=np.float64),
        },
        geometry=gpd.GeoSeries(geoms, crs=f"EPSG:{_EPSG}"),
        crs=f"EPSG:{_EPSG}",
    )


def _write_tif(pair: SyntheticPair, arr: NDArray[np.uint16], date: str, path: Path) -> None:
    """Write one date as a tiled, compressed GeoTIFF with band names and date tags."""
    _, rows, cols = arr.shape
    profile = {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": arr.shape[0],
        "dtype": "uint16",
        "crs": pair.crs,
        "transform": pair.transform,
        "nodata": pair.nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
        "interleave": "pixel",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, name in enumerate(pair.band_names, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(
            ACQUISITION_DATE=date,
            TIFFTAG_DATETIME=date.replace("-", ":") + " 00:00:00",
            SYNTHETIC="yes",
            GENERATOR=f"borderwatch.synthetic.make_pair(seed={pair.seed})",
        )


def _write_truth(truth: gpd.GeoDataFrame, path: Path) -> None:
    truth.to_crs("EPSG:4326").to_file(
        path,
        driver="GeoJSON",
        engine="pyogrio",
        layer_options={"RFC7946": "YES", "COORDINATE_PRECISION": "7", "WRITE_NAME": "NO"},
    )


def _atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp)`` on a temporary path beside ``path``, then move it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
