"""Imagery metadata of one date: acquisition date, credit, scene id, synthetic flag.

An analyst publishing a finding must state when each image was taken and whose it is
("© CNES 2014, Distribution Airbus DS"; "Contains modified Copernicus Sentinel data
2020"). This module owns where those values come from, in this order for each field:

1. the command line (``--before-date``, ``--after-credit``, ...; :class:`ImageryOptions`);
2. acquisition tags in the file (``ACQUISITION_DATE``, ``DATE_ACQUIRED``,
   ``SENSING_TIME``, ...; ``TIFFTAG_COPYRIGHT``, ``CREDIT``, ...; ``PRODUCT_ID``,
   ``LANDSAT_PRODUCT_ID``, ...) and an ENVI header's ``acquisition time``;
3. Sentinel-2 and Landsat product and tile names, in the file name, a folder above it
   (``S2A_MSIL2A_20200115T030101_N0213_R032_T49QCD_20200115T060000.SAFE``,
   ``T49QCD_20200115T030101_B04.jp2``, ``LC08_L2SP_118038_20200115_20200823_02_T1``,
   ``LC81180382020015LGN00``, ``L71119038_03820000317``) or an ENVI header's
   description and band names: date, scene id and the programme's own credit line;
4. any ``YYYY-MM-DD`` / ``YYYYMMDD`` date in the file name;
5. ``TIFFTAG_DATETIME`` (often the time the file was written, not the acquisition,
   so it is the last resort for a date and the report says it came from there).

Where nothing gives a value it stays ``None`` and the report says "unknown"; a file
name is never taken for a credit. :func:`check_pair` refuses a before date later than
the after date and a pair whose two dates are the same files or the same bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from borderwatch.errors import InputError, PairRefusedError
from borderwatch.remote import is_url

if TYPE_CHECKING:  # io imports this module
    from borderwatch.io import DateSource

__all__ = [
    "COPERNICUS_CREDIT",
    "USGS_CREDIT",
    "Imagery",
    "ImageryOptions",
    "check_pair",
    "file_imagery",
    "merge_imagery",
    "parse_date",
    "with_options",
]

#: Credit line the Copernicus licence asks for (the year is the acquisition year).
COPERNICUS_CREDIT = "Contains modified Copernicus Sentinel data {year}"
#: Credit line the USGS asks for Landsat imagery.
USGS_CREDIT = "Landsat imagery courtesy of the U.S. Geological Survey"

_ACQ_TAGS = (
    "ACQUISITION_DATE",
    "DATE_ACQUIRED",
    "ACQUISITION_TIME",
    "SENSING_TIME",
    "SENSING_DATE",
    "DATATAKE_SENSING_START",
    "PRODUCT_START_TIME",
    "IMAGE_DATE",
)
_CREDIT_TAGS = ("CREDIT", "TIFFTAG_COPYRIGHT", "COPYRIGHT", "ATTRIBUTION", "PROVIDER", "SOURCE")
_ID_TAGS = (
    "SCENE_ID",
    "PRODUCT_ID",
    "LANDSAT_PRODUCT_ID",
    "LANDSAT_SCENE_ID",
    "PRODUCT_URI",
    "DATATAKE_IDENTIFIER",
    "GRANULE_ID",
    "CATALOG_ID",
)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE = re.compile(r"(?<!\d)(19\d{2}|20\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")
# Sentinel-2 product: S2A_MSIL2A_<sensing start>_N<baseline>_R<orbit>_T<tile>_<discriminator>.
_S2_PRODUCT = re.compile(
    r"(?<![A-Z0-9])(S2[ABCD]_MSIL(?:1C|2A)_(\d{8})T\d{6}_N\d{4}_R\d{3}_T\d{2}[A-Z]{3}_\d{8}T\d{6})"
)
# Sentinel-2 tile/band file: T<tile>_<sensing start>_B04[_10m].jp2 (L1C and L2A granules).
_S2_TILE = re.compile(r"(?<![A-Z0-9])(T\d{2}[A-Z]{3}_(\d{8})T\d{6})(?=_|$)")
# Landsat Collection product id: LC08_L2SP_<path><row>_<acquired>_<processed>_<coll>_<tier>.
_LS_PRODUCT = re.compile(
    r"(?<![A-Z0-9])(L[COTEM]0\d_L[12][A-Z]{2}_\d{6}_(\d{8})_\d{8}_\d{2}_(?:T1|T2|RT))"
)
# Landsat scene id: LC8<path><row><year><day of year><station><version>.
_LS_SCENE = re.compile(r"(?<![A-Z0-9])(L[COTEM]\d\d{6}(\d{4})(\d{3})[A-Z]{3}\d{2})(?![A-Z0-9])")
# Pre-collection Landsat 7 (LPGS) name: L7<n><path><row>_<row><YYYYMMDD>, as in *_MTL.txt.
_LS_LPGS = re.compile(r"(?<![A-Z0-9])(L[457]\d\d{6}_\d{3}(\d{8}))(?![0-9])")


@dataclass(frozen=True)
class Imagery:
    """What is known about one date's imagery, and where each value came from.

    Attributes
    ----------
    date : str or None
        Acquisition date ``YYYY-MM-DD`` (UTC as the provider gives it).
    date_source : str or None
        Where the date came from: ``"option"``, ``"job file"`` (a batch CSV),
        ``"tiff tag ACQUISITION_DATE"``,
        ``"ENVI header"``, ``"Sentinel-2 product name"``, ``"Landsat product id"``,
        ``"file name"``, ``"tiff tag TIFFTAG_DATETIME"``; None when unknown.
    credit : str or None
        The credit line to print (``"© Maxar Technologies 2021"``).
    credit_source : str or None
        Where the credit came from, as for ``date_source``.
    scene_id : str or None
        The provider's product or scene identifier.
    synthetic : bool
        A file carries the tag ``SYNTHETIC=yes`` (borderwatch's generated imagery).
    stac_item : str or None
        The STAC Item JSON the date was given as (absolute path; its ``id`` is
        ``scene_id``, its band assets the files), see :mod:`borderwatch.stac`.
    """

    date: str | None = None
    date_source: str | None = None
    credit: str | None = None
    credit_source: str | None = None
    scene_id: str | None = None
    synthetic: bool = False
    stac_item: str | None = None

    def record(self) -> dict[str, object]:
        """Return the JSON-serialisable fields."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ImageryOptions:
    """Values given by the user for one date; ``None`` leaves the file's value."""

    date: str | None = None
    credit: str | None = None
    scene_id: str | None = None
    #: Where the values were given, as ``date_source``/``credit_source`` name it.
    source: str = "option"

    def __post_init__(self) -> None:
        if self.date is not None:
            parse_date(self.date, where="date")


def parse_date(value: str, *, where: str) -> str:
    """Check a ``YYYY-MM-DD`` calendar date and return it.

    Parameters
    ----------
    value : str
        The date as written by the user.
    where : str
        What to name in the message (``"--before-date"``, ``"jobs.csv:3 before_date"``).

    Raises
    ------
    InputError
        Not ``YYYY-MM-DD`` or not a calendar date.

    Examples
    --------
    >>> parse_date("2020-01-15", where="--before-date")
    '2020-01-15'
    """
    text = value.strip()
    if not (_ISO.match(text) and _ymd(*text.split("-"))):
        raise InputError(f"{where}: {value!r} is not a date; write YYYY-MM-DD, e.g. 2020-01-15")
    return text


def _ymd(y: str, m: str, d: str) -> str | None:
    try:
        return _dt.date(int(y), int(m), int(d)).isoformat()
    except ValueError:
        return None


def _date_in(text: str) -> str | None:
    m = _DATE.search(text.replace(":", "-"))
    return _ymd(*m.groups()) if m else None


def _doy_date(year: str, doy: str) -> str | None:
    """``YYYY-MM-DD`` of a year and day of the year (Landsat scene ids), None if invalid."""
    days = 366 if _ymd(year, "02", "29") else 365
    if not 1 <= int(doy) <= days:
        return None
    return (_dt.date(int(year), 1, 1) + _dt.timedelta(days=int(doy) - 1)).isoformat()


#: Product names, in the order they are looked for: full product names first (over all
#: texts), then scene and tile names. Group 1 is the id, group 2 the acquisition date.
_NAME_PASSES = (
    (
        (_S2_PRODUCT, COPERNICUS_CREDIT, "Sentinel-2 product name"),
        (_LS_PRODUCT, USGS_CREDIT, "Landsat product id"),
    ),
    (
        (_LS_SCENE, USGS_CREDIT, "Landsat scene id"),
        (_LS_LPGS, USGS_CREDIT, "Landsat scene id"),
        (_S2_TILE, COPERNICUS_CREDIT, "Sentinel-2 tile name"),
    ),
)


def _product(texts: Sequence[str]) -> tuple[str, str | None, str, str] | None:
    """``(scene id, date, credit, kind)`` of the first Sentinel-2 or Landsat name found."""
    for names in _NAME_PASSES:
        for text in texts:
            for regex, credit, kind in names:
                if m := regex.search(text):
                    digits = m.group(2)
                    if regex is _LS_SCENE:
                        date = _doy_date(digits, m.group(3))
                    else:
                        date = _ymd(digits[:4], digits[4:6], digits[6:8])
                    return m.group(1), date, credit, kind
    return None


def _credit_text(key: str, value: str) -> str:
    """Return a copyright tag's value as a credit line, ``© `` in front unless it has one."""
    text = " ".join(value.split())
    if "COPYRIGHT" in key and not re.search(r"©|\(c\)|copyright", text, re.IGNORECASE):
        return f"© {text}"
    return text


def file_imagery(
    path: str | os.PathLike[str],
    tags: Mapping[str, str],
    *,
    envi: Mapping[str, str] | None = None,
    descriptions: Sequence[str | None] = (),
) -> Imagery:
    """Metadata of one raster file from its tags, its ENVI header and its path.

    Parameters
    ----------
    path : path
        The file; its name and the folders above it are searched for product names.
    tags : mapping
        The file's default-domain metadata (``rasterio`` ``src.tags()``).
    envi : mapping, optional
        The ``ENVI`` metadata domain (``src.tags(ns="ENVI")``) of an ENVI raster.
    descriptions : sequence of str or None
        Band descriptions (ENVI band names often quote the scene's ``_MTL.txt``).

    Returns
    -------
    Imagery
    """
    up = {k.upper(): v.strip() for k, v in tags.items() if isinstance(v, str) and v.strip()}
    envi = {k.lower(): v for k, v in (envi or {}).items()}
    p = Path(path)
    date = date_source = None
    for key in _ACQ_TAGS:
        if key in up and (d := _date_in(up[key])):
            date, date_source = d, f"tiff tag {key}"
            break
    if date is None and (d := _date_in(envi.get("acquisition_time", ""))):
        date, date_source = d, "ENVI header"
    credit = credit_source = None
    for key in _CREDIT_TAGS:
        if key in up:
            credit, credit_source = _credit_text(key, up[key]), f"tiff tag {key}"
            break
    scene_id = next((up[k] for k in _ID_TAGS if k in up), None)
    texts = [p.name, *(part for part in reversed(p.parent.parts)), *up.values()]
    texts += [envi.get("description", ""), envi.get("band_names", "")]
    texts += [d for d in descriptions if d]
    found = _product(texts)
    if found is not None:
        pid, pdate, pcredit, kind = found
        scene_id = scene_id or pid
        if date is None and pdate is not None:
            date, date_source = pdate, kind
        if credit is None:  # the programme's credit names the acquisition year
            credit, credit_source = pcredit.format(year=(pdate or date or "")[:4]).strip(), kind
    if date is None and (d := _date_in(p.name)):
        date, date_source = d, "file name"
    if date is None and (d := _date_in(up.get("TIFFTAG_DATETIME", ""))):
        date, date_source = d, "tiff tag TIFFTAG_DATETIME"
    synthetic = up.get("SYNTHETIC", "").lower() in ("yes", "true", "1")
    if synthetic and credit is None:
        what = up.get("GENERATOR", "borderwatch")
        credit, credit_source = (
            f"synthetic imagery ({what}), not a real image",
            "tiff tag SYNTHETIC",
        )
    return Imagery(date, date_source, credit, credit_source, scene_id, synthetic)


def merge_imagery(parts: Sequence[Imagery]) -> Imagery:
    """One date's metadata from its files': the first value of each field, any synthetic.

    Band files of one date share their product, so the first file that gives a value
    gives it for the date.
    """
    out = Imagery()
    for part in parts:
        if out.date is None and part.date is not None:
            out = dataclasses.replace(out, date=part.date, date_source=part.date_source)
        if out.credit is None and part.credit is not None:
            out = dataclasses.replace(out, credit=part.credit, credit_source=part.credit_source)
        if out.scene_id is None and part.scene_id is not None:
            out = dataclasses.replace(out, scene_id=part.scene_id)
        if part.synthetic:
            out = dataclasses.replace(out, synthetic=True)
    return out


def with_options(source: DateSource, options: ImageryOptions | None) -> DateSource:
    """Return ``source`` with the user's values put over the files' (source ``options.source``)."""
    if options is None:
        return source
    meta = source.imagery
    if options.date is not None:
        meta = dataclasses.replace(meta, date=options.date, date_source=options.source)
    if options.credit is not None:
        meta = dataclasses.replace(meta, credit=options.credit, credit_source=options.source)
    if options.scene_id is not None:
        meta = dataclasses.replace(meta, scene_id=options.scene_id)
    return dataclasses.replace(source, date=meta.date, imagery=meta)


def _prefix_digest(path: str, limit: int = 1 << 20) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(limit)).hexdigest()


