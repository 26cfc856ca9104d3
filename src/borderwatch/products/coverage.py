"""How much of the area of interest a run could assess.

A detection run can only find change where both dates have valid pixels. Where the
imagery does not reach, or one date is cloud, nodata or outside its scene, the absence
of detections means nothing; an analyst must be told how large that part is.

:func:`coverage_frame` splits the AOI (without an AOI: the overlap of the input files,
:func:`input_overlap`) into

* ``assessed``: both dates have valid pixels;
* ``one_date_only``: only one of the two dates has valid pixels;
* ``not_covered``: neither date has valid pixels, or no image reaches there;

as polygons in the grid CRS with their areas in m2. It uses the valid-pixel footprints
the engine collected during its block pass (:meth:`borderwatch.engine.DetectionRun.
footprint`), so the inputs are not read again; they are exact when the preview step is
1 (grids up to :data:`borderwatch.engine.apply.PREVIEW_PX` pixels a side) and sampled
every ``step`` pixels otherwise. :func:`coverage_summary` gives the numbers stored in the
run metadata, the manifest and the report, :func:`coverage_lines` the summary lines of
the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import rasterio.features
import shapely
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from borderwatch.aoi import aoi_polygon_lonlat

if TYPE_CHECKING:  # the engine imports this module for run_metadata
    from borderwatch.engine import DetectionRun
    from borderwatch.io import Grid

__all__ = [
    "COVERAGE_STATUSES",
    "WARN_BELOW_SHARE",
    "aoi_geometry",
    "coverage_frame",
    "coverage_lines",
    "coverage_summary",
    "format_area",
    "input_overlap",
    "mask_polygon",
]

#: Values of the ``status`` column of :func:`coverage_frame`, in order.
COVERAGE_STATUSES = ("assessed", "one_date_only", "not_covered")

#: Assessed share of the AOI (0-1) under which the summary and the report warn.
WARN_BELOW_SHARE = 0.9


def mask_polygon(mask: np.ndarray, grid: Grid) -> shapely.Geometry:
    """Union of the ``True`` pixels of ``mask`` as one (multi)polygon in the grid CRS.

    Parameters
    ----------
    mask : numpy.ndarray
        ``bool (rows, cols)`` on ``grid``.
    grid : Grid
        Grid of the mask.

    Returns
    -------
    shapely.Geometry
        Pixel-edge polygon(s), coordinates in ``grid.crs``; empty when no pixel is set.
    """
    polys = [
        shape(g)
        for g, v in rasterio.features.shapes(
            mask.astype(np.uint8), mask=mask, transform=grid.transform, connectivity=8
        )
        if v == 1
    ]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def aoi_geometry(run: DetectionRun) -> shapely.Geometry | None:
    """Return the run's AOI search polygon in the grid CRS (metres), or None without an AOI."""
    if run.aoi is None:
        return None
    lonlat = gpd.GeoSeries([aoi_polygon_lonlat(run.aoi)], crs="EPSG:4326")
    return lonlat.to_crs(run.grid.crs).iloc[0]


def _grid_extent(grid: Grid) -> shapely.Polygon:
    left, top = grid.transform * (0, 0)
    right, bottom = grid.transform * (grid.shape[1], grid.shape[0])
    return box(min(left, right), min(bottom, top), max(left, right), max(bottom, top))


def _polygonal(geom: shapely.Geometry) -> shapely.Geometry:
    """Keep the polygon parts of ``geom`` (overlay results may hold touching edges as lines)."""
    polys = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(polys) if polys else shapely.Polygon()


def input_overlap(run: DetectionRun) -> shapely.Geometry:
    """Where the input files of both dates overlap, in the grid CRS, within the grid.

    From the files' extents (headers only, no pixels), each outline densified before
    it is reprojected, so it is exact for inputs in the grid CRS and close otherwise.
    The analysis grid itself is a little larger: it is snapped outward to whole pixels
    around the overlap's EPSG:4326 envelope.
    """
    dates = []
    for ref in (run.before, run.after):
        parts = []
        for path in ref.source.paths:
            with rasterio.open(path) as src:
                left, bottom, right, top = src.bounds
                outline = shapely.segmentize(
                    box(left, bottom, right, top), max(right - left, top - bottom) / 64
                )
                parts.append(shape(transform_geom(src.crs, run.grid.crs, mapping(outline))))
        dates.append(shapely.union_all(parts))
    return dates[0].intersection(dates[1]).intersection(_grid_extent(run.grid))


