"""Areas of interest: the built-in catalogue, user AOI files, and metric search polygons.

An AOI is a geometry in EPSG:4326 (lon, lat) plus its properties. Points carry a search
radius (``radius_m``, metres), lines a corridor width; :func:`aoi_polygon` turns any of
them into a polygon in metres in the local UTM zone, where buffers and areas are honest.

The built-in catalogue (``aoi/`` in the repository, ``borderwatch/aoi_catalogue`` in the
wheel) holds the six Chinese border-defence detention centres on NKDB's forced
repatriation routes (``kind="facility"``) and the border towns where new fences were
reported (``kind="fence_study_area"``). None of the points is facility-exact; see
``aoi/README.md``.
"""

from __future__ import annotations

import importlib.resources
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer
from rasterio.crs import CRS

from borderwatch.errors import AOIError

__all__ = [
    "AOI",
    "CATALOGUE_FILES",
    "aoi_caveat",
    "aoi_polygon",
    "aoi_polygon_lonlat",
    "area_km2",
    "catalogue_dir",
    "corridors",
    "get_aoi",
    "load_catalogue",
    "read_aoi_file",
    "utm_crs",
]

log = logging.getLogger(__name__)

#: Built-in catalogue files and the ``kind`` given to features that do not name one.
CATALOGUE_FILES: Mapping[str, str] = MappingProxyType(
    {"psbdc_facilities.geojson": "facility", "border_fence_lines.geojson": "fence_study_area"}
)

_WGS84 = CRS.from_epsg(4326)
_GEOJSON_SUFFIXES = {".geojson", ".json", ".geojsonl", ".geojsons"}
_VECTOR_SUFFIXES = _GEOJSON_SUFFIXES | {".gpkg", ".shp", ".zip", ".fgb", ".kml", ".gml"}
#: What each catalogue ``location_confidence`` means for a finding (aoi/README.md).
_CAVEATS: Mapping[str, str] = MappingProxyType(
    {
        "town": "The AOI's point is a town centre from public gazetteers, good to about 1-2 km, "
        "not the facility or fence itself; the target can lie outside the searched circle.",
        "crossing": "The AOI's point is the border crossing (a documented bridge), not the "
        "facility or fence itself; the target can lie outside the searched circle.",
        "exact": "The AOI's geometry is the site itself.",
    }
)
# 32 segments per quarter circle: the polygon's area is within 0.05 % of pi * r**2.
_QUAD_SEGS = 32
#: Margin around a study area's lon/lat box when cutting the boundary, degrees.
_CLIP_MARGIN_DEG = 0.05
_LINE_TYPE_IDS = (1, 2)  # shapely type ids of LineString and LinearRing


@dataclass(frozen=True)
class AOI:
    """One area of interest.

    Attributes
    ----------
    id : str
        Catalogue or file id (``feature-<n>`` when the file had none).
    name : str
        Human-readable name.
    kind : str
        ``"facility"``, ``"fence_study_area"``, or ``"user"`` for files without a kind.
    geometry : shapely.Geometry
        Geometry in EPSG:4326, x = longitude, y = latitude (degrees).
    properties : Mapping[str, Any]
        All other attributes (read-only), e.g. ``radius_m`` in metres.
    source : str
        The file it came from.
    """

    id: str
    name: str
    kind: str
    geometry: shapely.Geometry
    properties: Mapping[str, Any]
    source: str

    @property
    def centroid_lonlat(self) -> tuple[float, float]:
        """Centroid ``(lon, lat)`` in degrees, EPSG:4326 (planar centroid of lon/lat)."""
        c = self.geometry.centroid
        return (float(c.x), float(c.y))