def _full_digest(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _same_bytes(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two dates hold the same file contents (sizes, then 1 MiB, then SHA-256).

    Remote files (URLs) are not downloaded to be compared: only the same URLs match.
    """
    if len(a) != len(b) or any(map(is_url, (*a, *b))):
        return False
    sizes_a = sorted(os.path.getsize(p) for p in a)
    if sizes_a != sorted(os.path.getsize(p) for p in b):
        return False
    for digest in (_prefix_digest, _full_digest):
        if sorted(map(digest, a)) != sorted(map(digest, b)):
            return False
    return True


def _names(paths: Sequence[str]) -> str:
    return paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} band files)"


def check_pair(before: DateSource, after: DateSource, *, allow_reversed: bool = False) -> None:
    """Refuse a pair whose dates are swapped or whose two dates are the same imagery.

    Equal dates with different files are allowed (two passes on one day). Runs before
    any pixel is read; identical content is found by size first, so distinct files are
    rarely hashed.

    Parameters
    ----------
    before, after : DateSource
        The two dates as opened (and with the user's options applied).
    allow_reversed : bool
        Accept a before date later than the after date, and identical inputs (for
        tests of the method on one image, or a deliberate reverse comparison).

    Raises
    ------
    InputError
        Naming both files and both dates.
    """
    if allow_reversed:
        return
    bd, ad = before.imagery.date, after.imagery.date
    if bd is not None and ad is not None and bd > ad:
        raise PairRefusedError(
            f"before date {bd} ({_names(before.paths)}, from {before.imagery.date_source}) is "
            f"later than after date {ad} ({_names(after.paths)}, from "
            f"{after.imagery.date_source})",
            kind="reversed",
            fix="swap --before and --after, correct the dates, or pass --allow-reversed",
        )
    same_files = sorted(map(os.path.realpath, before.paths)) == sorted(
        map(os.path.realpath, after.paths)
    )
    if same_files or _same_bytes(before.paths, after.paths):
        what = "the same files" if same_files else "files with the same SHA-256 content"
        raise PairRefusedError(
            f"before ({_names(before.paths)}, {bd or 'date unknown'}) and after "
            f"({_names(after.paths)}, {ad or 'date unknown'}) are {what}: nothing can have "
            "changed",
            kind="identical",
            fix="give two different dates, or pass --allow-reversed",
        )