def coverage_frame(run: DetectionRun) -> gpd.GeoDataFrame:
    """Split the AOI into assessed, one-date-only and not-covered parts.

    Parameters
    ----------
    run : DetectionRun
        A finished run (its preview footprints are used).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per non-empty part, in the order of :data:`COVERAGE_STATUSES`: columns
        ``status``, ``area_m2`` (m2, measured in the grid CRS) and ``share`` (of the
        AOI, 0-1); geometry in the grid CRS. The areas add up to the AOI's area (the
        input overlap's without an AOI).
    """
    valid_b, vgrid, _ = run.footprint("before")
    valid_a, _, _ = run.footprint("after")
    extent = _grid_extent(run.grid)
    aoi = aoi_geometry(run)
    region = input_overlap(run) if aoi is None else shapely.make_valid(aoi)
    # The preview grid may overhang the analysis grid by part of a preview pixel.
    both = region.intersection(mask_polygon(valid_b & valid_a, vgrid).intersection(extent))
    either = region.intersection(mask_polygon(valid_b | valid_a, vgrid).intersection(extent))
    parts = [_polygonal(g) for g in (both, either.difference(both), region.difference(either))]
    total = float(region.area)
    rows = [
        {
            "status": status,
            "area_m2": float(geom.area),
            "share": float(geom.area) / total if total > 0 else 0.0,
            "geometry": geom,
        }
        for status, geom in zip(COVERAGE_STATUSES, parts, strict=True)
        if not geom.is_empty and geom.area > 0
    ]
    if not rows:
        return gpd.GeoDataFrame(
            {"status": [], "area_m2": [], "share": []},
            geometry=gpd.GeoSeries([], crs=run.grid.crs),
            crs=run.grid.crs,
        )
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=run.grid.crs)


def coverage_summary(run: DetectionRun) -> dict[str, Any]:
    """Coverage numbers of a run, JSON-serialisable (see :func:`coverage_frame`).

    Returns
    -------
    dict
        ``region`` (``"aoi"`` or ``"input overlap"``: what the shares are of),
        ``region_area_m2``, ``assessed_area_m2`` (both dates valid),
        ``one_date_only_area_m2``, ``not_covered_area_m2`` (m2, in the grid CRS
        ``crs``), ``assessed_share`` (0-1), ``resolution_m`` (pixel size of the
        footprints used, metres) and ``warning`` (a sentence when the assessed share
        is under :data:`WARN_BELOW_SHARE`, else None).
    """
    frame = coverage_frame(run)
    areas = dict.fromkeys(COVERAGE_STATUSES, 0.0)
    areas.update(zip(frame["status"], frame["area_m2"].astype(float), strict=True))
    total = sum(areas.values())
    share = areas["assessed"] / total if total > 0 else 0.0
    region = "aoi" if run.aoi is not None else "input overlap"
    step = run.preview.step if run.preview is not None else 1
    warning = None
    if share < WARN_BELOW_SHARE:
        warning = (
            f"only {_percent(share)} of the {'AOI' if region == 'aoi' else region} could be "
            "assessed (both dates, valid pixels); absence of detections elsewhere means nothing"
        )
    return {
        "region": region,
        "region_area_m2": total,
        "assessed_area_m2": areas["assessed"],
        "one_date_only_area_m2": areas["one_date_only"],
        "not_covered_area_m2": areas["not_covered"],
        "assessed_share": share,
        "crs": run.grid.crs.to_string(),
        "resolution_m": float(run.grid.res[0]) * step,
        "warning": warning,
    }


def _percent(share: float) -> str:
    if 0 < share < 0.001:
        return "< 0.1 %"
    return f"{share * 100:.1f} %"


def format_area(m2: float, *, unit: str = "2") -> str:
    """``"0.26 km2"`` from 1 ha up, else ``"4,096 m2"``; ``unit="²"`` for print.

    Examples
    --------
    >>> format_area(262144.0), format_area(4096.0, unit="²")
    ('0.26 km2', '4,096 m²')
    """
    return f"{m2 / 1e6:,.2f} km{unit}" if m2 >= 1e4 else f"{m2:,.0f} m{unit}"


def coverage_lines(summary: Mapping[str, Any]) -> list[str]:
    """Format :func:`coverage_summary`'s numbers as the CLI summary lines.

    Examples
    --------
    >>> s = {"region": "aoi", "region_area_m2": 28.26e6, "assessed_area_m2": 0.26e6,
    ...      "assessed_share": 0.0092, "warning": "only 0.9 % ..."}
    >>> coverage_lines(s)
    ['assessed 0.26 km2 of 28.26 km2 AOI (0.9 %)', 'warning: only 0.9 % ...']
    """
    region = "AOI" if summary["region"] == "aoi" else summary["region"]
    lines = [
        f"assessed {format_area(summary['assessed_area_m2'])} of "
        f"{format_area(summary['region_area_m2'])} "
        f"{region} ({_percent(summary['assessed_share'])})"
    ]
    if summary.get("warning"):
        lines.append(f"warning: {summary['warning']}")
    return lines
