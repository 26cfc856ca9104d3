"""Per-date cloud, cloud-shadow and snow masks on the analysis grid.

A monitored structure is *unassessable* on a date where its footprint is under cloud,
shadow or snow, never *absent*. This module finds the mask of a date
(:func:`find_mask`) and reads it onto a grid window (:func:`read_mask`) as ``uint8``
codes :data:`MASK_CLEAR` (0), :data:`MASK_CLOUD` (1), :data:`MASK_SHADOW` (2),
:data:`MASK_SNOW` (3). Nodata is not a mask code: it comes from the images' own
valid-pixel masks (:func:`borderwatch.io.read_scene`). Where a mask raster does not
reach (outside its footprint, or its declared nodata) the code is :data:`MASK_CLEAR`:
the mask says nothing there.

Sources, in the order :func:`find_mask` tries them:

``user``
    The mask raster given for the date (the stack CSV's ``mask`` column), any CRS and
    resolution. Any nonzero value is :data:`MASK_CLOUD`, unless the raster carries the
    tag ``BORDERWATCH_MASK=codes`` (:data:`USER_MASK_TAG`): then its values are the codes
    above (0 clear, 1 cloud, 2 shadow, 3 snow; any other nonzero value is cloud).
``scl``
    Sentinel-2 L2A Scene Classification (``*_SCL_20m.jp2``, ``*SCL*.tif``, or a band
    described ``SCL``) among or beside the date's files (same folder, or the ``R20m`` /
    ``R60m`` folder of a ``.SAFE`` granule). Classes (:data:`SCL_CODES`): 3 cloud
    shadow -> shadow; 8 and 9 cloud medium/high probability and 10 thin cirrus ->
    cloud; 11 snow or ice -> snow; 0 no data and 1 saturated or defective ->
    :data:`MASK_CLOUD` (unusable, counted with clouds); 2 dark area, 4 vegetation,
    5 not vegetated, 6 water, 7 unclassified -> clear.
``qa_pixel``
    Landsat Collection 2 ``QA_PIXEL`` (``*_QA_PIXEL.TIF`` or a band described so). Bits
    (:data:`QA_CLOUD_BITS` ...): 0 fill, 1 dilated cloud, 2 cirrus, 3 cloud -> cloud
    (fill is unusable, counted with clouds); 4 cloud shadow -> shadow; 5 snow -> snow.
    A pixel with several flags takes the first of cloud, shadow, snow.
``s2cloudless``
    For Sentinel-2 L1C (the bands B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12
    among or beside the date's files; L2A has no B10) the Sentinel Hub pixel cloud
    detector (Sentinel Hub; evaluated in Skakun et al. 2022), which ships its LightGBM model in the
    package and runs offline. It needs the optional extra ``borderwatch[clouds]``;
    without it :func:`find_mask` says so and gives kind ``"none"``. The detector runs
    on a coarse lattice of about :data:`S2CLOUDLESS_RES_M` m (TOA reflectance =
    harmonised DN / 10000, see :mod:`borderwatch.radiometry`; unharmonised, clear land
    reads as cloud), with the settings of the package's published
    examples (threshold 0.4, averaging disk 4, dilation disk 2 coarse pixels; the
    library's own defaults are 1 and 1), and the mask is put on the grid by nearest
    neighbour. It flags clouds only, not shadows. Each window is computed with
    :data:`_S2CLOUDLESS_MARGIN` coarse pixels of context, so a window equals the same
    part of the whole grid's mask.

    Measured on the OSCD L1C scenes in ``../shared/data/oscd`` (tests/test_masks.py):
    the two cumulus clouds of Paris 2017-11-07 are found and Rennes 2015-08-21 and
    Beihai 2018-03-09 are clear, but at threshold 0.4 the model also flags bright bare
    soil and construction sites (Beihai 2016-12-09: 10 % of the scene, 1.6 % at 0.5)
    and dense city blocks (Paris-Bercy 2016-11-30: 8 %, 1.3 % at 0.5). Such pixels are
    made unassessable, never absent: a cost in coverage, which the ledger shows; a
    user mask or the L2A SCL is the better source where one exists.
``none``
    No mask: every pixel :data:`MASK_CLEAR`; the detail says why.

References
----------
Skakun, S. et al. (2022). Cloud Mask Intercomparison eXercise (CMIX): an evaluation of
cloud masking algorithms for Landsat 8 and Sentinel-2. *Remote Sensing of Environment*
274, 112990. https://doi.org/10.1016/j.rse.2022.112990
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import rasterio
import rasterio.errors
import rasterio.warp
import rasterio.windows
from affine import Affine
from rasterio.enums import Resampling

from borderwatch.errors import InputError, MissingDependencyError, RasterReadError
from borderwatch.io import Grid, open_date, open_raster, read_scene, source_window

__all__ = [
    "MASK_CLEAR",
    "MASK_CLOUD",
    "MASK_SHADOW",
    "MASK_SNOW",
    "QA_CLOUD_BITS",
    "QA_SHADOW_BIT",
    "QA_SNOW_BIT",
    "S2CLOUDLESS_BANDS",
    "S2CLOUDLESS_RES_M",
    "SCL_CODES",
    "USER_MASK_TAG",
    "MaskKind",
    "MaskSpec",
    "find_mask",
    "read_mask",
]

log = logging.getLogger(__name__)

MASK_CLEAR, MASK_CLOUD, MASK_SHADOW, MASK_SNOW = 0, 1, 2, 3
MaskKind = Literal["scl", "qa_pixel", "user", "s2cloudless", "none"]

#: Sentinel-2 L2A SCL class -> mask code (classes not listed are clear).
SCL_CODES = {
    0: MASK_CLOUD,  # no data
    1: MASK_CLOUD,  # saturated or defective
    3: MASK_SHADOW,  # cloud shadows
    8: MASK_CLOUD,  # cloud medium probability
    9: MASK_CLOUD,  # cloud high probability
    10: MASK_CLOUD,  # thin cirrus
    11: MASK_SNOW,  # snow or ice
}
#: Landsat C2 QA_PIXEL bits read as cloud: fill (0), dilated cloud (1), cirrus (2), cloud (3).
QA_CLOUD_BITS = (1 << 0) | (1 << 1) | (1 << 2) | (1 << 3)
#: Landsat C2 QA_PIXEL cloud shadow bit (4).
QA_SHADOW_BIT = 1 << 4
#: Landsat C2 QA_PIXEL snow bit (5).
QA_SNOW_BIT = 1 << 5
#: Tag (name, value) of a user mask raster whose values are the mask codes.
USER_MASK_TAG = ("BORDERWATCH_MASK", "codes")
#: The bands s2cloudless needs, in its order.
S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Pixel size the s2cloudless detector runs at, metres (rounded to whole grid pixels).
S2CLOUDLESS_RES_M = 60.0
#: Coarse pixels of context around a window for the detector's averaging and dilation.
_S2CLOUDLESS_MARGIN = 8

_SCL_NAME = re.compile(r"(?:^|[_\-.])SCL(?:[_\-.]|$)", re.IGNORECASE)
_QA_NAME = re.compile(r"(?:^|[_\-.])QA_PIXEL(?:[_\-.]|$)", re.IGNORECASE)
_BAND_TOKEN = re.compile(r"(?<=[_\-.])B(?:0[1-9]|1[0-2]|8A)(?=[_\-.]|$)", re.IGNORECASE)
_RASTER = (".tif", ".tiff", ".jp2")
#: Mask band files found by name or description: kind, name, description, title, legend.
_BAND_MASKS: tuple[tuple[MaskKind, re.Pattern[str], str, str, str], ...] = (
    ("scl", _SCL_NAME, "SCL", "Sentinel-2 SCL", "3 shadow, 8-10 cloud, 11 snow, 0-1 unusable"),
    (
        "qa_pixel",
        _QA_NAME,
        "QA_PIXEL",
        "Landsat QA_PIXEL",
        "bits 0-3 cloud (fill, dilated cloud, cirrus, cloud), 4 shadow, 5 snow",
    ),
)
_L2A = re.compile(r"MSIL2A|(?:^|/)L2A_", re.IGNORECASE)


@dataclass(frozen=True)
class MaskSpec:
    """Which mask a date uses.

    Attributes
    ----------
    kind : {"scl", "qa_pixel", "user", "s2cloudless", "none"}
        The mask source (see the module docstring).
    paths : tuple of str
        The mask raster (``scl``, ``qa_pixel``, ``user``) or the band files the
        detector reads (``s2cloudless``); ``()`` for ``none``.
    detail : str
        One line for the record: the file and convention, or why there is no mask.
    """

    kind: MaskKind
    paths: tuple[str, ...] = ()
    detail: str = ""

    def __post_init__(self) -> None:
        if self.kind not in get_args(MaskKind):
            raise InputError(f"unknown mask kind {self.kind!r}; one of {get_args(MaskKind)}")


# --------------------------------------------------------------------------- discovery
def _is_local(path: str) -> bool:
    return "://" not in path and not path.startswith("/vsi")


def _date_files(paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str]) -> list[str]:
    """Return the date's files, folders expanded to their rasters (URLs and STAC JSON as given)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[str] = []
    for p in map(str, paths):
        if _is_local(p) and Path(p).is_dir():
            out += sorted(str(q) for q in Path(p).iterdir() if q.suffix.lower() in _RASTER)
        else:
            out.append(p)
    return out


