"""Spectral indices chosen by the bands present, and band role detection.

Band *roles* (blue, green, red, nir, swir1, swir2) are read from band names:
Sentinel-2 names (``B02``, ``B03``, ``B04``, ``B08``/``B8A``, ``B11``, ``B12``), plain
colour names (``blue``, ``red``, ``nir``, ``swir1``...), or, for a three-band image with
no usable names (an RGB PNG), the explicit fallback red, green, blue.

Indices, all per pixel and NaN where undefined:

* ``brightness``: mean reflectance of the visible and NIR bands (any image);
  :func:`visible_brightness` leaves NIR out, for the construction direction;
* ``ndvi``: ``(nir - red) / (nir + red)`` (Rouse et al. 1974), when NIR and red exist;
* ``greenness``: excess-green ``(2 g - r - b) / (r + g + b)`` (Woebbecke et al. 1995),
  the vegetation proxy for RGB-only imagery;
* ``ndbi``: ``(swir1 - nir) / (swir1 + nir)`` (Zha et al. 2003), when SWIR exists.

References
----------
.. [1] Zha, Y., Gao, J., Ni, S. (2003). Use of normalized difference built-up index in
   automatically mapping urban areas from TM imagery. IJRS 24(3), 583-594.
   https://doi.org/10.1080/01431160304987
.. [2] Woebbecke, D. M. et al. (1995). Color indices for weed identification under
   various soil, residue, and lighting conditions. Trans. ASAE 38(1), 259-269.
   https://doi.org/10.13031/2013.27838
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from borderwatch.errors import InputError

__all__ = [
    "CONSTRUCTION_SIGN",
    "ROLES",
    "band_role",
    "band_roles",
    "compute_indices",
    "index_change",
    "index_score",
    "index_stats",
    "match_bands",
    "vegetation_index",
    "visible_brightness",
]

ROLES = ("blue", "green", "red", "nir", "swir1", "swir2")

_S2 = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B8A": "nir",
    "B11": "swir1",
    "B12": "swir2",
}
_ALIASES = {
    "blue": "blue",
    "b": "blue",
    "green": "green",
    "g": "green",
    "red": "red",
    "r": "red",
    "nir": "nir",
    "nir08": "nir",
    "near_infrared": "nir",
    "swir1": "swir1",
    "swir16": "swir1",
    "swir_1": "swir1",
    "swir2": "swir2",
    "swir22": "swir2",
    "swir_2": "swir2",
}
_S2_RE = re.compile(r"B(0?[1-9]|1[0-2]|8A)$", re.IGNORECASE)


def band_role(name: str) -> str | None:
    """Role (one of :data:`ROLES`) of a band name (``B04``, ``red``, ``nir08``...), or None."""
    key = name.strip().lower().replace("-", "_").replace(" ", "_")
    if key in _ALIASES:
        return _ALIASES[key]
    m = _S2_RE.search(name.strip())
    if m:
        code = m.group(1).upper()
        code = "8A" if code == "8A" else f"{int(code):02d}"
        return _S2.get(f"B{code}")
    return None


def band_roles(band_names: Sequence[str], *, n_bands: int | None = None) -> dict[str, int]:
    """Map band roles to band indices from the band names.

    Parameters
    ----------
    band_names : sequence of str
        One name per band (may be generic, e.g. ``band1``).
    n_bands : int, optional
        Band count, if ``band_names`` is empty.

    Returns
    -------
    dict
        ``{role: band index}`` for the roles found. The first band of a role wins
        (so B08 is preferred over a later B8A). A three-band image without any
        recognised name is taken as red, green, blue (the PNG/JPEG convention); any
        other unnamed image gets no roles and only ``brightness`` is computed.

    Examples
    --------
    >>> band_roles(["B02", "B03", "B04", "B08"])
    {'blue': 0, 'green': 1, 'red': 2, 'nir': 3}
    >>> band_roles(["band1", "band2", "band3"])
    {'red': 0, 'green': 1, 'blue': 2}
    """
    roles: dict[str, int] = {}
    for i, name in enumerate(band_names):
        role = band_role(str(name))
        if role is not None and role not in roles:
            roles[role] = i
    count = len(band_names) if band_names else (n_bands or 0)
    if not roles and count == 3:
        roles = {"red": 0, "green": 1, "blue": 2}
    return roles


def match_bands(wanted: Sequence[str], band_names: Sequence[str]) -> tuple[int, ...] | None:
    """Indexes of the inputs' bands that are the ``wanted`` bands, in ``wanted`` order.

    By name where every wanted name is among ``band_names``; otherwise by role
    (:func:`band_role`: a model trained on ``B02, B03, B04, B08`` takes ``blue, green,
    red, nir``). None when a wanted band has no match.

    Examples
    --------
    >>> match_bands(["B02", "B03", "B04", "B08"], ["red", "green", "blue", "nir"])
    (2, 1, 0, 3)
    >>> match_bands(["red", "nir"], ["band1", "band2"]) is None
    True
    """
    names = list(band_names)
    if all(w in names for w in wanted):
        return tuple(names.index(w) for w in wanted)
    have = band_roles(names)
    roles = [band_role(w) for w in wanted]
    if any(r is None or r not in have for r in roles) or len(set(roles)) < len(roles):
        return None  # a band missing, or two wanted bands of one role (B08 and B8A)
    return tuple(have[r] for r in roles if r is not None)


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised difference ``(a - b) / (a + b)``; NaN where the sum is not positive."""
    s = a + b
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.divide(a - b, s)
    bad = ~(s > 0)  # NaN sums too
    if bad.any():
        out[bad] = np.nan
    return out.astype(np.float32, copy=False)


