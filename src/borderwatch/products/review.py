"""Analyst reviews: read them back from QGIS, keep them per place, re-apply them on reruns.

An analyst sets ``review`` (see :data:`borderwatch.products.schema.REVIEW_VALUES`) and
``note`` on the ``detections`` layer of an exported GeoPackage and saves it.
:func:`import_reviews` copies every reviewed object into a *review store*: one
GeoJSON file per place (the AOI id, or the rounded footprint of the inputs when
there was no AOI) in a folder the caller names. :func:`apply_reviews` puts those
reviews back on the detections of a later run over the same place: an object keeps
its review when it has the same ``id`` (same inputs, same polygon) or, failing that,
when its polygon overlaps the reviewed one with intersection over union >= 0.5
(new imagery or new parameters). :func:`export_labels` writes the confirmed and
rejected objects as training labels (``label`` 1 and 0).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

from borderwatch.errors import InputError
from borderwatch.products.export import write_geojson
from borderwatch.products.schema import REVIEW_VALUES, check_reviews

__all__ = [
    "MIN_IOU",
    "ReviewImport",
    "apply_reviews",
    "check_place",
    "default_store_dir",
    "export_labels",
    "import_reviews",
    "load_reviews",
    "place_key",
    "store_path",
]

#: Smallest intersection over union for a review to carry over to a changed polygon.
MIN_IOU = 0.5

_STORE_COLUMNS = ("id", "review", "note", "class", "reviewed_utc", "source")
_LABELS = {"confirmed": 1, "rejected": 0}
#: A place key is one plain file-name part: letters, digits and ``_ . + -``, not
#: starting with ``.`` or ``-``, at most 100 characters.
_PLACE_RE = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,99}")


@dataclass(frozen=True)
class ReviewImport:
    """What :func:`import_reviews` did.

    Attributes
    ----------
    place : str
        Place key the reviews were stored under.
    store : pathlib.Path
        The store file written.
    read : int
        Detections read from the GeoPackage.
    reviewed : int
        Of those, reviewed ones (review other than ``unreviewed`` or a note).
    stored : int
        Reviews in the store for this place after the import.
    """

    place: str
    store: Path
    read: int
    reviewed: int
    stored: int


def default_store_dir() -> Path:
    """Default review store: ``$XDG_DATA_HOME/borderwatch/reviews``.

    Read from the environment at each call. As the XDG Base Directory specification
    says, ``XDG_DATA_HOME`` counts only when it is an absolute path; when it is
    unset, empty or relative the store is ``~/.local/share/borderwatch/reviews``
    (``~`` from ``HOME``).

    Returns
    -------
    pathlib.Path
        The folder (it may not exist yet).
    """
    base = os.environ.get("XDG_DATA_HOME", "")
    data_home = Path(base) if os.path.isabs(base) else Path.home() / ".local" / "share"
    return data_home / "borderwatch" / "reviews"


def place_key(layers: Mapping[str, gpd.GeoDataFrame]) -> str:
    """Name of the place a set of exported layers covers.

    The ``id`` of the ``aoi`` layer when there is one; otherwise ``bbox_`` and the
    footprints' bounds in EPSG:4326 rounded to 0.01 degree (about 1 km), so reruns
    over the same imagery find the same place.

    Raises
    ------
    InputError
        Neither an ``aoi`` nor a non-empty ``footprints`` layer.
    """
    aoi = layers.get("aoi")
    if aoi is not None and len(aoi) and "id" in aoi.columns:
        key = str(aoi["id"].iloc[0])
    else:
        foot = layers.get("footprints")
        if foot is None or not len(foot) or foot.crs is None:
            raise InputError("cannot tell the place: no 'aoi' or 'footprints' layer")
        bounds = foot.to_crs("EPSG:4326").total_bounds
        key = "bbox_" + "_".join(f"{v:.2f}" for v in bounds)
    key = re.sub(r"[^A-Za-z0-9_.+-]", "_", key).replace("..", "_")
    return ("_" + key if key[:1] in ("", ".", "-") else key)[:100]


def check_place(place: str) -> str:
    """Return ``place`` if it is a safe place key, else raise.

    The key names a file in the review store, so it must stay one plain name there:
    no path separators, no ``..``, no leading dot or dash, no spaces or control
    characters.

    Raises
    ------
    InputError
        ``place`` is not a safe key (the message says why).

    Examples
    --------
    >>> check_place("helong")
    'helong'
    """
    if _PLACE_RE.fullmatch(place) and ".." not in place:
        return place
    if "/" in place or "\\" in place or (os.altsep and os.altsep in place):
        why = "contains a path separator"
    elif ".." in place:
        why = "contains '..'"
    else:
        why = "is not a plain name"
    raise InputError(
        f"--place {place!r} {why}; use letters, digits and _ . + - only "
        "(not starting with . or -, at most 100 characters)"
    )


def store_path(store_dir: str | os.PathLike[str], place: str) -> Path:
    """Return the store file of ``place`` in ``store_dir`` (see :func:`check_place`)."""
    return Path(store_dir) / f"{check_place(place)}.reviews.geojson"


def _read_layer(path: Path, layer: str) -> gpd.GeoDataFrame | None:
    names = [str(n) for n, _ in pyogrio.list_layers(path)]
    return pyogrio.read_dataframe(path, layer=layer) if layer in names else None


def load_reviews(store_dir: str | os.PathLike[str], place: str) -> gpd.GeoDataFrame:
    """Read the stored reviews of ``place`` (EPSG:4326); empty when there are none."""
    path = store_path(store_dir, place)
    gdf = pyogrio.read_dataframe(path) if path.exists() else None
    if gdf is None or not len(gdf):  # an empty store (all reviews cleared) has no columns
        return gpd.GeoDataFrame(
            {c: pd.Series([], dtype=object) for c in _STORE_COLUMNS},
            geometry=gpd.GeoSeries([], crs="EPSG:4326"),
            crs="EPSG:4326",
        )
    for col in _STORE_COLUMNS:
        if col not in gdf.columns:
            raise InputError(f"{path}: not a borderwatch review store (no {col!r} column)")
    gdf["note"] = gdf["note"].fillna("")
    return gdf[[*_STORE_COLUMNS, gdf.geometry.name]]


def _iou(a: np.ndarray, b: shapely.Geometry) -> np.ndarray:
    inter = shapely.area(shapely.intersection(a, b))
    union = shapely.area(shapely.union(a, b))
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _match(
    detections: gpd.GeoDataFrame, reviews: gpd.GeoDataFrame, *, min_iou: float
) -> dict[int, int]:
    """Map review row position -> detection row position (one to one)."""
    det_ids = {v: i for i, v in enumerate(detections["id"].astype(str))}
    matched: dict[int, int] = {}
    taken: set[int] = set()
    for r, rid in enumerate(reviews["id"].astype(str)):
        if rid in det_ids and det_ids[rid] not in taken:
            matched[r] = det_ids[rid]
            taken.add(det_ids[rid])
    if len(matched) == len(reviews) or not len(detections):
        return matched
    geoms = np.asarray(detections.geometry.values, dtype=object)
    rev_geoms = reviews.to_crs(detections.crs).geometry.values
    for r in range(len(reviews)):
        if r in matched:
            continue
        iou = _iou(geoms, rev_geoms[r])
        iou[list(taken)] = -1.0
        best = int(np.argmax(iou))
        if iou[best] >= min_iou:
            matched[r] = best
            taken.add(best)
    return matched


def apply_reviews(
    detections: gpd.GeoDataFrame,
    reviews: gpd.GeoDataFrame,
    *,
    min_iou: float = MIN_IOU,
) -> tuple[gpd.GeoDataFrame, int]:
    """Put stored reviews back on the detections of a new run.

    Parameters
    ----------
    detections : geopandas.GeoDataFrame
        Detections in the analyst schema (metric CRS).
    reviews : geopandas.GeoDataFrame
        From :func:`load_reviews`.
    min_iou : float
        Smallest intersection over union for a match by overlap, 0--1.

    Returns
    -------
    detections : geopandas.GeoDataFrame
        A copy with ``review`` and ``note`` set on every matched object.
    applied : int
        Number of reviews applied.
    """
    out = detections.copy()
    if not len(reviews) or not len(out):
        return out, 0
    matched = _match(out, reviews, min_iou=min_iou)
    review_col = out.columns.get_loc("review")
    note_col = out.columns.get_loc("note")
    for r, d in matched.items():
        out.iat[d, review_col] = str(reviews["review"].iloc[r])
        out.iat[d, note_col] = str(reviews["note"].iloc[r] or "")
    return out, len(matched)


def _read_gpkg_layers(path: Path) -> dict[str, gpd.GeoDataFrame]:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        layers = {
            name: frame
            for name in ("detections", "aoi", "footprints")
            if (frame := _read_layer(path, name)) is not None
        }
    except pyogrio.errors.DataSourceError as exc:
        raise InputError(f"{path}: not a readable GeoPackage ({exc})") from exc
    if "detections" not in layers:
        raise InputError(f"{path}: no 'detections' layer; export one with detect --out FILE.gpkg")
    for name, frame in layers.items():
        if not isinstance(frame, gpd.GeoDataFrame):
            raise InputError(f"{path}: layer {name!r} has no geometry; reviews need the polygons")
        if frame.crs is None:
            raise InputError(f"{path}: layer {name!r} has no CRS; set one (e.g. in QGIS) first")
    return layers


def import_reviews(
    path: str | os.PathLike[str],
    *,
    store_dir: str | os.PathLike[str],
    place: str | None = None,
) -> ReviewImport:
    """Read ``review`` and ``note`` from an exported GeoPackage into the review store.

    Objects with a review other than ``unreviewed`` or a non-empty note are stored
    (replacing a stored review of the same id, or of an overlapping object with
    IoU >= :data:`MIN_IOU`); an object set back to ``unreviewed`` with no note
    removes its stored review.

    Parameters
    ----------
    path : path
        GeoPackage written by :func:`borderwatch.products.gpkg.write_gpkg` and edited in QGIS.
    store_dir : path
        Review store folder (created if missing).
    place : str, optional
        Override the place key (default :func:`place_key` of the file's layers).

    Returns
    -------
    ReviewImport

    Raises
    ------
    InputError
        No ``detections`` layer, a layer without geometry or CRS, missing
        ``id``/``review`` columns, an unknown ``review`` value, or an unsafe ``place``
        (:func:`check_place`).
    """
    if place is not None:
        check_place(place)  # before reading anything
    src = Path(path)
    layers = _read_gpkg_layers(src)
    det = layers["detections"]
    for col in ("id", "review"):
        if col not in det.columns:
            raise InputError(f"{src}: detections layer has no {col!r} column")
    det = det.assign(
        review=det["review"].fillna("unreviewed").astype(str).str.strip(),
        note=(det["note"] if "note" in det.columns else pd.Series("", index=det.index))
        .fillna("")
        .astype(str),
    )
    check_reviews(det["review"].tolist(), where=f"{src}")
    key = place if place is not None else place_key(layers)
    reviewed_mask = (det["review"] != "unreviewed") | (det["note"] != "")
    reviewed = det[reviewed_mask]
    cleared_ids = set(det.loc[~reviewed_mask, "id"].astype(str))
    stored = load_reviews(store_dir, key)
    keep = ~stored["id"].astype(str).isin(cleared_ids | set(reviewed["id"].astype(str)))
    if len(reviewed) and len(stored):
        replaced = _match(reviewed, stored, min_iou=MIN_IOU)
        keep &= ~np.isin(np.arange(len(stored)), list(replaced))
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    new = gpd.GeoDataFrame(
        {
            "id": reviewed["id"].astype(str).to_numpy(),
            "review": reviewed["review"].to_numpy(),
            "note": reviewed["note"].to_numpy(),
            "class": (
                reviewed["class"].astype(str).to_numpy()
                if "class" in reviewed.columns
                else np.full(len(reviewed), "other")
            ),
            "reviewed_utc": np.full(len(reviewed), now),
            "source": np.full(len(reviewed), src.name),
        },
        geometry=reviewed.geometry.to_crs("EPSG:4326").to_numpy(),
        crs="EPSG:4326",
    )
    merged = pd.concat([stored[keep.to_numpy()], new], ignore_index=True)
    merged = gpd.GeoDataFrame(merged, geometry=merged.geometry.name, crs="EPSG:4326")
    out = store_path(store_dir, key)
    if not len(merged):  # nothing reviewed any more: no store for the place
        out.unlink(missing_ok=True)
        return ReviewImport(key, out, len(det), 0, 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_geojson(
        merged,
        out,
        metadata={"place": key, "format": "borderwatch-reviews/1", "updated_utc": now},
        overwrite=True,
    )
    return ReviewImport(key, out, len(det), len(reviewed), len(merged))


def export_labels(
    out: str | os.PathLike[str],
    *,
    store_dir: str | os.PathLike[str],
    place: str,
    overwrite: bool = False,
) -> tuple[Path, int]:
    """Write the confirmed (``label`` 1) and rejected (``label`` 0) reviews of a place.

    Parameters
    ----------
    out : path
        Output GeoJSON (EPSG:4326, RFC 7946).
    store_dir : path
        Review store folder.
    place : str
        Place key (see :func:`place_key`).
    overwrite : bool
        Replace an existing output.

    Returns
    -------
    path : pathlib.Path
        The written file.
    count : int
        Labels written.

    Raises
    ------
    InputError
        The store holds no reviews for ``place``.
    """
    stored = load_reviews(store_dir, place)
    if not len(stored):
        raise InputError(
            f"no reviews stored for place {place!r} in {store_dir}; run 'borderwatch review import'"
        )
    labels = stored[stored["review"].isin(list(_LABELS))].copy()
    labels["label"] = labels["review"].map(_LABELS).astype(np.int64)
    labels["place"] = place
    meta = {
        "place": place,
        "format": "borderwatch-labels/1",
        "labels": _LABELS,
        "reviews": list(REVIEW_VALUES),
    }
    return write_geojson(labels, out, metadata=meta, overwrite=overwrite), len(labels)