def _beside(files: Sequence[str]) -> list[str]:
    """Rasters in the files' folders and in sibling resolution folders (``R20m``...)."""
    folders: list[Path] = []
    for f in files:
        if not _is_local(f):
            continue
        folder = Path(f).parent
        found = [folder]
        if re.fullmatch(r"R\d+m", folder.name) and folder.parent.is_dir():
            found += sorted(q for q in folder.parent.iterdir() if re.fullmatch(r"R\d+m", q.name))
        folders += [d for d in found if d not in folders and d.is_dir()]
    return [
        str(q)
        for d in folders
        for q in sorted(d.iterdir())
        if q.is_file() and q.suffix.lower() in _RASTER and str(q) not in files
    ]


def _described(path: str, names: Sequence[str]) -> int | None:
    """1-based band whose description is one of ``names`` (case-insensitive), else None.

    Only local files are opened: a URL's header would cost a request per date.
    """
    if not (_is_local(path) and Path(path).is_file()):
        return None
    try:
        with open_raster(path) as src:
            descs = src.descriptions
    except RasterReadError:
        return None
    wanted = {n.upper() for n in names}
    for i, d in enumerate(descs, start=1):
        if d and d.strip().upper() in wanted:
            return i
    return None


def _closest(candidates: Sequence[str], files: Sequence[str]) -> str:
    """Return the candidate whose name shares the longest prefix with one of the date's files."""

    def shared(c: str) -> int:
        name = Path(c).name
        return max(len(os.path.commonprefix([name, Path(f).name])) for f in files)

    return max(candidates, key=shared)  # max keeps the first of equals (sorted input)