def aoi_caveat(aoi: AOI) -> tuple[str, str]:
    """How far an AOI can be trusted to hold its target: its confidence and caveat.

    Parameters
    ----------
    aoi : AOI
        Catalogue entry or user AOI.

    Returns
    -------
    confidence : str
        The ``location_confidence`` property (``"town"``, ``"crossing"``, ...), or
        ``"not stated"``.
    caveat : str
        The ``caveat`` property if the AOI has one, else the meaning of its confidence
        (see ``aoi/README.md``), else a sentence saying that none was given.

    Examples
    --------
    >>> confidence, caveat = aoi_caveat(get_aoi("helong"))
    >>> confidence, caveat.split(",")[0]
    ('town', "The AOI's point is a town centre from public gazetteers")
    """
    confidence = str(aoi.properties.get("location_confidence") or "not stated")
    caveat = aoi.properties.get("caveat") or _CAVEATS.get(confidence)
    if not caveat:
        caveat = "No location confidence was given with this AOI; treat its outline as approximate."
    return confidence, str(caveat)


def catalogue_dir() -> Path:
    """Folder holding the built-in AOI catalogue.

    Returns
    -------
    pathlib.Path
        ``borderwatch/aoi_catalogue`` inside an installed wheel if present, else the
        repository's ``aoi/`` folder (editable installs and source checkouts).

    Raises
    ------
    AOIError
        Neither folder exists.
    """
    packaged = Path(str(importlib.resources.files("borderwatch") / "aoi_catalogue"))
    if packaged.is_dir():
        return packaged
    repo = Path(__file__).resolve().parents[2] / "aoi"
    if repo.is_dir():
        return repo
    raise AOIError(
        f"AOI catalogue not found: neither {packaged} (installed wheel) nor {repo} "
        "(source checkout) exists; reinstall borderwatch"
    )


def load_catalogue() -> gpd.GeoDataFrame:
    """Load both built-in catalogue files into one table.

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326 points with columns ``id``, ``name``, ``kind`` (``"facility"`` or
        ``"fence_study_area"``), ``location_confidence``, ``radius_m`` (metres),
        ``sources``, ``notes``, ``source_file`` and more.

    Raises
    ------
    AOIError
        A catalogue file is missing or malformed, or two entries share an id.
    """
    folder = catalogue_dir()
    frames = []
    for fname, kind in CATALOGUE_FILES.items():
        gdf = read_aoi_file(folder / fname)
        if "kind" not in gdf.columns:
            gdf["kind"] = kind
        gdf["kind"] = gdf["kind"].fillna(kind).astype(object)
        frames.append(gdf)
    cat = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=4326)
    dupes = sorted(set(cat["id"][cat["id"].duplicated()]))
    if dupes:
        raise AOIError(f"AOI catalogue {folder}: duplicate ids {dupes}")
    return cat


def _check_lonlat_range(gdf: gpd.GeoDataFrame, path: Path) -> None:
    xmin, ymin, xmax, ymax = (float(v) for v in gdf.total_bounds)
    if max(abs(ymin), abs(ymax)) > 90:
        if max(abs(xmin), abs(xmax)) <= 90 and max(abs(ymin), abs(ymax)) <= 180:
            raise AOIError(
                f"{path}: coordinates look swapped (lat, lon instead of lon, lat): "
                f"y spans {ymin:g}..{ymax:g} but latitude must lie in [-90, 90]; "
                "write x = longitude, y = latitude"
            )
        raise AOIError(f"{path}: y values {ymin:g}..{ymax:g} are outside latitude [-90, 90]")
    if max(abs(xmin), abs(xmax)) > 180:
        raise AOIError(f"{path}: x values {xmin:g}..{xmax:g} are outside longitude [-180, 180]")


def _feature_label(gdf: gpd.GeoDataFrame, i: int) -> str:
    if "id" in gdf.columns and pd.notna(gdf["id"].iloc[i]):
        return f"feature {i} (id {gdf['id'].iloc[i]!r})"
    return f"feature {i}"


