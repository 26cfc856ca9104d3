"""Sentinel-2 processing baseline 04.00: the radiometric offset, harmonised at decoding.

From 25 January 2022 (processing baseline 04.00, and every later baseline, including
the 05.00 reprocessing of the archive) Sentinel-2 L1C and L2A digital numbers carry an
offset: ``reflectance = (DN + RADIO_ADD_OFFSET) / 10000`` (L1C) and ``(DN +
BOA_ADD_OFFSET) / 10000`` (L2A), with the offset ``-1000``. Older products have no
offset. A stack across January 2022 compares only once the newer DNs are shifted by
``-1000``; :func:`band_offsets` finds each band's offset and :func:`apply_offsets`
applies it where a date's pixels are decoded (:func:`borderwatch.io.read_scene` and the
engine's native block reads), clipped at 0, NaN (invalid) pixels kept.

Where the offset comes from, for each file (the first that answers):

1. the file's tags ``BOA_ADD_OFFSET`` / ``RADIO_ADD_OFFSET`` (a number), or
   ``PROCESSING_BASELINE`` (``"04.00"``);
2. the product metadata ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` in the file's folder
   or up to five folders above it (as in a ``.SAFE``): its ``BOA_ADD_OFFSET`` /
   ``RADIO_ADD_OFFSET`` per ``band_id``, else its ``PROCESSING_BASELINE``;
3. the Sentinel-2 product name in the path (``..._N0400_...``, the baseline);
4. a Sentinel-2 tile file name (``T52TDK_20220301T023551_B04_10m.jp2``) with no product
   name or metadata: sensed on or after 2022-01-25 means baseline >= 04.00, so offset
   ``-1000``; sensed earlier it is taken as an original (pre-04.00) product, offset 0,
   and the record says it was assumed (a 05.00 reprocessing of old data would carry
   the offset: keep the ``.SAFE`` name or the ``MTD`` file with the bands).

Files that are not Sentinel-2, and Sentinel-2 files that hold no reflectance (``SCL``,
``AOT``, ``WVP``, ``TCI``, cloud and snow probabilities, quality masks), are untouched.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "BASELINE_04_DATE",
    "S2_BANDS",
    "S2_OFFSET_DN",
    "apply_offsets",
    "band_offsets",
    "file_offset",
    "offset_record",
]

#: First sensing day of processing baseline 04.00 (ESA, Sentinel-2 products upgrade).
BASELINE_04_DATE = "2022-01-25"
#: The offset of baseline >= 04.00, in digital numbers (reflectance x 10000).
S2_OFFSET_DN = -1000.0
#: The ``band_id`` order of the product metadata (0 = B01 ... 12 = B12).
S2_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)

_OFFSET_TAGS = ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")
_PRODUCT = re.compile(r"(?<![A-Z0-9])S2[ABCD]_MSIL(?:1C|2A)_\d{8}T\d{6}_N(\d{2})(\d{2})_")
_TILE = re.compile(r"(?<![A-Z0-9])T\d{2}[A-Z]{3}_(\d{4})(\d{2})(\d{2})T\d{6}(?=_|$)")
_NOT_REFLECTANCE = re.compile(
    r"(?:^|[_\-.])(SCL|AOT|WVP|TCI|CLD|CLDPRB|SNW|SNWPRB|MSK\w*|QA\w*|PVI)(?=[_\-.]|$)",
    re.IGNORECASE,
)
_BAND_TOKEN = re.compile(r"(?:^|[_\-.])(B(?:0?[1-9]|1[0-2]|8A))(?=[_\-.]|$)", re.IGNORECASE)
_MTD_NAMES = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
_MTD_DEPTH = 5


def _baseline_offset(text: str) -> float | None:
    """Offset of a baseline written ``"04.00"`` (None if unreadable)."""
    m = re.match(r"\s*(\d{1,2})\.(\d{2})", text)
    if m is None:
        return None
    return S2_OFFSET_DN if int(m.group(1)) >= 4 else 0.0


def _band_key(name: str) -> str | None:
    """``B04`` style key of a band name (``B4``, ``b04`` -> ``B04``), None if not one."""
    m = re.fullmatch(r"B0?([1-9]|1[0-2])|B(8A)", name.strip(), re.IGNORECASE)
    if m is None:
        return None
    return "B8A" if m.group(2) else f"B{int(m.group(1)):02d}"


def _from_tags(tags: Mapping[str, str]) -> tuple[float, str] | None:
    for key in _OFFSET_TAGS:
        if key in tags:
            try:
                return float(tags[key]), f"tag {key}"
            except ValueError:
                continue
    if "PROCESSING_BASELINE" in tags:
        off = _baseline_offset(tags["PROCESSING_BASELINE"])
        if off is not None:
            return off, f"tag PROCESSING_BASELINE {tags['PROCESSING_BASELINE'].strip()}"
    return None


def _find_mtd(path: Path) -> Path | None:
    folder = path.parent
    for _ in range(_MTD_DEPTH + 1):
        for name in _MTD_NAMES:
            if (folder / name).is_file():
                return folder / name
        if folder.parent == folder:
            break
        folder = folder.parent
    return None


def _from_mtd(mtd: Path, band: str | None) -> tuple[float, str] | None:
    """Offset of ``band`` (or of all bands, if equal) from a product metadata file."""
    try:
        root = ET.parse(mtd).getroot()
    except (ET.ParseError, OSError):
        return None
    per_band: dict[str, float] = {}
    kind = ""
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag in _OFFSET_TAGS and el.text is not None:
            try:
                idx, value = int(el.get("band_id", "-1")), float(el.text)
            except ValueError:
                continue
            if 0 <= idx < len(S2_BANDS):
                per_band[S2_BANDS[idx]], kind = value, tag
    values = set(per_band.values())
    if band in per_band or len(values) == 1:
        value = per_band[band] if band in per_band else values.pop()
        return value, f"{mtd.name} {kind}"
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "PROCESSING_BASELINE" and el.text:
            off = _baseline_offset(el.text)
            if off is not None:
                return off, f"{mtd.name} PROCESSING_BASELINE {el.text.strip()}"
    return None


def _from_name(path: str) -> tuple[float, str] | None:
    m = _PRODUCT.search(path.replace("\\", "/"))
    if m is not None:
        major, minor = int(m.group(1)), m.group(2)
        off = S2_OFFSET_DN if major >= 4 else 0.0
        return off, f"Sentinel-2 product name (baseline {major:02d}.{minor})"
    t = _TILE.search(Path(path).name)
    if t is not None:
        day = f"{t.group(1)}-{t.group(2)}-{t.group(3)}"
        if day >= BASELINE_04_DATE:
            return S2_OFFSET_DN, f"assumed from the sensing date {day} (baseline >= 04.00)"
        return 0.0, f"assumed from the sensing date {day} (before baseline 04.00)"
    return None


def file_offset(
    path: str, *, tags: Mapping[str, str], band: str | None = None
) -> tuple[float, str] | None:
    """Offset (DN) of one Sentinel-2 reflectance band file and where it came from.

    Parameters
    ----------
    path : str
        The file (a local path or URL; the metadata file is looked for only locally).
    tags : mapping
        The file's dataset tags (``rasterio`` ``tags()``).
    band : str, optional
        The band's ``B04`` style name, for per-band metadata offsets.

    Returns
    -------
    tuple or None
        ``(offset, source)``; None when the file is not Sentinel-2 reflectance.
    """
    if _NOT_REFLECTANCE.search(Path(path).stem):
        return None
    found = _from_tags(tags)
    if found is None and "://" not in path:
        mtd = _find_mtd(Path(path))
        found = _from_mtd(mtd, band) if mtd is not None else None
    return found if found is not None else _from_name(path)


def band_offsets(
    file_bands: Sequence[tuple[str, int]],
    band_names: Sequence[str],
    tags: Mapping[str, Mapping[str, str]],
) -> tuple[tuple[float, ...], str | None]:
    """Offset (DN) of every band of a date and a line saying where they came from.

    Parameters
    ----------
    file_bands : sequence of (path, band index)
        The date's bands (:attr:`borderwatch.io.DateSource.file_bands`).
    band_names : sequence of str
        One name per band (``B04`` for Sentinel-2 band files).
    tags : mapping
        Dataset tags of each path.

    Returns
    -------
    offsets : tuple of float
        One per band; ``()`` when no band has an offset (nothing to apply).
    source : str or None
        ``"Sentinel-2 product name (baseline 04.00)"`` and the like; None without offset.

    Examples
    --------
    >>> name = "S2B_MSIL2A_20220301T023549_N0400_R089_T52TDK_20220301T060012_B04_10m.tif"
    >>> band_offsets([(name, 1)], ["B04"], {name: {}})
    ((-1000.0,), 'Sentinel-2 product name (baseline 04.00)')
    >>> band_offsets([("scene.tif", 1)], ["band1"], {"scene.tif": {}})
    ((), None)
    """
    offsets: list[float] = []
    sources: list[str] = []
    for (path, _), name in zip(file_bands, band_names, strict=True):
        token = _BAND_TOKEN.search(Path(path).stem)
        key = _band_key(name) or (_band_key(token.group(1)) if token else None)
        found = file_offset(path, tags=tags.get(path, {}), band=key)
        offsets.append(found[0] if found else 0.0)
        if found and found[0] != 0 and found[1] not in sources:
            sources.append(found[1])
    if not any(offsets):
        return (), None
    return tuple(offsets), "; ".join(sources)


def apply_offsets(data: np.ndarray, offsets: Sequence[float]) -> np.ndarray:
    """Add each band's offset to ``data`` ``(bands, rows, cols)`` in place, clipped at 0.

    NaN (invalid) pixels stay NaN. ``offsets`` empty or all zero leaves ``data`` as is.

    Examples
    --------
    >>> a = np.array([[[1500.0, 800.0, np.nan]]], dtype=np.float32)
    >>> apply_offsets(a, [-1000.0])
    array([[[500.,   0.,  nan]]], dtype=float32)
    """
    if not any(offsets):
        return data
    for k, off in enumerate(offsets):
        if off:
            band = data[k]
            band += np.asarray(off, dtype=band.dtype)
            np.maximum(band, 0, out=band)  # NaN propagates through maximum
    return data


def offset_record(
    band_names: Sequence[str], offsets: Sequence[float], source: str | None
) -> dict[str, object] | None:
    """``run_metadata`` entry ``radiometric_offset``: offsets (DN) per band and source.

    None when no offset was applied.
    """
    if not any(offsets):
        return None
    return {
        "offset_dn": {name: float(off) for name, off in zip(band_names, offsets, strict=True)},
        "source": source,
        "formula": "value = max(DN + offset, 0)",
    }