def vegetation_index(image: np.ndarray, roles: dict[str, int]) -> tuple[str, np.ndarray] | None:
    """NDVI when NIR and red exist, else excess-green for RGB, else None."""
    img = image.astype(np.float32, copy=False)
    if "nir" in roles and "red" in roles:
        return "ndvi", _nd(img[roles["nir"]], img[roles["red"]])
    if {"red", "green", "blue"} <= roles.keys():
        r, g, b = img[roles["red"]], img[roles["green"]], img[roles["blue"]]
        s = r + g + b
        with np.errstate(invalid="ignore", divide="ignore"):
            exg = np.where(s > 0, (2 * g - r - b) / s, np.nan)
        return "greenness", exg.astype(np.float32, copy=False)
    return None


def compute_indices(image: np.ndarray, band_names: Sequence[str]) -> dict[str, np.ndarray]:
    """Spectral indices of one date, chosen by the bands present.

    Parameters
    ----------
    image : numpy.ndarray
        ``(bands, rows, cols)`` reflectance or digital numbers (NaN = invalid).
    band_names : sequence of str
        Band names, see :func:`band_roles`.

    Returns
    -------
    dict
        ``{"brightness": ..., "ndvi" or "greenness": ..., "ndbi": ...}`` as available,
        each ``float32 (rows, cols)``. ``brightness`` uses the visible and NIR bands
        (all bands when no roles are known), never SWIR.

    Raises
    ------
    InputError
        ``image`` is not 3-D or the names do not match the band count.
    """
    if image.ndim != 3:
        raise InputError(f"image must be (bands, rows, cols), got {image.shape}")
    if band_names and len(band_names) != image.shape[0]:
        raise InputError(f"{len(band_names)} band names for {image.shape[0]} bands")
    roles = band_roles(band_names, n_bands=image.shape[0])
    img = image.astype(np.float32, copy=False)
    vis = [roles[r] for r in ("blue", "green", "red", "nir") if r in roles]
    every = not vis or sorted(vis) == list(range(img.shape[0]))
    out = {"brightness": (img if every else img[vis]).mean(axis=0)}
    veg = vegetation_index(img, roles)
    if veg is not None:
        out[veg[0]] = veg[1]
    if "swir1" in roles and "nir" in roles:
        out["ndbi"] = _nd(img[roles["swir1"]], img[roles["nir"]])
    return out