def read_aoi_file(path: str | os.PathLike[str]) -> gpd.GeoDataFrame:
    """Read and validate a user AOI file.

    Parameters
    ----------
    path : path-like
        Any vector file GDAL reads (GeoJSON, GeoPackage, Shapefile, ...). GeoJSON
        without a CRS member is taken as EPSG:4326 (RFC 7946); other formats must
        declare a CRS.

    Returns
    -------
    geopandas.GeoDataFrame
        Features reprojected to EPSG:4326 (x = lon, y = lat), index 0..n-1, a string
        ``id`` column (``feature-<n>`` where missing) and a ``name`` column (the id
        where missing), plus ``source_file``.

    Raises
    ------
    AOIError
        The file is missing or unreadable, has no CRS, no features, empty or invalid
        geometries, coordinates out of range or apparently swapped, or duplicate ids.
    """
    p = Path(path)
    if not p.exists():
        raise AOIError(f"AOI file not found: {p}")
    try:
        gdf = gpd.read_file(p, engine="pyogrio")
    except (RuntimeError, OSError, ValueError) as exc:  # pyogrio errors are RuntimeErrors
        msg = " ".join(str(exc).split())
        raise AOIError(f"cannot read AOI file {p}: {msg}") from exc
    if len(gdf) == 0:
        raise AOIError(f"AOI file {p} contains no features")
    if gdf.crs is None:
        if p.suffix.lower() not in _GEOJSON_SUFFIXES:
            raise AOIError(
                f"AOI file {p} has no CRS; add one (e.g. a .prj file) or convert it to "
                "GeoJSON in lon/lat (EPSG:4326)"
            )
        gdf = gdf.set_crs(4326)
    gdf = gdf.reset_index(drop=True)
    for i, geom in enumerate(gdf.geometry.values):
        if geom is None or geom.is_empty:
            raise AOIError(f"AOI file {p}: {_feature_label(gdf, i)} has an empty geometry")
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            raise AOIError(
                f"AOI file {p}: {_feature_label(gdf, i)} has an invalid geometry ({reason}); "
                "repair it, e.g. with shapely.make_valid"
            )
    if gdf.crs.is_geographic:
        _check_lonlat_range(gdf, p)
    if gdf.crs.to_epsg() != 4326:
        gdf = gdf.to_crs(4326)

    ids = [f"feature-{i}" for i in range(len(gdf))]
    if "id" in gdf.columns:
        ids = [
            str(v) if pd.notna(v) and str(v) != "" else default
            for v, default in zip(gdf["id"], ids, strict=True)
        ]
    gdf["id"] = pd.Series(ids, dtype=object)
    dupes = sorted(set(gdf["id"][gdf["id"].duplicated()]))
    if dupes:
        raise AOIError(f"AOI file {p}: duplicate ids {dupes}; ids must be unique")
    if "name" in gdf.columns:
        gdf["name"] = [
            str(n) if pd.notna(n) else i for n, i in zip(gdf["name"], gdf["id"], strict=True)
        ]
    else:
        gdf["name"] = gdf["id"]
    gdf["source_file"] = str(p)
    return gdf


