"""``borderwatch detect``: find new structures between two dates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from borderwatch.cli.options import (
    detect_options,
    detect_params,
    grid_options,
    imagery_options,
    packet_options,
    print_packet,
    scale_options,
    sign_key_file,
)
from borderwatch.cli.review_cmd import store_option
from borderwatch.cli.scale import raster_out_options
from borderwatch.engine import DetectionRun, DetectParams, detect
from borderwatch.products.coverage import coverage_lines, coverage_summary
from borderwatch.products.review import default_store_dir
from borderwatch.products.summary import detection_figures, figures_line
from borderwatch.products.write import check_outputs, write_products
from borderwatch.progress import progress_reporter
from borderwatch.remote import remote_env

__all__ = ["detect_command", "print_summary", "run_and_write"]


def print_summary(run: DetectionRun, outputs: list[Path], detections: Any) -> None:
    """Print the short run summary: the reviewed detections' figures, AOI coverage, files.

    ``detections`` is the analyst table with stored reviews applied
    (:attr:`borderwatch.products.write.Products.detections`); its figures
    (:func:`borderwatch.products.summary.detection_figures`) leave rejected ones out.
    """
    where = run.aoi.id if run.aoi is not None else "input overlap"
    dates = [run.before.source.date or "unknown", run.after.source.date or "unknown"]
    click.echo(
        f"{figures_line(detection_figures(detections))}, in {where} "
        f"({dates[0]} -> {dates[1]}, "
        f"{run.grid.res[0]:g} m grid, {run.grid.crs.to_string()}, "
        f"threshold {run.change.threshold:.3g})"
    )
    for line in coverage_lines(coverage_summary(run)):
        click.echo(line)
    for path in outputs:
        click.echo(f"  wrote {path}")


def run_and_write(
    before: Any,
    after: Any,
    *,
    aoi: Any,
    params: DetectParams,
    out: Path | None,
    evidence: Path | None,
    reviews_dir: Path | None,
    overwrite: bool,
    quiet: bool,
    block_size: int | None = None,
    scheduler: str | None = None,
    score_out: Path | None = None,
    mask_out: Path | None = None,
    sign_key: Any = None,
    redact: bool = False,
    command: str = "borderwatch detect",
    imagery: Any = None,
    allow_reversed: bool = False,
    qgis_project: Path | None = None,
) -> tuple[DetectionRun, list[Path], Any]:
    """Run the engine on one pair and write every product (shared by detect and batch).

    ``sign_key``, ``redact`` and ``command`` go to the evidence packet
    (:func:`borderwatch.products.write.write_products`).

    Returns
    -------
    run : DetectionRun
    outputs : list of Path
        Every file written, rasters included.
    products : borderwatch.products.write.Products
    """
    layer_outs = (out,) if out is not None else ()
    check_outputs(  # before the long work
        layer_outs,
        evidence=evidence,
        overwrite=overwrite,
        qgis_project=qgis_project,
        sign_key_file=sign_key_file(),
    )
    with remote_env([before, after]):  # GDAL settings for URL inputs, chips included
        with progress_reporter(quiet=quiet) as progress:
            run = detect(
                before,
                after,
                aoi=aoi,
                params=params,
                block_size=block_size,
                scheduler=scheduler,
                score_out=score_out,
                mask_out=mask_out,
                overwrite=overwrite,
                progress=progress,
                imagery=imagery,
                allow_reversed=allow_reversed,
            )
        products = write_products(
            run,
            outputs=layer_outs,
            evidence=evidence,
            reviews_dir=reviews_dir,
            overwrite=overwrite,
            sign_key=sign_key,
            redact=redact,
            command=command,
            qgis_project=qgis_project,
        )
    outputs = [*products.files, *run.outputs.values()]
    if products.evidence is not None:
        outputs += [products.evidence.report, products.evidence.manifest]
    return run, outputs, products


@click.command("detect")
@click.option(
    "--before",
    "before",
    multiple=True,
    required=True,
    type=click.Path(),
    help="Before-date raster (repeat for one file per band, or give a folder), a STAC Item "
    "JSON, or an http(s) URL of a COG (only the windows needed are fetched).",
)
@click.option(
    "--after",
    "after",
    multiple=True,
    required=True,
    type=click.Path(),
    help="After-date raster (repeat for one file per band, or give a folder), a STAC Item "
    "JSON, or an http(s) URL of a COG (only the windows needed are fetched).",
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
@click.option(
    "--qgis-project",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a QGIS project FILE.qgz: the --out GeoPackage's layers (needs "
    "--out FILE.gpkg) over both dates' images in true colour, paths relative to it.",
)
@store_option
@grid_options
@imagery_options
@detect_options
@packet_options(redact=False)
@scale_options
@raster_out_options
@click.pass_context
def detect_command(
    ctx: click.Context,
    before: tuple[str, ...],
    after: tuple[str, ...],
    aoi: str | None,
    out: Path | None,
    resolution: float | None,
    crs: str | None,
    evidence: Path | None,
    qgis_project: Path | None,
    reviews_dir: Path | None,
    method: Any,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    block_size: int | None = None,
    scheduler: str | None = None,
    score_out: Path | None = None,
    mask_out: Path | None = None,
    sign_key: Any = None,
    redact: bool = False,
    imagery: Any = None,
    allow_reversed: bool = False,
    **quality: Any,
) -> None:
    """Detect change between BEFORE and AFTER imagery and write detections."""
    params = detect_params(
        method=method,
        threshold=threshold,
        min_area_m2=min_area_m2,
        resolution=resolution,
        crs=crs,
        **quality,
    )
    quiet = bool(ctx.obj.get("quiet"))
    run, outputs, products = run_and_write(
        list(before),
        list(after),
        aoi=aoi,
        params=params,
        out=out,
        evidence=evidence,
        reviews_dir=reviews_dir or default_store_dir(),
        overwrite=overwrite,
        quiet=quiet,
        block_size=block_size,
        scheduler=scheduler,
        score_out=score_out,
        mask_out=mask_out,
        sign_key=sign_key,
        redact=redact,
        command=f"borderwatch {ctx.info_name}",
        imagery=imagery,
        allow_reversed=allow_reversed,
        qgis_project=qgis_project,
    )
    if not quiet:
        print_summary(run, outputs, products.detections)
        if products.reviews_applied:
            click.echo(
                f"  re-applied {products.reviews_applied} stored reviews for {products.place}"
            )
        print_packet(products.evidence)