def _find_band_file(
    files: Sequence[str], name_re: re.Pattern[str], descriptions: Sequence[str]
) -> tuple[str, str] | None:
    """Find a mask band file among or beside the date's files: (path, how found)."""
    named = [f for f in files if name_re.search(Path(f).stem)]
    if named:
        return _closest(named, files), "among the date's files"
    for f in files:
        if _described(f, descriptions) is not None:
            return f, f"band described {descriptions[0]}"
    beside = [f for f in _beside(files) if name_re.search(Path(f).stem)]
    if beside:
        return _closest(beside, files), "beside the date's files"
    return None


def _s2cloudless_files(files: Sequence[str], band_names: Sequence[str]) -> list[str] | None:
    """Files holding the detector's bands: named band files (here or beside), or the date's."""
    if any(_L2A.search(f.replace("\\", "/")) for f in files):
        return None  # L2A: its SCL is the mask; it has no B10 anyway
    if {b.upper() for b in band_names} >= set(S2CLOUDLESS_BANDS):
        return list(files)
    tokens = {m.group(0).upper(): f for f in files if (m := _BAND_TOKEN.search(Path(f).name))}
    if not tokens:
        return None
    template = next(iter(tokens.values()))
    m = _BAND_TOKEN.search(Path(template).name)
    assert m is not None
    out: list[str] = []
    for band in S2CLOUDLESS_BANDS:
        if band in tokens:
            out.append(tokens[band])
            continue
        name = Path(template).name
        sibling = Path(template).with_name(name[: m.start()] + band + name[m.end() :])
        if not (_is_local(str(sibling)) and sibling.is_file()):
            return None
        out.append(str(sibling))
    return out


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    """Return the s2cloudless detector with its packaged model (loaded once per process)."""
    try:
        from s2cloudless import S2PixelCloudDetector
    except ImportError as exc:
        raise MissingDependencyError(
            "the s2cloudless cloud mask needs the clouds extra: pip install 'borderwatch[clouds]'"
        ) from exc
    return S2PixelCloudDetector(threshold=0.4, average_over=4, dilation_size=2, all_bands=False)


def _have_s2cloudless() -> bool:
    import importlib.util

    return importlib.util.find_spec("s2cloudless") is not None


