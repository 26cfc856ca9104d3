"""Training data of the structure-change network, read from ``../shared/data``.

Two kinds of record, both RGB ``uint8 (3, rows, cols)`` on their native pixel grid with
the pixel size in metres (from the georeferencing or the dataset's stated GSD; the
patch sampler of :mod:`borderwatch.structure.augment` resamples every patch to the
network's 0.5 m):

* :class:`ChangePair`: a before/after pair with a "new structure" label. LEVIR-CD
  samples and full tiles (label = building change, almost all new construction),
  DSIFN-CD (general land-cover change, kept apart by default), xBD and Ida-BD (a
  disaster between the dates and no new construction: the label is all zero, so
  destroyed buildings are not new structures) and SpaceNet 7 (a building ``Id`` first
  seen in month *m* of the months present is new between the month before and *m*).
* :func:`synthetic_pairs`: scenes of :func:`borderwatch.synthetic.make_pair` (the
  project's own renderer, seeds from :data:`SYNTHETIC_SEED0` on, never the demo's or
  the tests'), the only pairs with labelled new fences and patrol strips; their
  shadows are outside the label.
* :class:`Footprints`: one date with its building mask (Inria, WHU satellite I and II,
  SpaceNet 1 and 2, crowdAI, LoveDA rural, the Myanmar UAV clip, Shanghai), the source
  of synthetic change pairs (buildings pasted into backgrounds, Zheng et al. 2021 [1]_).

Every record carries ``group``, the place it shows: cross-validation folds and the
held-out place are by group (the two LEVIR sample crops that are windows of tile
``test_2`` are in group ``levir/test_2`` with that tile), and ``files``, the paths under
the data root whose SHA-256 (:func:`file_manifest`) the model card lists.

References
----------
.. [1] Zheng, Z., Ma, A., Zhang, L., Zhong, Y. (2021). Change is Everywhere:
   Single-Temporal Supervised Object Change Detection in Remote Sensing Imagery. ICCV.
   https://doi.org/10.1109/ICCV48922.2021.01491
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.features
from PIL import Image

from borderwatch.errors import InputError

__all__ = [
    "CHANGE_DATASETS",
    "FOOTPRINT_DATASETS",
    "ChangePair",
    "Footprints",
    "file_manifest",
    "held_groups",
    "read_change_pairs",
    "read_footprints",
    "synthetic_pairs",
]

#: First seed of the synthetic training scenes (the demo tiles use seed 0, tests
#: single digits).
SYNTHETIC_SEED0 = 1000
#: Pixel sizes the synthetic scenes are rendered at, metres.
SYNTHETIC_PIXEL_M = (0.5, 0.6, 0.8, 1.0, 1.2)

#: Stated or estimated ground sample distance (m) of the datasets that are not
#: georeferenced (README.txt of ``../shared/data``).
_GSD_M = {
    "levir": 0.5,
    "dsifn": 0.5,
    "xbd": 0.6,  # "about 0.5-0.8 m" (xBD states <= 0.8 m)
    "ida_bd": 0.6,  # "sub-metre, Maxar-class", not stated: as xBD
    "inria": 0.3,
    "whu_i": 0.4,  # 0.3-2.5 m per the WHU page; building sizes suggest ~0.4 m
    "whu_ii": 0.4,  # stated 2.7 m contradicts the footprint sizes (~0.3-0.5 m)
    "sn2": 0.3,
    "crowdai": 0.3,
    "loveda": 0.3,
    "myanmar": 0.1,  # estimate: a ~6 m road is ~60 px wide
}


class _Named:
    """A record named ``<dataset>/<item>`` showing place ``group``."""

    name: str
    group: str

    @property
    def dataset(self) -> str:
        """The dataset part of :attr:`name`."""
        return self.name.split("/", 1)[0]


@dataclass(frozen=True)
class ChangePair(_Named):
    """A labelled before/after RGB pair.

    Attributes
    ----------
    name : str
        Dataset-qualified name, e.g. ``"levir_tiles/test_1"``.
    group : str
        The place shown (folds and hold-outs are by group).
    before, after : numpy.ndarray
        ``uint8 (3, rows, cols)`` red, green, blue.
    new : numpy.ndarray
        ``bool (rows, cols)``: new structure between the dates.
    pixel_m : float
        Pixel size, metres.
    files : tuple of str
        The files read, relative to the data root.
    """

    name: str
    group: str
    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)
    new: np.ndarray = field(repr=False)
    pixel_m: float
    files: tuple[str, ...]


@dataclass(frozen=True)
class Footprints(_Named):
    """One RGB date with its building mask.

    Attributes
    ----------
    name, group, pixel_m, files
        As for :class:`ChangePair`.
    image : numpy.ndarray
        ``uint8 (3, rows, cols)``.
    building : numpy.ndarray
        ``bool (rows, cols)``.
    """

    name: str
    group: str
    image: np.ndarray = field(repr=False)
    building: np.ndarray = field(repr=False)
    pixel_m: float
    files: tuple[str, ...]


# --------------------------------------------------------------------------- helpers
def _rgb(path: Path) -> np.ndarray:
    """``uint8 (3, rows, cols)`` of a PNG/JPEG/TIFF (alpha and extra bands dropped)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _mask(path: Path, *, value: int | None = None) -> np.ndarray:
    """Boolean mask of a label image: ``== value``, else any non-zero first channel."""
    with Image.open(path) as im:
        arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr == value if value is not None else arr > 0