def _plain(value: Any) -> Any:
    """Turn numpy/pandas cell values into plain Python values."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _row_to_aoi(gdf: gpd.GeoDataFrame, i: int) -> AOI:
    row = gdf.iloc[i]
    geom_col = gdf.geometry.name
    props = {str(k): _plain(v) for k, v in row.items() if k not in (geom_col, "source_file")}
    kind = props.get("kind") or "user"
    return AOI(
        id=str(props["id"]),
        name=str(props["name"]),
        kind=str(kind),
        geometry=row[geom_col],
        properties=MappingProxyType(props),
        source=str(row.get("source_file", "")),
    )


def _looks_like_path(ref: str) -> bool:
    base = ref.split("#", 1)[0]
    has_sep = "/" in base or os.sep in base
    return "#" in ref or has_sep or Path(base).suffix.lower() in _VECTOR_SUFFIXES


def get_aoi(ref: str | os.PathLike[str], *, catalogue: gpd.GeoDataFrame | None = None) -> AOI:
    """Look up one AOI by catalogue id, catalogue name, or file path.

    Parameters
    ----------
    ref : str or path-like
        A catalogue id (``"helong"``), a catalogue name (case-insensitive), a path to a
        single-feature vector file, or ``"path#id"`` to pick one feature of a file.
    catalogue : geopandas.GeoDataFrame, optional
        Table as returned by :func:`load_catalogue`; loaded when not given.

    Returns
    -------
    AOI
        Geometry in EPSG:4326 (lon, lat).

    Raises
    ------
    AOIError
        Unknown id or name (the message lists the valid ids), an unreadable file, a
        multi-feature file without ``#id``, or an unknown ``#id``.
    """
    if isinstance(ref, os.PathLike):
        return _aoi_from_file(os.fspath(ref))
    text = str(ref).strip()
    if _looks_like_path(text):
        return _aoi_from_file(text)
    cat = load_catalogue() if catalogue is None else catalogue
    ids = [str(v) for v in cat["id"]]
    if text in ids:
        return _row_to_aoi(cat.reset_index(drop=True), ids.index(text))
    folded = text.casefold()
    for i, (cid, name) in enumerate(zip(ids, cat["name"], strict=True)):
        if folded in (cid.casefold(), str(name).casefold()):
            return _row_to_aoi(cat.reset_index(drop=True), i)
    if Path(text).is_file():
        return _aoi_from_file(text)
    raise AOIError(f"unknown AOI {text!r}; valid ids: {', '.join(ids)} (or give a file path)")


def _aoi_from_file(ref: str) -> AOI:
    path, _, fid = ref.partition("#")
    if fid and not Path(path).exists() and Path(ref).exists():
        path, fid = ref, ""  # a literal '#' in the file name
    gdf = read_aoi_file(path)
    ids = list(gdf["id"])
    if fid:
        if fid not in ids:
            raise AOIError(f"AOI file {path} has no feature {fid!r}; ids: {', '.join(ids)}")
        return _row_to_aoi(gdf, ids.index(fid))
    if len(gdf) != 1:
        raise AOIError(
            f"AOI file {path} has {len(gdf)} features; pick one with {path}#ID "
            f"(ids: {', '.join(ids[:20])}{' ...' if len(ids) > 20 else ''})"
        )
    return _row_to_aoi(gdf, 0)


def utm_crs(lon: float, lat: float) -> CRS:
    """WGS 84 / UTM CRS of the zone holding a point.

    Standard 6-degree zones; the Norway and Svalbard exceptions are ignored.

    Parameters
    ----------
    lon, lat : float
        Longitude and latitude in degrees, EPSG:4326.

    Returns
    -------
    rasterio.crs.CRS
        EPSG:326zz north of the equator, EPSG:327zz south of it.

    Raises
    ------
    AOIError
        ``lon`` or ``lat`` outside [-180, 180] / [-90, 90], or not finite.

    Examples
    --------
    >>> utm_crs(129.0039, 42.5403).to_epsg()
    32652
    """
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
        raise AOIError(f"lon/lat ({lon}, {lat}) out of range for a UTM zone")
    zone = min(int((lon + 180.0) // 6.0) + 1, 60)
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _transform(geom: shapely.Geometry, src: CRS, dst: CRS) -> shapely.Geometry:
    tr = Transformer.from_crs(src.to_wkt(), dst.to_wkt(), always_xy=True)
    return shapely.transform(geom, lambda x, y: tr.transform(x, y), interleaved=False)


def _positive(value: Any, what: str, aoi_id: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or v <= 0:
        raise AOIError(f"AOI {aoi_id!r}: {what} must be a positive number of metres, got {value!r}")
    return v


def aoi_polygon(
    aoi: AOI, *, width_m: float | None = None, radius_m: float | None = None
) -> tuple[shapely.Polygon | shapely.MultiPolygon, CRS]:
    """Metric search polygon of an AOI in the UTM zone of its centroid.

    Parameters
    ----------
    aoi : AOI
        Geometry in EPSG:4326.
    width_m : float, optional
        Corridor width in metres for line AOIs (buffer of ``width_m / 2`` each side).
        Required for lines; ignored for points and polygons.
    radius_m : float, optional
        Search radius in metres for point AOIs; defaults to the ``radius_m`` property.
        Ignored for lines and polygons, which are used as they are.

    Returns
    -------
    polygon : shapely.Polygon or shapely.MultiPolygon
        Coordinates in metres in ``crs``.
    crs : rasterio.crs.CRS
        The UTM CRS (EPSG:326zz/327zz) of the AOI centroid.

    Raises
    ------
    AOIError
        A point without a positive radius, a line without a positive width, or an
        unsupported geometry type.
    """
    lon, lat = aoi.centroid_lonlat
    crs = utm_crs(lon, lat)
    geom = _transform(aoi.geometry, _WGS84, crs)
    gtype = geom.geom_type
    if gtype in ("Point", "MultiPoint"):
        r = radius_m if radius_m is not None else aoi.properties.get("radius_m")
        if r is None:
            raise AOIError(
                f"AOI {aoi.id!r} is a point without a radius_m property; pass radius_m "
                "(metres) or add the property to the file"
            )
        out = geom.buffer(_positive(r, "radius_m", aoi.id), quad_segs=_QUAD_SEGS)
    elif gtype in ("LineString", "MultiLineString", "LinearRing"):
        if width_m is None:
            raise AOIError(f"AOI {aoi.id!r} is a line; pass width_m (corridor width, metres)")
        out = geom.buffer(_positive(width_m, "width_m", aoi.id) / 2.0, quad_segs=_QUAD_SEGS)
    elif gtype in ("Polygon", "MultiPolygon"):
        out = geom
    else:
        raise AOIError(f"AOI {aoi.id!r}: unsupported geometry type {gtype}")
    return out, crs


def aoi_polygon_lonlat(
    aoi: AOI, *, width_m: float | None = None, radius_m: float | None = None
) -> shapely.Geometry:
    """Search polygon of :func:`aoi_polygon`, reprojected back to EPSG:4326 (lon, lat).

    Parameters are those of :func:`aoi_polygon`.
    """
    poly, crs = aoi_polygon(aoi, width_m=width_m, radius_m=radius_m)
    return _transform(poly, crs, _WGS84)


def area_km2(geom_lonlat: shapely.Geometry) -> float:
    """Area in square kilometres of a geometry given in EPSG:4326 (lon, lat).

    Computed in the UTM zone of the geometry's centroid (scale error below 0.1 %
    within a zone).
    """
    c = geom_lonlat.centroid
    return float(_transform(geom_lonlat, _WGS84, utm_crs(c.x, c.y)).area) / 1e6


def _boundary_lines(boundary: gpd.GeoDataFrame) -> NDArray[np.object_]:
    """Return the boundary's line parts in EPSG:4326 (lon, lat), not yet merged."""
    if boundary.crs is None:
        raise AOIError("boundary layer has no CRS; give lines in EPSG:4326 or with a CRS")
    geoms = boundary.to_crs(4326).geometry.values
    parts = shapely.get_parts(np.asarray(geoms[~shapely.is_missing(geoms)]))
    lines = parts[np.isin(shapely.get_type_id(parts), _LINE_TYPE_IDS)]
    if len(lines) == 0:
        raise AOIError("boundary layer has no line geometries")
    return lines


