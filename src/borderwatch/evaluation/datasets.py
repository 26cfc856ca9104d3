"""Readers for labelled change-detection datasets, for evaluation and training.

Every reader returns :class:`LabelledPair` objects: before/after arrays on one pixel
grid, a valid mask, the truth mask and the mask of *labelled* pixels (datasets with
partial reference sampling score only those). Supported layouts, as found in
``../shared/data``:

* OSCD (Daudt et al. 2018): per-city folders ``imgs_1/``, ``imgs_2/`` of single-band
  Sentinel-2 GeoTIFFs and ``<city>/cm/<city>-cm.tif`` labels (1 = no change,
  2 = change) on the ``imgs_1`` 10 m grid.
* LEVIR-CD (Chen & Shi 2020) and DSIFN-CD (Zhang et al. 2020) samples: ``A/``, ``B/``
  and ``label/`` PNG folders, RGB, not georeferenced: the caller gives the pixel size
  (:data:`PNG_PIXEL_SIZES` holds the figures the benchmarks use and where they come
  from).
* Landsat Taizhou (Wu, Du & Zhang 2014): ENVI ``2000TM``/``2003TM`` with partial
  labels ``change.bmp`` and ``unchanged.bmp``.

References
----------
.. [1] Daudt, R. C., Le Saux, B., Boulch, A., Gousseau, Y. (2018). Urban change detection
   for multispectral earth observation using convolutional neural networks. IGARSS.
   https://doi.org/10.1109/IGARSS.2018.8518015
.. [2] Chen, H., Shi, Z. (2020). A spatial-temporal attention-based method and a new
   dataset for remote sensing image change detection. Remote Sensing 12(10), 1662.
   https://doi.org/10.3390/rs12101662
.. [3] Wu, C., Du, B., Zhang, L. (2014). Slow feature analysis for change detection in
   multispectral imagery. IEEE TGRS 52(5), 2858-2874.
   https://doi.org/10.1109/TGRS.2013.2266673
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import rasterio
import rasterio.errors
import rasterio.windows
from PIL import Image

from borderwatch.errors import InputError, RasterReadError
from borderwatch.io import (
    Grid,
    check_shape,
    expand_paths,
    load_pair,
    open_date,
    open_raster,
)

__all__ = [
    "OSCD_BANDS",
    "PNG_PIXEL_SIZES",
    "LabelledPair",
    "check_pixel_size",
    "read_image_array",
    "read_mask_array",
    "read_oscd_city",
    "iter_oscd",
    "is_georeferenced",
    "iter_png_pairs",
    "load_labelled",
    "read_taizhou",
    "oscd_cities",
]

PathLike = str | os.PathLike[str]

#: Sentinel-2 bands used for OSCD: the four 10 m bands plus the 20 m SWIR bands (NDBI).
OSCD_BANDS = ("B02", "B03", "B04", "B08", "B11", "B12")
#: Pixel size in metres of the un-georeferenced PNG datasets, and its source.
PNG_PIXEL_SIZES: dict[str, tuple[float, str]] = {
    "levir": (0.5, "published: Chen & Shi 2020, Google Earth at 0.5 m"),
    "dsifn": (
        0.5,
        "assumed: the DSIFN-CD samples come with no pixel size (Google Earth, "
        "sub-metre); 0.5 m as in every earlier table",
    ),
}
_S2_PIXEL_M = 10.0
_TAIZHOU_BANDS = ("blue", "green", "red", "nir", "swir1", "swir2")


@dataclass(frozen=True)
class LabelledPair:
    """One labelled before/after pair on a common pixel grid.

    Attributes
    ----------
    name : str
        Dataset-qualified name, e.g. ``"oscd/bercy"``.
    before, after : numpy.ndarray
        ``float32 (bands, rows, cols)``; NaN where invalid.
    valid : numpy.ndarray
        ``bool (rows, cols)``: valid in both dates.
    truth : numpy.ndarray
        ``bool (rows, cols)``: True where the reference says change.
    labelled : numpy.ndarray
        ``bool (rows, cols)``: pixels that carry a reference label (all of them for
        fully labelled datasets).
    band_names : tuple of str
        One name per band (``B02``... or ``red``...).
    pixel_area_m2 : float
        Area of one pixel in square metres.
    grid : Grid or None
        Georeferenced grid of the arrays, or None for plain pixel grids (PNG).
    """

    name: str
    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)
    valid: np.ndarray = field(repr=False)
    truth: np.ndarray = field(repr=False)
    labelled: np.ndarray = field(repr=False)
    band_names: tuple[str, ...]
    pixel_area_m2: float
    grid: Grid | None = field(default=None, repr=False)

    def select_bands(self, keep: Sequence[int]) -> LabelledPair:
        """Return the same pair with only the bands at indexes ``keep``, in that order."""
        idx = list(keep)
        return replace(
            self,
            before=self.before[idx],
            after=self.after[idx],
            band_names=tuple(self.band_names[i] for i in idx),
        )

    def __post_init__(self) -> None:
        shp = self.before.shape
        if self.after.shape != shp or self.before.ndim != 3:
            raise InputError(f"{self.name}: before {shp} and after {self.after.shape} differ")
        for arr in (self.valid, self.truth, self.labelled):
            if arr.shape != shp[1:]:
                raise InputError(f"{self.name}: mask {arr.shape} does not match {shp[1:]}")


def read_image_array(path: PathLike) -> np.ndarray:
    """Read any raster or PNG as ``float32 (bands, rows, cols)``, alpha dropped.

    Un-georeferenced files (PNG, BMP) are read as plain pixel grids.

    Raises
    ------
    RasterReadError
        The file is missing or unreadable.
    """
    path = Path(path)
    if path.suffix.lower() in (".png", ".bmp", ".jpg", ".jpeg"):
        try:
            with Image.open(path) as img:
                arr = np.asarray(img)
        except OSError as exc:
            raise RasterReadError(f"{path}: cannot read image ({exc})") from exc
        if arr.ndim == 2:
            arr = arr[None]
        else:
            arr = np.moveaxis(arr, -1, 0)
            if arr.shape[0] in (2, 4):  # LA / RGBA: drop alpha
                arr = arr[:-1]
        return arr.astype(np.float32)
    # Label rasters often carry no georeferencing; they are read as pixel grids.
    with open_raster(path) as src:
        return src.read().astype(np.float32)


def read_mask_array(path: PathLike, *, change_value: float | None = None) -> np.ndarray:
    """Read a truth mask (raster or PNG) as ``bool (rows, cols)``.

    Parameters
    ----------
    path : path
        Single-band raster/PNG (multi-channel PNGs use their first channel).
    change_value : float, optional
        Pixel value meaning change (e.g. 2 for OSCD, where 1 = no change); default:
        any non-zero value is change.
    """
    arr = read_image_array(path)[0]
    return arr != 0 if change_value is None else arr == float(change_value)


def _root(root: PathLike, what: str) -> Path:
    p = Path(root)
    if not p.is_dir():
        raise InputError(f"{p}: {what} folder not found")
    return p


def _oscd_dirs(root: Path) -> tuple[Path, Path]:
    imgs = root / "Onera Satellite Change Detection dataset - Images"
    labels = root / "Onera Satellite Change Detection dataset - Train Labels"
    if not imgs.is_dir() or not labels.is_dir():
        raise InputError(f"{root}: not an OSCD folder (Images / Train Labels folders missing)")
    return imgs, labels


def oscd_cities(root: PathLike) -> list[str]:
    """Cities of an OSCD folder that have both images and labels, sorted."""
    imgs, labels = _oscd_dirs(_root(root, "OSCD"))
    return sorted(
        p.name for p in imgs.iterdir() if (p / "imgs_1").is_dir() and (labels / p.name).is_dir()
    )


def _band_files(folder: Path, bands: Sequence[str]) -> list[Path]:
    files = []
    for band in bands:
        hits = sorted(folder.glob(f"*_{band}.tif"))
        if not hits:
            raise InputError(f"{folder}: no file for band {band}")
        files.append(hits[0])
    return files


def read_oscd_city(root: PathLike, city: str, *, bands: Sequence[str] = OSCD_BANDS) -> LabelledPair:
    """Read one OSCD city on the native grid of its ``imgs_1`` 10 m bands.

    Parameters
    ----------
    root : path
        The ``oscd`` folder holding the Images and Train Labels folders.
    city : str
        City folder name, e.g. ``"bercy"``.
    bands : sequence of str
        Sentinel-2 band names to read; 20 m bands are resampled onto the 10 m grid.

    Returns
    -------
    LabelledPair
        ``grid`` is in EPSG:4326 (the files' CRS), so ``pixel_area_m2`` is set to the
        nominal 100 m2 of the Sentinel-2 10 m bands rather than derived from degrees.
    """
    imgs, labels = _oscd_dirs(_root(root, "OSCD"))
    b_src = open_date(_band_files(imgs / city / "imgs_1", bands))
    a_src = open_date(_band_files(imgs / city / "imgs_2", bands))
    sb, sa = load_pair(b_src, a_src, match_before=True)
    cm = labels / city / "cm" / f"{city}-cm.tif"
    if not cm.exists():
        raise InputError(f"{cm}: OSCD label file missing")
    label = read_image_array(cm)[0]
    # The label shares the imgs_1 10 m pixel grid; crop it to the analysis window.
    with rasterio.open(b_src.paths[0]) as src:
        win = rasterio.windows.from_bounds(*sb.grid.bounds, transform=src.transform)
    r0, c0 = int(round(win.row_off)), int(round(win.col_off))
    rows, cols = sb.grid.shape
    label = label[r0 : r0 + rows, c0 : c0 + cols]
    if label.shape != (rows, cols):
        raise InputError(f"{cm}: label {label.shape} does not cover the grid {(rows, cols)}")
    valid = sb.valid & sa.valid
    return LabelledPair(
        name=f"oscd/{city}",
        before=sb.data,
        after=sa.data,
        valid=valid,
        truth=label == 2,
        labelled=label > 0,
        band_names=b_src.band_names,
        pixel_area_m2=_S2_PIXEL_M**2,
        grid=sb.grid,
    )


def iter_oscd(
    root: PathLike, *, cities: Sequence[str] | None = None, bands: Sequence[str] = OSCD_BANDS
) -> Iterator[LabelledPair]:
    """Yield :func:`read_oscd_city` for each city (default: all with labels)."""
    for city in cities or oscd_cities(root):
        yield read_oscd_city(root, city, bands=bands)


def iter_png_pairs(
    root: PathLike, *, pixel_m: float, dataset: str | None = None
) -> Iterator[LabelledPair]:
    """Yield the pairs of an ``A/``, ``B/``, ``label/`` PNG folder (LEVIR-CD, DSIFN-CD).

    Parameters
    ----------
    root : path
        Folder with ``A``, ``B`` and ``label`` sub-folders of same-named PNGs.
    pixel_m : float
        Pixel size in metres; PNGs carry none, so it has no default (see
        :data:`PNG_PIXEL_SIZES` for the benchmark datasets).
    dataset : str, optional
        Prefix for the pair names (default: the folder name).

    Raises
    ------
    InputError
        The folder holds no PNG, or ``pixel_m`` is not a positive number.
    """
    root = _root(root, "PNG dataset")
    if not pixel_m > 0:
        raise InputError(f"{root}: pixel size {pixel_m} m is not positive")
    names = sorted(p.name for p in (root / "A").glob("*.png"))
    if not names:
        raise InputError(f"{root}/A: no PNG files")
    prefix = dataset or root.name
    for name in names:
        before = read_image_array(root / "A" / name)
        after = read_image_array(root / "B" / name)
        truth = read_mask_array(root / "label" / name)
        rows, cols = truth.shape
        yield LabelledPair(
            name=f"{prefix}/{Path(name).stem}",
            before=before,
            after=after,
            valid=np.ones((rows, cols), bool),
            truth=truth,
            labelled=np.ones((rows, cols), bool),
            band_names=("red", "green", "blue")[: before.shape[0]],
            pixel_area_m2=pixel_m * pixel_m,
        )


def read_taizhou(root: PathLike) -> LabelledPair:
    """Read the Landsat-7 Taizhou pair (2000 vs 2003) with its partial labels.

    Parameters
    ----------
    root : path
        The ``Taizhou`` folder (``2000TM``, ``2003TM``, ``change.bmp``, ``unchanged.bmp``).

    Returns
    -------
    LabelledPair
        Bands named blue, green, red, nir, swir1, swir2 (ETM+ 1-5, 7); only pixels
        in either label image are ``labelled``.
    """
    root = _root(root, "Taizhou")
    sb, sa = load_pair(root / "2000TM", root / "2003TM", match_before=True)
    change = read_mask_array(root / "change.bmp")
    unchanged = read_mask_array(root / "unchanged.bmp")
    if change.shape != sb.grid.shape:
        raise InputError(f"{root}: labels {change.shape} do not match images {sb.grid.shape}")
    return LabelledPair(
        name="landsat/taizhou",
        before=sb.data,
        after=sa.data,
        valid=sb.valid & sa.valid,
        truth=change,
        labelled=change | unchanged,
        band_names=_TAIZHOU_BANDS[: sb.data.shape[0]],
        pixel_area_m2=sb.grid.pixel_area,
        grid=sb.grid,
    )


def is_georeferenced(paths: Sequence[PathLike]) -> bool:
    """Whether the first file (of a folder too) has a CRS and a non-identity transform.

    Raises
    ------
    RasterReadError
        The file cannot be read.
    """
    first = expand_paths(paths)[0]
    with open_raster(first) as src:
        return src.crs is not None and not src.transform.is_identity


#: Largest relative difference between a given pixel size and a georeferenced file's own.
PIXEL_SIZE_RTOL = 0.05


def check_pixel_size(paths: Sequence[PathLike], pixel_m: float | None) -> float | None:
    """Check a caller's pixel size against a date's files; return the size to impose.

    Georeferenced files keep their own pixel size: the result is None, and a given
    ``pixel_m`` that differs from the finest pixel of the files (in metres; for
    geographic CRSs at the raster's centre latitude) by more than
    :data:`PIXEL_SIZE_RTOL` is refused, since it would contradict the georeferencing.
    Files without georeferencing (PNG, BMP, plain TIFF) carry no size, so ``pixel_m``
    is required and returned.

    Parameters
    ----------
    paths : sequence of path
        The files (or folder) of one date.
    pixel_m : float or None
        Pixel size the caller gives, metres.

    Raises
    ------
    InputError
        No georeferencing and no ``pixel_m``; or ``pixel_m`` contradicts the
        georeferencing. The message names the first file.
    """
    first = expand_paths(paths)[0]
    if not is_georeferenced([first]):
        if pixel_m is None:
            raise InputError(
                f"{first}: no georeferencing, so no pixel size; give --pixel-size "
                "(metres): the model's scale and every area depend on it"
            )
        if not pixel_m > 0:
            raise InputError(f"{first}: pixel size {pixel_m} m is not positive")
        return float(pixel_m)
    if pixel_m is not None:
        own = open_date(list(paths)).min_res_m
        if abs(pixel_m - own) > PIXEL_SIZE_RTOL * own:
            raise InputError(
                f"{first}: --pixel-size {pixel_m:g} m contradicts the file's "
                f"georeferencing ({own:.3g} m pixels); leave --pixel-size out"
            )
    return None


def load_labelled(
    before: Sequence[PathLike],
    after: Sequence[PathLike],
    truth: PathLike,
    *,
    change_value: float | None = None,
    pixel_m: float | None = None,
) -> LabelledPair:
    """Load any before/after pair with a truth mask on the before image's pixel grid.

    Georeferenced inputs are read on the before image's native grid
    (:func:`borderwatch.io.load_pair` with ``match_before=True``) and the truth mask,
    which must share the before image's pixel grid, is cropped to it. Inputs without
    georeferencing (PNG, BMP) are treated as plain pixel grids of ``pixel_m`` metres,
    which must then be given (:func:`check_pixel_size`); both dates must then have the
    same shape.

    Parameters
    ----------
    before, after : sequence of path
        One multi-band file or one file per band, per date.
    truth : path
        Truth raster or PNG; change is ``== change_value``, or any non-zero value.
    change_value : float, optional
        Value meaning change (2 for OSCD labels).
    pixel_m : float, optional
        Pixel size for un-georeferenced inputs, metres (required for them; for
        georeferenced inputs it must agree with the files).

    Raises
    ------
    InputError
        Shapes do not match, or the pixel size is missing or contradicts the files.
    """
    size = check_pixel_size(before, pixel_m)
    label = read_image_array(truth)[0]
    truth_mask = label != 0 if change_value is None else label == float(change_value)
    labelled = np.ones(label.shape, bool)
    if change_value is not None and float(change_value) != 0:
        labelled = label != 0  # 0 = unlabelled where the labels use 1/2 (OSCD)
    name = Path(before[0]).stem
    if size is None:  # georeferenced: the files' own grid and size
        b_src, a_src = open_date(list(before)), open_date(list(after))
        sb, sa = load_pair(b_src, a_src, match_before=True)
        with rasterio.open(b_src.paths[0]) as src:
            win = rasterio.windows.from_bounds(*sb.grid.bounds, transform=src.transform)
        r0, c0 = int(round(win.row_off)), int(round(win.col_off))
        rows, cols = sb.grid.shape
        check_shape((rows, cols), path=b_src.paths[0])  # before copies of it are made
        sl = (slice(r0, r0 + rows), slice(c0, c0 + cols))
        if label[sl].shape != (rows, cols):
            raise InputError(f"{truth}: mask {label.shape} does not cover the before grid")
        area = sb.grid.pixel_area if not sb.grid.crs.is_geographic else b_src.min_res_m**2
        return LabelledPair(
            name,
            sb.data,
            sa.data,
            sb.valid & sa.valid,
            truth_mask[sl],
            labelled[sl],
            b_src.band_names,
            area,
            sb.grid,
        )
    b = np.concatenate([read_image_array(p) for p in expand_paths(before)])
    a = np.concatenate([read_image_array(p) for p in expand_paths(after)])
    if b.shape != a.shape or b.shape[1:] != label.shape:
        raise InputError(
            f"{before[0]}: shapes differ: before {b.shape}, after {a.shape} ({after[0]}), "
            f"truth {label.shape} ({truth})"
        )
    check_shape((b.shape[1], b.shape[2]), path=before[0])
    valid = np.isfinite(b).all(axis=0) & np.isfinite(a).all(axis=0)
    names = (
        ("red", "green", "blue")
        if b.shape[0] == 3
        else tuple(f"band{i + 1}" for i in range(b.shape[0]))
    )
    return LabelledPair(name, b, a, valid, truth_mask, labelled, names, size * size)