def find_mask(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    user_mask: str | os.PathLike[str] | None = None,
    band_names: Sequence[str] = (),
) -> MaskSpec:
    """Find the cloud mask of one date.

    Parameters
    ----------
    paths : sequence of path
        The date's files (or folder), as :func:`borderwatch.io.open_date` takes them.
    user_mask : path, optional
        A mask raster given for the date; it wins over everything else. A Sentinel-2
        SCL or Landsat QA_PIXEL raster given here (recognised by its name or band
        description, as among a date's files; e.g. a STAC item's ``scl`` asset) is
        read as that product, not as a user mask.
    band_names : sequence of str
        The date's band names (:attr:`borderwatch.io.DateSource.band_names`), so that a
        multi-band file with the s2cloudless bands is recognised.

    Returns
    -------
    MaskSpec
        Kind ``"user"``, ``"scl"``, ``"qa_pixel"``, ``"s2cloudless"`` or ``"none"``;
        ``detail`` says which file and convention, or why there is no mask.

    Raises
    ------
    RasterReadError
        ``user_mask`` is missing or not a readable raster.
    """
    if user_mask is not None:
        path = str(user_mask)
        for kind, name_re, description, title, legend in _BAND_MASKS:
            found = _find_band_file([path], name_re, (description,))
            if found is not None and found[0] == path:
                return MaskSpec(kind, (path,), f"{title} {Path(path).name} (given): {legend}")
        convention = (
            "values are mask codes (0 clear, 1 cloud, 2 shadow, 3 snow)"
            if _declares_codes(path)
            else "nonzero = cloud"
        )
        return MaskSpec("user", (path,), f"user mask {Path(path).name}: {convention}")
    files = _date_files(paths)
    for kind, name_re, description, title, legend in _BAND_MASKS:
        found = _find_band_file(files, name_re, (description,))
        if found is not None:
            detail = f"{title} {Path(found[0]).name} ({found[1]}): {legend}"
            return MaskSpec(kind, (found[0],), detail)
    bands = _s2cloudless_files(files, band_names)
    if bands is not None:
        if not _have_s2cloudless():
            reason = (
                "Sentinel-2 L1C without cloud mask: s2cloudless is not installed "
                "(pip install 'borderwatch[clouds]')"
            )
            log.warning("%s: %s; no cloud mask", files[0], reason)
            return MaskSpec("none", (), reason)
        return MaskSpec(
            "s2cloudless",
            tuple(dict.fromkeys(bands)),
            f"s2cloudless on Sentinel-2 L1C bands at about {S2CLOUDLESS_RES_M:g} m "
            "(threshold 0.4, clouds only)",
        )
    first = Path(files[0]).name if files else "the date"
    return MaskSpec("none", (), f"no user mask, SCL, QA_PIXEL or L1C bands found for {first}")


# --------------------------------------------------------------------------- reading
def _raw_on_grid(path: str, grid: Grid, *, names: Sequence[str], user: bool) -> np.ndarray:
    """Raw values of a mask band on ``grid`` by nearest neighbour; -1 where it says nothing.

    Outside the file is -1; for a user mask also its nodata / internal mask.
    """
    out = np.full(grid.shape, -1, np.int32)
    with open_raster(path) as src:
        band = _described(path, names) or 1
        win = source_window(src, grid, pad=1)
        if win is None:
            return out
        try:
            raw = src.read(band, window=win, out_dtype="int32")
            if user:
                raw[src.read_masks(band, window=win) == 0] = -1
        except rasterio.errors.RasterioIOError as exc:
            raise RasterReadError(f"{path}: cannot decode the mask ({exc})") from exc
        rasterio.warp.reproject(
            raw,
            out,
            src_transform=rasterio.windows.transform(win, src.transform),
            src_crs=src.crs,
            src_nodata=-1,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=-1,
            resampling=Resampling.nearest,
            init_dest_nodata=True,
        )
    return out