def visible_brightness(image: np.ndarray, band_names: Sequence[str]) -> np.ndarray:
    """Mean of the visible bands (all bands if none is known), ``float32 (rows, cols)``.

    Unlike ``brightness`` it ignores NIR, so vegetation growth does not brighten.
    """
    roles = band_roles(band_names, n_bands=image.shape[0])
    vis = [roles[r] for r in ("blue", "green", "red") if r in roles]
    return image[vis or list(range(image.shape[0]))].astype(np.float32).mean(axis=0)


#: Construction direction of each index difference (after - before): +1 gain, -1 loss.
CONSTRUCTION_SIGN = {"brightness": 1.0, "ndvi": -1.0, "greenness": -1.0, "ndbi": 1.0}


def index_stats(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str] = (),
) -> tuple[dict[str, float], dict[str, float]]:
    """Median and standard deviation of each index difference over the valid pixels.

    Returns
    -------
    tuple of dict
        ``(centre, scale)`` keyed by index name (those in :data:`CONSTRUCTION_SIGN`);
        scale 0 becomes 1, an index with no finite valid value gets ``(0, 1)``.
    """
    ib = compute_indices(before, band_names)
    ia = compute_indices(after, band_names)
    centre: dict[str, float] = {}
    scale: dict[str, float] = {}
    for k in ib:
        if k not in CONSTRUCTION_SIGN:
            continue
        d = ia[k] - ib[k]
        v = d[valid & np.isfinite(d)].astype(np.float64)
        centre[k] = float(np.median(v)) if v.size else 0.0
        scale[k] = (float(v.std()) or 1.0) if v.size else 1.0
    return centre, scale


def index_score(
    before: np.ndarray,
    after: np.ndarray,
    *,
    centre: dict[str, float],
    scale: dict[str, float],
    band_names: Sequence[str] = (),
) -> np.ndarray:
    """One-sided construction-direction score with given statistics (:func:`index_stats`).

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, >= 0; 0 where an index is undefined.
    """
    ib = compute_indices(before, band_names)
    ia = compute_indices(after, band_names)
    total = np.zeros(ib["brightness"].shape, np.float32)
    for k in centre:
        t = (ia[k] - ib[k] - np.float32(centre[k])) * np.float32(CONSTRUCTION_SIGN[k] / scale[k])
        np.fmax(t, 0.0, out=t)  # NaN (undefined index) -> 0 as well
        total += t * t
    return np.sqrt(total / np.float32(max(len(centre), 1)))


def index_change(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    *,
    band_names: Sequence[str] = (),
) -> np.ndarray:
    """Construction-direction change score from spectral index differences.

    Each index difference (after minus before) is centred on its valid median,
    divided by its valid standard deviation (:func:`index_stats`), and only its
    construction direction is kept: brightness *gain*, vegetation (NDVI or
    excess-green) *loss*, built-up (NDBI) *gain*. The score is the root mean square of
    these one-sided terms, so a pixel scores high when it brightened, lost vegetation
    or became more built-up, and zero when it darkened or greened.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on the same grid.
    valid : numpy.ndarray
        ``bool (rows, cols)``.
    band_names : sequence of str
        Band names for :func:`band_roles`; empty means the RGB fallback for 3 bands.

    Returns
    -------
    numpy.ndarray
        ``float32 (rows, cols)``, >= 0, NaN at invalid pixels.
    """
    centre, scale = index_stats(before, after, valid, band_names=band_names)
    score = index_score(before, after, centre=centre, scale=scale, band_names=band_names)
    score[~valid] = np.nan
    return score