def _geo_rgb(path: Path) -> tuple[np.ndarray, float, rasterio.Affine, str]:
    """RGB, ground pixel size (m), transform and CRS of a georeferenced RGB(A) GeoTIFF."""
    with rasterio.open(path) as src:
        rgb = src.read((1, 2, 3))
        transform, crs = src.transform, src.crs
        res = abs(transform.a)
        if crs.is_geographic:  # degrees: metres at the centre latitude
            lat = src.xy(src.height // 2, src.width // 2)[1]
            res = res * 111_320.0 * math.cos(math.radians(lat))
        elif crs.to_epsg() == 3857:  # Web Mercator: scale by cos(latitude)
            y = src.xy(src.height // 2, src.width // 2)[1]
            lat = math.degrees(2 * math.atan(math.exp(y / 6_378_137.0)) - math.pi / 2)
            res = res * math.cos(math.radians(lat))
    return rgb.astype(np.uint8), float(res), transform, str(crs)


def _rel(root: Path, *paths: Path) -> tuple[str, ...]:
    return tuple(str(p.relative_to(root)) for p in paths)


def _need(path: Path) -> Path:
    if not path.exists():
        raise InputError(f"{path}: missing from the training data (see README.txt there)")
    return path


# --------------------------------------------------------------------------- change pairs
def _abl(root: Path, folder: str, dataset: str) -> Iterator[ChangePair]:
    """A/B/label PNG folders (LEVIR-CD samples and tiles, DSIFN-CD)."""
    base = root / folder
    for lab in sorted((base / "label").glob("*.png")):
        a, b = _need(base / "A" / lab.name), _need(base / "B" / lab.name)
        stem = lab.stem
        if dataset == "dsifn":
            group = f"dsifn/{stem}"
        else:  # a LEVIR crop test_<tile>_<row>_<col> shows tile test_<tile>
            m = re.match(r"((?:train|val|test)_\d+)", stem)
            group = f"levir/{m.group(1) if m else stem}"
        yield ChangePair(
            f"{folder}/{stem}",
            group,
            _rgb(a),
            _rgb(b),
            _mask(lab),
            _GSD_M[dataset],
            _rel(root, a, b, lab),
        )


def _disaster(root: Path, folder: str, dataset: str) -> Iterator[ChangePair]:
    """XBD / Ida-BD pre/post pairs: no new construction, the label is all zero."""
    base = root / folder
    for pre in sorted((base / "images").glob("*_pre_disaster.png")):
        post = _need(pre.with_name(pre.name.replace("_pre_", "_post_")))
        before, after = _rgb(pre), _rgb(post)
        stem = pre.name.replace("_pre_disaster.png", "")
        yield ChangePair(
            f"{folder}/{stem}",
            f"{dataset}/{folder.rsplit('/', 1)[-1]}",
            before,
            after,
            np.zeros(before.shape[1:], bool),
            _GSD_M[dataset],
            _rel(root, pre, post),
        )


def _spacenet7(root: Path) -> Iterator[ChangePair]:
    """Consecutive months present of each SpaceNet 7 AOI; new = a building Id first seen."""
    import geopandas as gpd

    for aoi in sorted(p for p in (root / "spacenet7_samples").iterdir() if p.is_dir()):
        images = sorted((aoi / "images").glob("global_monthly_*_mosaic_*.tif"))
        seen: set[int] = set()
        prev: tuple[Path, np.ndarray] | None = None
        for img in images:
            lab = _need(aoi / "labels_match" / img.name.replace(".tif", "_Buildings.geojson"))
            rgb, res, transform, crs = _geo_rgb(img)
            gdf = gpd.read_file(lab)
            ids = set(int(i) for i in gdf["Id"])
            if prev is not None:
                fresh = gdf[~gdf["Id"].isin(sorted(seen))].to_crs(crs)
                new = rasterio.features.rasterize(
                    ((g, 1) for g in fresh.geometry if g is not None and not g.is_empty),
                    out_shape=rgb.shape[1:],
                    transform=transform,
                    dtype="uint8",
                ).astype(bool)
                month = img.name.split("_mosaic")[0].replace("global_monthly_", "")
                yield ChangePair(
                    f"spacenet7/{aoi.name}/{month}",
                    f"spacenet7/{aoi.name}",
                    prev[1],
                    rgb,
                    new,
                    res,
                    _rel(root, prev[0], img, lab),
                )
            seen |= ids
            prev = (img, rgb)


#: Change-pair readers by dataset key.
CHANGE_DATASETS: dict[str, Callable[[Path], Iterator[ChangePair]]] = {
    "levir_samples": lambda r: _abl(r, "levir_cd_samples", "levir"),
    "levir_tiles": lambda r: _abl(r, "levir_cd_tiles", "levir"),
    "dsifn": lambda r: _abl(r, "dsifn_cd_samples", "dsifn"),
    "xbd_harvey": lambda r: _disaster(r, "xbd_samples/hurricane-harvey", "xbd"),
    "xbd_guatemala": lambda r: _disaster(r, "xbd_samples/guatemala-volcano", "xbd"),
    "ida_bd": lambda r: _disaster(r, "ida_bd_samples", "ida_bd"),
    "spacenet7": _spacenet7,
}


def _read_registry(
    root: Path, datasets: Sequence[str], registry: Mapping[str, Callable[[Path], Any]], kind: str
) -> list[Any]:
    """Read ``datasets`` (keys of ``registry``) under ``root``, refusing unknown keys."""
    out: list[Any] = []
    for key in datasets:
        if key not in registry:
            raise InputError(f"unknown {kind} dataset {key!r}; use {sorted(registry)}")
        out.extend(registry[key](Path(root)))
    return out


def read_change_pairs(root: Path, datasets: Sequence[str]) -> list[ChangePair]:
    """Read the change pairs of ``datasets`` (keys of :data:`CHANGE_DATASETS`).

    Raises
    ------
    InputError
        An unknown dataset key or a missing file.
    """
    return _read_registry(root, datasets, CHANGE_DATASETS, "change")


# --------------------------------------------------------------------------- footprints
def _pairs_by_name(
    root: Path,
    images: Sequence[Path],
    mask_of: Callable[[Path], Path],
    dataset: str,
    group_of: Callable[[str], str],
    *,
    value: int | None = None,
) -> Iterator[Footprints]:
    for img in images:
        gt = _need(mask_of(img))
        yield Footprints(
            f"{dataset}/{img.stem}",
            f"{dataset}/{group_of(img.stem)}",
            _rgb(img),
            _mask(gt, value=value),
            _GSD_M[dataset],
            _rel(root, img, gt),
        )


def _tile_of(stem: str) -> str:
    """Inria/crowdAI crop ``austin3_45`` -> tile ``austin3``."""
    return stem.rsplit("_", 1)[0]


def _inria(root: Path) -> Iterator[Footprints]:
    base = root / "inria_buildings_samples"
    yield from _pairs_by_name(
        root,
        sorted((base / "images").glob("*.png")),
        lambda p: base / "gt" / p.name,
        "inria",
        _tile_of,
    )
    tifs = sorted((base / "austin1_chicago1_tif").glob("*/images/*.tif"))
    yield from _pairs_by_name(
        root, tifs, lambda p: p.parent.parent / "gt" / p.name, "inria", _tile_of
    )


def _whu(root: Path) -> Iterator[Footprints]:
    base = root / "whu_building_samples"
    one = sorted(
        p for p in (base / "satellite_I_global_cities").glob("*.png") if "_gt" not in p.name
    )
    yield from _pairs_by_name(
        root, one, lambda p: p.with_name(f"{p.stem}_gt.png"), "whu_i", lambda s: s
    )
    two = sorted((base / "satellite_II_east_asia" / "images").glob("*.png"))
    yield from _pairs_by_name(
        root, two, lambda p: p.parent.parent / "gt" / p.name, "whu_ii", lambda s: "east_asia"
    )


def _spacenet(root: Path) -> Iterator[Footprints]:
    base = root / "spacenet_buildings_samples"
    sn2 = sorted(p for p in (base / "sn2").glob("*.png") if not p.stem.endswith("_gt"))
    yield from _pairs_by_name(
        root,
        sn2,
        lambda p: p.with_name(f"{p.stem}_gt.png"),
        "sn2",
        lambda s: s.split("_AOI_")[1].rsplit("_img", 1)[0],
    )
    for img in sorted((base / "sn1_rio" / "3band").glob("*.tif")):
        gt = _need(base / "sn1_rio" / "building_mask_vis" / img.name)
        rgb, res, _, _ = _geo_rgb(img)
        yield Footprints(f"sn1/{img.stem}", "sn1/rio", rgb, _mask(gt), res, _rel(root, img, gt))


def _crowdai(root: Path) -> Iterator[Footprints]:
    base = root / "crowdai_samples"
    images = sorted((base / "image").glob("*_img.png"))
    yield from _pairs_by_name(
        root, images, lambda p: base / "gt" / (p.stem[0] * 2 + ".png"), "crowdai", lambda s: s
    )


def _loveda(root: Path) -> Iterator[Footprints]:
    base = root / "loveda_rural_samples"
    images = sorted((base / "images_png").glob("*.png"), key=lambda p: int(p.stem))
    yield from _pairs_by_name(
        root, images, lambda p: base / "masks_png" / p.name, "loveda", lambda s: s, value=2
    )


def _myanmar(root: Path) -> Iterator[Footprints]:
    base = root / "myanmar_uav_buildings_samples"
    img = base / "Clip_final_hlaing_thar_yar11.jpg"
    yield from _pairs_by_name(
        root,
        [img],
        lambda p: base / "labelme_output" / "label.png",
        "myanmar",
        lambda s: "hlaing_thar_yar",
        value=1,
    )


def _shanghai(root: Path) -> Iterator[Footprints]:
    base = root / "shanghai_building_height_samples"
    for img in sorted(base.glob("google_*.tif")):
        hgt = _need(img.with_name(img.name.replace("google_", "height_")))
        rgb, res, _, _ = _geo_rgb(img)
        with rasterio.open(hgt) as src:
            building = src.read(1) != 65535
        yield Footprints(
            f"shanghai/{img.stem}", "shanghai/shanghai", rgb, building, res, _rel(root, img, hgt)
        )


#: Footprint readers by dataset key (SpaceNet 4 Atlanta is panchromatic: not read).
FOOTPRINT_DATASETS: dict[str, Callable[[Path], Iterator[Footprints]]] = {
    "inria": _inria,
    "whu": _whu,
    "spacenet": _spacenet,
    "crowdai": _crowdai,
    "loveda": _loveda,
    "myanmar": _myanmar,
    "shanghai": _shanghai,
}


def read_footprints(root: Path, datasets: Sequence[str]) -> list[Footprints]:
    """Read the single-date building footprints of ``datasets`` (:data:`FOOTPRINT_DATASETS`).

    Raises
    ------
    InputError
        An unknown dataset key or a missing file.
    """
    return _read_registry(root, datasets, FOOTPRINT_DATASETS, "footprint")


def held_groups(holdout: Sequence[str], groups: set[str]) -> set[str]:
    """Return the groups ``holdout`` names: a group, or ``<prefix>/*`` for all of a dataset's.

    Raises
    ------
    InputError
        An entry that matches no group read.
    """
    held: set[str] = set()
    for h in holdout:
        match = {g for g in groups if g.startswith(h[:-1])} if h.endswith("/*") else {h} & groups
        if not match:
            raise InputError(f"hold-out {h!r} matches none of the groups read")
        held |= match
    return held


def synthetic_pairs(n: int, *, seed0: int = SYNTHETIC_SEED0) -> list[ChangePair]:
    """``n`` rendered scenes as change pairs (one in five without construction).

    Each scene is :func:`borderwatch.synthetic.make_pair` with seed ``seed0 + i``, a
    pixel size of :data:`SYNTHETIC_PIXEL_M` in turn, a random misregistration of up to
    1 pixel, and its red, green, blue stretched to 0-255 by the 1st and 99th percentile
    of both dates together; ``new`` is the planted buildings, watchtower and fence
    strip rasterised on the grid.
    """
    from borderwatch.synthetic import make_pair

    out = []
    for i in range(n):
        seed = seed0 + i
        rng = np.random.default_rng(seed)
        pixel_m = SYNTHETIC_PIXEL_M[i % len(SYNTHETIC_PIXEL_M)]
        size = int(math.ceil(512 / pixel_m))
        changes = i % 5 != 4
        dr, dc = (float(v) for v in rng.uniform(-1, 1, 2))
        pair = make_pair(seed=seed, size=size, pixel_m=pixel_m, changes=changes, shift_px=(dr, dc))
        rgb = [pair.band_names.index(b) for b in ("red", "green", "blue")]
        both = np.stack([pair.before[rgb], pair.after[rgb]]).astype(np.float32)
        lo, hi = np.percentile(both, [1, 99])
        before, after = (np.clip((d - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8) for d in both)
        new = np.zeros((size, size), bool)
        if len(pair.truth):
            new = rasterio.features.rasterize(
                [(g, 1) for g in pair.truth.geometry],
                out_shape=(size, size),
                transform=pair.transform,
                dtype="uint8",
            ).astype(bool)
        out.append(
            ChangePair(f"synthetic/{seed}", f"synthetic/{seed}", before, after, new, pixel_m, ())
        )
    return out


def file_manifest(root: Path, records: Sequence[ChangePair | Footprints]) -> list[dict[str, str]]:
    """``[{"path": ..., "sha256": ...}]`` of every file the records were read from, sorted."""
    paths = sorted({f for r in records for f in r.files})
    return [
        {"path": p, "sha256": hashlib.sha256((Path(root) / p).read_bytes()).hexdigest()}
        for p in paths
    ]