def _codes_scl(raw: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    for cls, code in SCL_CODES.items():
        lut[cls] = code
    return np.where((raw >= 0) & (raw < 256), lut[np.clip(raw, 0, 255)], MASK_CLEAR)


def _codes_qa(raw: np.ndarray) -> np.ndarray:
    inside = raw >= 0
    return np.select(
        [
            inside & (raw & QA_CLOUD_BITS != 0),
            inside & (raw & QA_SHADOW_BIT != 0),
            inside & (raw & QA_SNOW_BIT != 0),
        ],
        [MASK_CLOUD, MASK_SHADOW, MASK_SNOW],
        MASK_CLEAR,
    )


def _declares_codes(path: str) -> bool:
    """Whether a user mask raster carries the tag :data:`USER_MASK_TAG` (values are codes)."""
    with open_raster(path) as src:
        return src.tags().get(USER_MASK_TAG[0], "").strip().lower() == USER_MASK_TAG[1]


def _codes_user(raw: np.ndarray, path: str) -> np.ndarray:
    if _declares_codes(path):
        known = (raw >= MASK_CLEAR) & (raw <= MASK_SNOW)
        return np.where(known, raw, np.where(raw > 0, MASK_CLOUD, MASK_CLEAR))
    return np.where(raw > 0, MASK_CLOUD, MASK_CLEAR)


def _s2cloudless_codes(spec: MaskSpec, grid: Grid, win: tuple[int, int, int, int]) -> np.ndarray:
    """Run the detector on a coarse lattice around ``win`` and put its mask on the grid."""
    detector = _detector()
    source = open_date(spec.paths)
    names = [n.upper() for n in source.band_names]
    missing = [b for b in S2CLOUDLESS_BANDS if b not in names]
    if missing:
        raise InputError(f"{spec.paths[0]}: s2cloudless needs bands {', '.join(missing)}")
    idx = [names.index(b) for b in S2CLOUDLESS_BANDS]
    f = max(1, round(S2CLOUDLESS_RES_M / grid.res[0]))  # grid pixels per coarse pixel
    r0, c0, h, w = win
    m = _S2CLOUDLESS_MARGIN
    cr0, cc0 = r0 // f - m, c0 // f - m
    cr1, cc1 = math.ceil((r0 + h) / f) + m, math.ceil((c0 + w) / f) + m
    coarse = Grid(
        grid.crs,
        grid.transform @ Affine.translation(cc0 * f, cr0 * f) @ Affine.scale(f),
        (cr1 - cr0, cc1 - cc0),
    )
    scene = read_scene(source, coarse)
    refl = np.nan_to_num(scene.data[idx] / 10000.0).transpose(1, 2, 0)[np.newaxis]
    prob = detector.get_cloud_probability_maps(refl.astype(np.float32))
    cloud = detector.get_mask_from_prob(prob)[0].astype(bool) & scene.valid
    rows = np.arange(r0, r0 + h) // f - cr0
    cols = np.arange(c0, c0 + w) // f - cc0
    return np.where(cloud[np.ix_(rows, cols)], MASK_CLOUD, MASK_CLEAR)


def read_mask(
    spec: MaskSpec, grid: Grid, window: rasterio.windows.Window | None = None
) -> np.ndarray:
    """Read a date's mask onto ``grid`` (or a window of it) as ``uint8`` mask codes.

    Parameters
    ----------
    spec : MaskSpec
        From :func:`find_mask`.
    grid : Grid
        The analysis grid (projected CRS, metres).
    window : rasterio.windows.Window, optional
        Rows/columns of ``grid`` to read; default the whole grid.

    Returns
    -------
    numpy.ndarray
        ``uint8 (rows, cols)`` of the window: :data:`MASK_CLEAR`, :data:`MASK_CLOUD`,
        :data:`MASK_SHADOW` or :data:`MASK_SNOW`; all clear for kind ``"none"``.

    Raises
    ------
    RasterReadError
        The mask file is missing or cannot be decoded.
    MissingDependencyError
        Kind ``"s2cloudless"`` without the ``clouds`` extra.
    """
    if window is None:
        window = rasterio.windows.Window(0, 0, grid.shape[1], grid.shape[0])
    window = window.round_offsets().round_lengths()
    sub = grid.window_grid(window)
    if spec.kind == "none":
        return np.zeros(sub.shape, np.uint8)
    if spec.kind == "s2cloudless":
        win = (int(window.row_off), int(window.col_off), sub.shape[0], sub.shape[1])
        return _s2cloudless_codes(spec, grid, win).astype(np.uint8)
    path = spec.paths[0]
    names = {"scl": ("SCL",), "qa_pixel": ("QA_PIXEL",), "user": ()}[spec.kind]
    raw = _raw_on_grid(path, sub, names=names, user=spec.kind == "user")
    if spec.kind == "scl":
        codes = _codes_scl(raw)
    elif spec.kind == "qa_pixel":
        codes = _codes_qa(raw)
    else:
        codes = _codes_user(raw, path)
    return codes.astype(np.uint8)
