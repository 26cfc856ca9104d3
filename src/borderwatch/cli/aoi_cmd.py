"""``borderwatch aoi``: list and show areas of interest, build border corridors.

Thin layer over :mod:`borderwatch.aoi`; output is plain aligned text.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from borderwatch import aoi as aoi_lib
from borderwatch.errors import AOIError, BorderwatchError
from borderwatch.products import export

__all__ = ["aoi"]


class _AOIGroup(click.Group):
    """Group that prints library errors as one line even when used on its own."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BorderwatchError as exc:
            click.echo(f"borderwatch: error: {exc}", err=True)
            sys.exit(2)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: set[int]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = []
    for row in [header, *rows]:
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


@click.group(cls=_AOIGroup)
def aoi() -> None:
    """Areas of interest: the built-in catalogue and border corridors."""


@aoi.command("list")
def list_cmd() -> None:
    """List the built-in catalogue with the area of each search polygon."""
    cat = aoi_lib.load_catalogue()
    rows = []
    for ref in cat["id"]:
        a = aoi_lib.get_aoi(ref, catalogue=cat)
        area = aoi_lib.area_km2(aoi_lib.aoi_polygon_lonlat(a))
        conf = a.properties.get("location_confidence") or "-"
        rows.append([a.id, a.name, a.kind, str(conf), f"{area:.2f}"])
    click.echo(_table(["id", "name", "kind", "confidence", "area_km2"], rows, right={4}))


@aoi.command("show")
@click.argument("ref")
@click.option("--radius-m", type=float, help="Search radius for point AOIs, metres.")
@click.option("--width-m", type=float, help="Corridor width for line AOIs, metres.")
def show_cmd(ref: str, radius_m: float | None, width_m: float | None) -> None:
    """Show one AOI: a catalogue id or name, a file, or FILE#ID."""
    a = aoi_lib.get_aoi(ref)
    lon, lat = a.centroid_lonlat
    for key, value in a.properties.items():
        if isinstance(value, list):
            click.echo(f"{key}:")
            for item in value:
                click.echo(f"  - {item}")
        else:
            click.echo(f"{key}: {value}")
    click.echo(f"geometry: {a.geometry.geom_type}")
    click.echo(f"centroid_lon_lat: {lon:.6f}, {lat:.6f}")
    click.echo(f"utm_crs: EPSG:{aoi_lib.utm_crs(lon, lat).to_epsg()}")
    try:
        poly = aoi_lib.aoi_polygon_lonlat(a, radius_m=radius_m, width_m=width_m)
    except AOIError as exc:
        click.echo(f"area_km2: n/a ({exc})")
    else:
        click.echo(f"area_km2: {aoi_lib.area_km2(poly):.3f}")
    click.echo(f"source: {a.source}")


@aoi.command("corridors")
@click.option(
    "--boundary",
    "boundary_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Border line file (GeoJSON, GPKG, Shapefile); may be world-wide, such as Natural "
    "Earth's ne_10m_admin_0_boundary_lines_land: it is cut to each study area first.",
)
@click.option(
    "--width-m",
    required=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Corridor width in metres.",
)
@click.option(
    "--study-areas",
    "areas_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Study-area file (points with radius_m); default: the built-in fence study areas.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the corridors as RFC 7946 GeoJSON.",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
def corridors_cmd(
    boundary_path: Path,
    width_m: float,
    areas_path: Path | None,
    out_path: Path | None,
    overwrite: bool,
) -> None:
    """Clip a border line to each study area and buffer it into a corridor."""
    if out_path is not None:
        export.check_writable(out_path, overwrite=overwrite)
    if areas_path is None:
        cat = aoi_lib.load_catalogue()
        areas = cat[cat["kind"] == "fence_study_area"]
    else:
        areas = aoi_lib.read_aoi_file(areas_path)
    boundary = aoi_lib.read_aoi_file(boundary_path)
    result = aoi_lib.corridors(areas, boundary, width_m=width_m)
    rows = [
        [str(r.id), str(r.name), f"{r.border_km:.2f}", f"{aoi_lib.area_km2(r.geometry):.2f}"]
        for r in result.itertuples()
    ]
    click.echo(_table(["id", "name", "border_km", "corridor_km2"], rows, right={2, 3}))
    if out_path is not None:
        meta = {
            "command": "aoi corridors",
            "boundary": str(boundary_path),
            "study_areas": str(areas_path) if areas_path else "builtin:fence_study_area",
            "width_m": width_m,
        }
        export.write_geojson(result, out_path, metadata=meta, overwrite=overwrite)
        click.echo(f"wrote {len(result)} corridors to {out_path}")
