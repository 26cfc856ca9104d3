"""``borderwatch detect``: find new structures between two dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from borderwatch.cli.options import detect_options, parse_threshold, scale_options
from borderwatch.cli.review_cmd import store_option
from borderwatch.cli.scale import raster_out_options, run_blockwise, use_blocks
from borderwatch.export import check_writable
from borderwatch.pipeline import DetectionRun, DetectParams, run_detect
from borderwatch.products import write_products
from borderwatch.review import default_store_dir

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
    help="Output detections: FILE.gpkg (styled GeoPackage for QGIS) or FILE.geojson "
    "(RFC 7946, with a FILE.qml style beside it).",
)
@click.option(
    "--evidence",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write an evidence packet (chips, report.html, manifest.json) to this folder.",
)
@store_option
@click.option(
    "--resolution",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Analysis pixel size in metres (default: finest input).",
)
@click.option("--crs", default=None, help="Analysis CRS (default: local UTM zone).")
@detect_options
@scale_options
@raster_out_options
@click.pass_context
def detect(
    ctx: click.Context,
    before: tuple[Path, ...],
    after: tuple[Path, ...],
    aoi: str | None,
    out: Path | None,
    resolution: float | None,
    crs: str | None,
    evidence: Path | None,
    reviews_dir: Path | None,
    method: str,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    block_size: int | None = None,
    scheduler: str | None = None,
    score_out: Path | None = None,
    mask_out: Path | None = None,
    **quality: Any,
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
        **quality,
    )
    scale: dict[str, Any] = {
        "block_size": block_size,
        "scheduler": scheduler,
        "score_out": score_out,
        "mask_out": mask_out,
    }
    if use_blocks(list(before), list(after), aoi=aoi, params=params, **scale):
        brun, files = run_blockwise(
            ctx,
            list(before),
            list(after),
            aoi=aoi,
            params=params,
            out=out,
            **scale,
            overwrite=overwrite,
            unsupported={"--evidence": evidence},
        )
        if not ctx.obj.get("quiet"):
            print_summary(brun, files)  # type: ignore[arg-type]
        return
    run = run_detect(list(before), list(after), aoi=aoi, params=params)
    products = write_products(
        run,
        outputs=(out,) if out is not None else (),
        evidence=evidence,
        reviews_dir=reviews_dir or default_store_dir(),
        overwrite=overwrite,
    )
    outputs = list(products.files)
    if products.evidence is not None:
        outputs += [products.evidence.report, products.evidence.manifest]
    if not ctx.obj.get("quiet"):
        print_summary(run, outputs)
        if products.reviews_applied:
            click.echo(
                f"  re-applied {products.reviews_applied} stored reviews for {products.place}"
            )