def _lines_near(lines_ll: NDArray[np.object_], area_ll: shapely.Geometry) -> shapely.Geometry:
    """Return the runs of boundary segments meeting a study area's lon/lat box plus margin.

    Cutting in lon/lat before projecting keeps a world-wide boundary file (vertices
    far outside the area's UTM zone, where the projection diverges) out of the metric
    step. Segments are kept whole, with their original vertices, so the line is the
    same vertex-to-vertex line as when projected uncut; the margin
    (:data:`_CLIP_MARGIN_DEG` plus 10 % of the box) covers the difference between
    straight edges in lon/lat and in UTM. The union drops duplicated segments, which
    would otherwise count twice in ``border_km``.
    """
    x0, y0, x1, y1 = area_ll.bounds
    pad_x = _CLIP_MARGIN_DEG + 0.1 * (x1 - x0)
    pad_y = _CLIP_MARGIN_DEG + 0.1 * (y1 - y0)
    rect = shapely.box(x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y)
    pieces = []
    for line in lines_ll[shapely.intersects(lines_ll, rect)]:
        xy = shapely.get_coordinates(line)
        segments = shapely.linestrings(np.stack([xy[:-1], xy[1:]], axis=1))
        kept = np.flatnonzero(shapely.intersects(segments, rect))
        for run in np.split(kept, np.flatnonzero(np.diff(kept) > 1) + 1):
            pieces.append(shapely.LineString(xy[run[0] : run[-1] + 2]))
    return shapely.union_all(pieces) if pieces else shapely.MultiLineString()


