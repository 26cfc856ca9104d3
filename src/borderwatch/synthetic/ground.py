"""The ground: textures, surface spectra, land cover and the per-date radiometry.

Spatially correlated noise (:func:`smooth_noise`, fractional Brownian sums of it),
the surface spectra of every material, the land cover of both dates without
buildings (:func:`render_ground`: grass, fields, stream, trees, roads and the
compound yard), the seasonal change (:func:`apply_season`), the sub-pixel
mis-registration (:func:`fourier_shift`) and the final quantisation to DN
(:func:`quantise`).
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import fft, ndimage, special

from borderwatch.synthetic.frame import Box, Grid

__all__ = [
    "apply_season",
    "draw_illumination",
    "fourier_shift",
    "quantise",
    "render_ground",
    "smooth_noise",
    "spec_col",
]

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
_FIELD_CROPS: Final = ("crop", "young_crop", "soil", "stubble")

_COMPOUND: Final = Box(395, 80, 120, 86, 0, "concrete", 3)  # outer wall edge
_COMPOUND_WALL_M: Final = 2.0

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


def smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma_px: float
) -> NDArray[np.float32]:
    """Draw Gaussian-filtered white noise with unit variance (correlation ~``sigma_px``).

    Parameters
    ----------
    rng : numpy.random.Generator
        Random stream to draw from.
    shape : tuple of int
        (rows, cols) of the field.
    sigma_px : float
        Correlation length (Gaussian sigma), pixels.

    Returns
    -------
    ndarray of float32, shape ``shape``
        Zero mean, unit variance.
    """
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
        out += (0.5**i) * smooth_noise(rng, shape, s)
    return ((out - out.mean()) / out.std()).astype(np.float32)


def _sigmoid(x: NDArray[np.float32]) -> NDArray[np.float32]:
    return special.expit(x).astype(np.float32)


def _spec(name: str) -> NDArray[np.float32]:
    """Spectrum of a material, shape (4, 1, 1), to broadcast over an image."""
    return np.asarray(_SPECTRA[name], dtype=np.float32)[:, None, None]


def spec_col(name: str) -> NDArray[np.float32]:
    """Return the spectrum of a material, shape (4, 1), to broadcast over selected pixels."""
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


def render_ground(
    grid: Grid, rng: np.random.Generator
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Render land cover without buildings: grass, fields, stream, trees, roads, yard.

    Parameters
    ----------
    grid : Grid
        Scene grid.
    rng : numpy.random.Generator
        Stream for the textures and the field layout.

    Returns
    -------
    img : ndarray of float32, shape (4, rows, cols)
        Ground of both dates, DN.
    fine : ndarray of float32, shape (rows, cols)
        The fine texture, reused to vary the roofs.
    """
    n, px = grid.size, grid.pixel_m
    shape = (n, n)
    x, y = grid.coords()
    n_veg = _fbm(rng, shape, (60 / px, 20 / px, 6 / px))
    n_bare = _fbm(rng, shape, (40 / px, 10 / px))
    n_fine = smooth_noise(rng, shape, 0.7 / px)
    n_crown = smooth_noise(rng, shape, 1.4 / px)
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
    inner = Box(
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


def apply_season(img: NDArray[np.float32], amplitude: NDArray[np.float32]) -> NDArray[np.float32]:
    """Apply the late-summer look: vegetation NIR and green down, red up, bare surfaces brighter.

    Parameters
    ----------
    img : ndarray of float32, shape (4, rows, cols)
        Bands blue, green, red, NIR, DN.
    amplitude : ndarray of float32, shape (rows, cols)
        Smooth field scaling the change.

    Returns
    -------
    ndarray of float32, shape (4, rows, cols)
        A new array.
    """
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


def draw_illumination(rng: np.random.Generator) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Draw one date's per-band gain (0.85--1.15) and haze offset (DN).

    Parameters
    ----------
    rng : numpy.random.Generator
        Stream to draw from (six draws).

    Returns
    -------
    gains, offsets : ndarray of float64, shape (4,)
        Apply as ``img * gains + offsets`` per band (blue, green, red, NIR).
    """
    gains = rng.uniform(0.85, 1.15, 4)
    haze = rng.uniform(-0.4, 1.0)
    offsets = haze * np.array([110.0, 75.0, 45.0, 20.0]) + rng.normal(0.0, 8.0, 4)
    return gains, offsets


def fourier_shift(img: NDArray[np.float32], shift: tuple[float, float]) -> NDArray[np.float32]:
    """Shift each band by (rows, cols) pixels; reflect-padded to avoid wrap-around."""
    pad = 8 + int(math.ceil(max(abs(shift[0]), abs(shift[1]))))
    padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    spec = ndimage.fourier_shift(
        fft.rfft2(padded, axes=(-2, -1)), (0.0, *shift), n=padded.shape[-1], axis=-1
    )
    out = fft.irfft2(spec, s=padded.shape[-2:], axes=(-2, -1))
    return out[:, pad:-pad, pad:-pad].astype(np.float32)


def quantise(img: NDArray[np.floating]) -> NDArray[np.uint16]:
    """Round to read-only uint16 DN in [1, 65535], so that nodata (0) never occurs."""
    out = np.clip(np.rint(img), 1, np.iinfo(np.uint16).max).astype(np.uint16)
    out.setflags(write=False)
    return out
