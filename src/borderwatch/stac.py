"""STAC input: dates from local STAC Items, Catalogs, Collections and item lists.

A SpatioTemporal Asset Catalog item describes one acquisition: its footprint
(``geometry``, EPSG:4326 lon/lat), its ``datetime``, its ``id`` (the provider's scene
id) and its assets (one file per band, masks, thumbnails). This module reads them with
:mod:`pystac` and turns each item into the files of one date:

* the band assets, found by role: the ``eo:bands`` (or STAC 1.1 ``bands``)
  ``common_name`` of the asset (``blue``, ``green``, ``red``, ``nir``...), else the
  asset key (``red``, ``nir08``, ``B04``, ``B04_10m``...); a three-band ``visual``
  asset when no band asset is found;
* the mask asset: ``scl``/``SCL`` (Sentinel-2 L2A scene classification) or
  ``qa_pixel``/``QA_PIXEL`` (Landsat Collection 2);
* relative hrefs resolved against the item's own file (or the file that lists it);
  ``http(s)://`` hrefs kept as URLs (read through :mod:`borderwatch.remote`, only the
  windows needed);
* the credit: the item's ``sci:citation``, else its providers (licensor, producer,
  then any), else the same from its collection, with the licence.

:func:`stack_from_stac` selects, from a catalog or a list of items, those whose
geometry intersects the AOI and whose date lies within ``start``..``end``; it is
what ``borderwatch monitor --stac`` uses. :func:`item_date` is one item file as one
date (``detect --before ITEM.json``). Reading local STAC files never reaches the
network; a catalog whose links are URLs is followed there by pystac.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from borderwatch.errors import InputError
from borderwatch.imagery import parse_date
from borderwatch.methods.indices import band_role
from borderwatch.remote import is_url

if TYPE_CHECKING:
    from borderwatch.monitor.stack import StackEntry

__all__ = [
    "BAND_ROLES",
    "StacDate",
    "item_date",
    "read_items",
    "select_dates",
    "stack_from_stac",
]

#: Band roles taken from an item, in band order (both dates of a pair get the same).
BAND_ROLES = ("blue", "green", "red", "nir")
_MASK_KEYS = {"scl": "scl", "qa_pixel": "qa_pixel"}
_NOT_DATA = {"thumbnail", "overview", "metadata", "visual"}
_RASTER_TYPES = ("image/tiff", "image/jp2", "application/x-geotiff", "image/vnd.stac.geotiff")
_RES_SUFFIX = re.compile(r"_\d+m$", re.IGNORECASE)
# Second choices for a role: the narrow NIR (B8A, 20 m) after the broad one (B08, 10 m).
_SECOND = {"nir08", "b8a"}


@dataclass(frozen=True)
class StacDate:
    """One STAC item as one date of imagery.

    The fields ``date``, ``paths``, ``credit``, ``scene_id``, ``mask`` and ``line`` are
    those of :class:`borderwatch.monitor.stack.StackEntry`.

    Attributes
    ----------
    date : str
        Acquisition date ``YYYY-MM-DD`` (UTC) of the item's ``datetime`` (or
        ``start_datetime``).
    paths : tuple of str
        Band files (absolute paths or URLs) in :data:`BAND_ROLES` order, or the one
        ``visual`` asset.
    credit : str or None
        Credit line from the item or its collection.
    scene_id : str
        The item's ``id``.
    mask : str or None
        The ``scl`` / ``qa_pixel`` asset, if the item has one.
    mask_kind : str or None
        ``"scl"`` or ``"qa_pixel"`` (see :mod:`borderwatch.masks`).
    band_names : tuple of str or None
        Role of each file of ``paths`` (None for a multi-band ``visual`` asset).
    item : str
        Where the item was read (its file, or the file listing it), for messages.
    hrefs : tuple of str
        The assets' hrefs as the item gives them (provenance).
    line : None
        No CSV line (as :class:`~borderwatch.monitor.stack.StackEntry`).
    """

    date: str
    paths: tuple[str, ...]
    credit: str | None
    scene_id: str
    mask: str | None = None
    mask_kind: str | None = None
    band_names: tuple[str | None, ...] = ()
    item: str = ""
    hrefs: tuple[str, ...] = ()
    line: int | None = None


def _pystac() -> Any:
    import pystac

    return pystac


def read_items(source: str | os.PathLike[str]) -> list[tuple[Any, Path]]:
    """Every item of a local STAC file, with the folder its relative hrefs start from.

    Parameters
    ----------
    source : path
        A STAC Item, Catalog or Collection JSON (the catalog's items are found
        recursively through its links), a GeoJSON FeatureCollection of items (an
        ItemCollection, e.g. a saved STAC API search) or a JSON list of items.

    Returns
    -------
    list of (pystac.Item, pathlib.Path)

    Raises
    ------
    InputError
        The file is missing, not JSON, or not STAC (the message names it).
    """
    return _load(source)[1]


def _load(source: str | os.PathLike[str]) -> tuple[str, list[tuple[Any, Path]]]:
    """Return the JSON ``type`` of ``source`` (``"list"`` for a list) and its items."""
    pystac = _pystac()
    path = Path(source)
    if is_url(str(source)):
        raise InputError(f"{source}: give a local STAC file (a STAC API is not searched)")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the STAC file ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})") from exc
    base = path.resolve().parent
    kind = str(doc.get("type")) if isinstance(doc, dict) else "list"
    try:
        if kind == "list":
            return kind, [(pystac.Item.from_dict(d), base) for d in doc]
        if kind == "FeatureCollection":
            return kind, [(pystac.Item.from_dict(d), base) for d in doc.get("features", [])]
        obj = pystac.read_file(str(path.resolve()))
        if isinstance(obj, pystac.Item):
            return kind, [(obj, base)]
        if isinstance(obj, pystac.Catalog):  # a Collection is a Catalog
            return kind, [(item, base) for item in obj.get_items(recursive=True)]
    except (pystac.STACError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(f"{path}: not a valid STAC document ({exc})") from exc
    raise InputError(f"{path}: not a STAC Item, Catalog, Collection or item list (type {kind!r})")


def _href(asset: Any, base: Path) -> str:
    """Absolute path or URL of an asset."""
    href = asset.get_absolute_href() or asset.href
    if is_url(href):
        return str(href)
    parsed = urllib.parse.urlsplit(href)
    if parsed.scheme == "file":
        href = urllib.parse.unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:  # not a Windows drive letter
        raise InputError(
            f"{asset.owner.id if asset.owner else '?'}: asset href {href} uses "
            f"{parsed.scheme}://, which is not read; give http(s) URLs or local files"
        )
    p = Path(href)
    return str(p if p.is_absolute() else (base / p).resolve())


def _common_names(asset: Any) -> list[str]:
    fields = asset.extra_fields
    names = [b.get("common_name") for b in fields.get("eo:bands") or [] if isinstance(b, dict)]
    names += [b.get("eo:common_name") for b in fields.get("bands") or [] if isinstance(b, dict)]
    return [n for n in names if n]


def _is_raster(key: str, asset: Any) -> bool:
    roles = set(asset.roles or [])
    if roles & _NOT_DATA and "data" not in roles:
        return False
    media = (asset.media_type or "").split(";")[0].strip().lower()
    if media:
        return media in _RASTER_TYPES
    return Path(urllib.parse.urlsplit(asset.href).path).suffix.lower() in (
        ".tif",
        ".tiff",
        ".jp2",
    )


def _band_assets(item: Any) -> dict[str, str]:
    """``{role: asset key}`` of the band assets (single-band, by common name or key)."""
    found: dict[str, tuple[int, str]] = {}
    for key, asset in item.assets.items():
        if not _is_raster(key, asset):
            continue
        names = _common_names(asset)
        if len(names) > 1:
            continue  # a multi-band asset is not one band
        name = names[0] if names else _RES_SUFFIX.sub("", key)
        role = band_role(name)
        if role is None:
            continue
        rank = 1 if name.lower() in _SECOND else 0
        if role not in found or rank < found[role][0]:
            found[role] = (rank, key)
    return {role: key for role, (_, key) in found.items()}


def _date_of(item: Any, where: str) -> str:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise InputError(f"{where}: item {item.id} has no datetime or start_datetime")
    if when.tzinfo is not None:
        when = when.astimezone(_dt.UTC)
    return str(when.date().isoformat())


def _providers_credit(fields: Mapping[str, Any]) -> str | None:
    """Credit from ``sci:citation`` or ``providers`` (+ ``license``) of STAC fields."""
    citation = fields.get("sci:citation")
    if isinstance(citation, str) and citation.strip():
        return citation.strip()
    providers = [p for p in fields.get("providers") or [] if isinstance(p, Mapping)]
    for wanted in ("licensor", "producer", None):
        names = [
            str(p["name"])
            for p in providers
            if p.get("name") and (wanted is None or wanted in (p.get("roles") or []))
        ]
        if names:
            licence = fields.get("license")
            tail = f" (licence {licence})" if isinstance(licence, str) and licence else ""
            return ", ".join(dict.fromkeys(names)) + tail
    return None


def _credit_of(item: Any) -> str | None:
    credit = _providers_credit(item.properties)
    if credit is None:
        try:
            collection = item.get_collection()
        except Exception:  # noqa: BLE001 - an unresolvable collection link gives no credit
            collection = None
        if collection is not None:
            credit = _providers_credit(
                {
                    **collection.extra_fields,
                    "providers": [p.to_dict() for p in collection.providers or []],
                    "license": collection.license,
                }
            )
    return credit


def _as_date(item: Any, base: Path, where: str, *, bands: Iterable[str]) -> StacDate:
    """One item as one date (see :class:`StacDate`)."""
    date = _date_of(item, where)
    roles = _band_assets(item)
    keys = [roles[r] for r in bands if r in roles]
    names: tuple[str | None, ...] = tuple(r for r in bands if r in roles)
    if not keys:
        visual = [k for k, a in item.assets.items() if "visual" in (a.roles or []) or k == "visual"]
        if not visual:
            raise InputError(
                f"{where}: item {item.id} has no band asset ({', '.join(bands)} by eo:bands "
                "common_name or asset key) and no visual asset"
            )
        keys, names = visual[:1], (None,)
    mask_key = next((k for k in item.assets if k.lower() in _MASK_KEYS), None)
    return StacDate(
        date=date,
        paths=tuple(_href(item.assets[k], base) for k in keys),
        credit=_credit_of(item),
        scene_id=str(item.id),
        mask=None if mask_key is None else _href(item.assets[mask_key], base),
        mask_kind=None if mask_key is None else _MASK_KEYS[mask_key.lower()],
        band_names=names,
        item=where,
        hrefs=tuple(item.assets[k].href for k in (*keys, *([mask_key] if mask_key else []))),
    )


def item_date(path: str | os.PathLike[str], *, bands: Iterable[str] = BAND_ROLES) -> StacDate:
    """One local STAC Item JSON file as one date.

    Parameters
    ----------
    path : path
        The item file.
    bands : iterable of str
        Band roles to take, in order (default :data:`BAND_ROLES`).

    Returns
    -------
    StacDate

    Raises
    ------
    InputError
        Not an item (a catalog or list: use :func:`stack_from_stac`), no datetime, or
        no band asset.
    """
    kind, items = _load(path)
    if kind != "Feature":
        raise InputError(
            f"{path}: a STAC catalog or item list, not one item; select its items with "
            "borderwatch monitor --stac FILE --from DATE --to DATE"
        )
    item, base = items[0]
    return _as_date(item, base, str(path), bands=tuple(bands))


def _footprint(item: Any) -> BaseGeometry | None:
    if item.geometry:
        return shape(item.geometry)
    if item.bbox and len(item.bbox) >= 4:
        half = len(item.bbox) // 2
        return box(item.bbox[0], item.bbox[1], item.bbox[half], item.bbox[half + 1])
    return None


def select_dates(
    source: str | os.PathLike[str],
    *,
    aoi_lonlat: BaseGeometry | None,
    start: str,
    end: str,
    bands: Iterable[str] = BAND_ROLES,
) -> list[StacDate]:
    """Items of ``source`` over the AOI within ``start``..``end``, as dates.

    Parameters
    ----------
    source : path
        STAC Item, Catalog, Collection, FeatureCollection or JSON list of items.
    aoi_lonlat : shapely geometry or None
        Area of interest in EPSG:4326 (lon, lat); an item is kept when its geometry
        (or bbox) intersects it. None keeps every item.
    start, end : str
        First and last date ``YYYY-MM-DD``, inclusive (item dates in UTC).
    bands : iterable of str
        Band roles to take, in order.

    Returns
    -------
    list of StacDate
        Sorted by date, then scene id.

    Raises
    ------
    InputError
        A bad date, an end before the start, or no item left (the message says how
        many were outside the dates and how many missed the AOI).
    """
    first, last = parse_date(start, where="--from"), parse_date(end, where="--to")
    if last < first:
        raise InputError(f"--to {last} is before --from {first}")
    items = read_items(source)
    out, outside, missed = [], 0, 0
    for item, base in items:
        date = _date_of(item, str(source))
        if not first <= date <= last:
            outside += 1
            continue
        foot = _footprint(item)
        if aoi_lonlat is not None and (foot is None or not foot.intersects(aoi_lonlat)):
            missed += 1
            continue
        out.append(_as_date(item, base, str(source), bands=tuple(bands)))
    if not out:
        raise InputError(
            f"{source}: no STAC item over the area between {first} and {last} "
            f"({len(items)} items: {outside} outside the dates, {missed} not over the area)"
        )
    return sorted(out, key=lambda d: (d.date, d.scene_id))


def stack_from_stac(
    source: str,
    *,
    aoi_lonlat: BaseGeometry | None,
    start: str,
    end: str,
) -> list[StackEntry]:
    """Select the dates of a STAC source as stack entries for :mod:`borderwatch.monitor`.

    :func:`select_dates`, each date as a
    :class:`borderwatch.monitor.stack.StackEntry` (``date``, ``paths``, ``credit``,
    ``scene_id``, ``mask`` = the item's SCL / QA_PIXEL asset or None, ``line`` None);
    :func:`borderwatch.masks.find_mask` reads such a mask as SCL / QA_PIXEL.
    """
    from borderwatch.monitor.stack import StackEntry  # the monitor imports this module

    dates = select_dates(source, aoi_lonlat=aoi_lonlat, start=start, end=end)
    return [
        StackEntry(
            date=d.date, paths=d.paths, credit=d.credit, scene_id=d.scene_id, mask=d.mask, line=None
        )
        for d in dates
    ]
