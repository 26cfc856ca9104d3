"""``borderwatch detect``: find new structures between two dates."""

from __future__ import annotations

from pathlib import Path

import click

from borderwatch.cli.options import detect_options, parse_threshold
from borderwatch.export import check_writable, write_geojson
from borderwatch.pipeline import DetectionRun, DetectParams, run_detect, run_metadata

__all__ = ["detect", "print_summary"]


def print_summary(run: DetectionRun, outputs: list[Path]) -> None:
    """Print the short run summary: detections, total area, output files."""
    where = run.aoi.id if run.aoi is not None else "input overlap"
    click.echo(
        f"{len(run.objects)} detections, {run.total_area_m2:,.0f} m2 of change in {where} "
        f"({run.before.source.date or '?'} -> {run.after.source.date or '?'}, "
        f"{run.grid.res[0]:g} m grid, {run.grid.crs.to_string()}, "
        f"threshold {run.change.threshold:.3g})"
    )
    for path in outputs:
        click.echo(f"  wrote {path}")


@click.command()
@click.option(
    "--before",
    "before",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Before-date raster (repeat for one file per band, or give a folder).",
)
@click.option(
    "--after",
    "after",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="After-date raster (repeat for one file per band, or give a folder).",
)
@click.option("--aoi", default=None, help="Catalogue id/name or AOI file; default: input overlap.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Output GeoJSON (RFC 7946) of detections.",
)
@click.option("--resolution", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Analysis pixel size in metres (default: finest input).")
@click.option("--crs", default=None, help="Analysis CRS (default: local UTM zone).")
@detect_options
@click.pass_context
def detect(
    ctx: click.Context,
    before: tuple[Path, ...],
    after: tuple[Path, ...],
    aoi: str | None,
    out: Path | None,
    resolution: float | None,
    crs: str | None,
    method: str,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
) -> None:
    """Detect change between BEFORE and AFTER imagery and write detections."""
    if out is not None:
        check_writable(out, overwrite=overwrite)  # fail before the long work
    params = DetectParams(
        method=method,
        threshold=parse_threshold(threshold),
        min_area_m2=min_area_m2,
        resolution=resolution,
        crs=crs,
    )
    run = run_detect(list(before), list(after), aoi=aoi, params=params)
    outputs = []
    if out is not None:
        outputs.append(write_geojson(run.objects, out, metadata=run_metadata(run), overwrite=overwrite))
    if not ctx.obj.get("quiet"):
        print_summary(run, outputs)