def corridors(
    study_areas: gpd.GeoDataFrame, boundary: gpd.GeoDataFrame, *, width_m: float
) -> gpd.GeoDataFrame:
    """Border corridors: the boundary inside each study area's circle, buffered.

    For each study area the boundary lines are first cut to the area's lon/lat box
    (with a margin), so a world-wide file such as Natural Earth's
    ``ne_10m_admin_0_boundary_lines_land`` gives the same corridors as the border
    cut from it; then they are projected, clipped to the search circle (a point
    buffered by ``radius_m``, in the area's UTM zone; polygon study areas are used as
    they are) and buffered by ``width_m / 2`` on each side. Study areas spanning
    the antimeridian are not supported.

    Parameters
    ----------
    study_areas : geopandas.GeoDataFrame
        Study areas with ``id``, ``name`` and, for points, ``radius_m`` (metres), e.g.
        the ``fence_study_area`` rows of :func:`load_catalogue`. Any CRS.
    boundary : geopandas.GeoDataFrame
        Border lines (LineString/MultiLineString), any CRS.
    width_m : float
        Corridor width in metres (the full width across the line).

    Returns
    -------
    geopandas.GeoDataFrame
        EPSG:4326, one row per study area that the boundary crosses, with ``id``,
        ``name``, ``width_m`` (metres), ``border_km`` (length of boundary inside the
        circle, km, measured in UTM) and the corridor polygon.

    Raises
    ------
    AOIError
        ``width_m`` not positive, no line in ``boundary``, a point without
        ``radius_m``, or no study area reached by the boundary at all.
    """
    width = _positive(width_m, "width_m", "corridors")
    if len(study_areas) == 0:
        raise AOIError("no study areas given")
    if study_areas.crs is None:
        raise AOIError("study areas have no CRS")
    lines_ll = _boundary_lines(boundary)
    areas = study_areas.to_crs(4326).reset_index(drop=True)
    if "id" not in areas.columns:
        areas["id"] = [f"feature-{i}" for i in range(len(areas))]
    if "name" not in areas.columns:
        areas["name"] = areas["id"]
    if "source_file" not in areas.columns:
        areas["source_file"] = "<GeoDataFrame>"
    rows = []
    for i in range(len(areas)):
        aoi = _row_to_aoi(areas, i)
        circle, crs = aoi_polygon(aoi)
        lines = _transform(_lines_near(lines_ll, _transform(circle, crs, _WGS84)), _WGS84, crs)
        inside = shapely.intersection(lines, circle)
        flat = shapely.get_parts(shapely.get_parts(inside))  # collections, then multi-parts
        parts = [g for g in flat if g.geom_type == "LineString"]
        length_m = float(sum(g.length for g in parts))
        if length_m == 0.0:
            log.warning("study area %r: no boundary line within its search area; skipped", aoi.id)
            continue
        corridor = shapely.MultiLineString(parts).buffer(width / 2.0, quad_segs=_QUAD_SEGS)
        rows.append(
            {
                "id": aoi.id,
                "name": aoi.name,
                "width_m": width,
                "border_km": length_m / 1000.0,
                "geometry": _transform(corridor, crs, _WGS84),
            }
        )
    if not rows:
        raise AOIError(
            f"the boundary crosses none of the {len(areas)} study areas "
            f"({', '.join(map(str, areas['id']))}); check the boundary file and the radii"
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=4326)
