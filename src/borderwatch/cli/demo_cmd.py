"""``borderwatch demo``: the whole pipeline on the embedded sample tiles."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import click

from borderwatch.cli.detect_cmd import print_summary
from borderwatch.cli.options import detect_options, detect_params
from borderwatch.engine import detect
from borderwatch.errors import OutputExistsError
from borderwatch.products.write import write_products
from borderwatch.progress import activity, progress_reporter
from borderwatch.sample_data import sample_tiles_dir

__all__ = ["demo"]


@click.command()
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="New folder for the outputs (default: ./borderwatch-demo-<UTC time>).",
)
@detect_options
@click.pass_context
def demo(
    ctx: click.Context,
    out_dir: Path | None,
    method: Any,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    **quality: Any,
) -> None:
    """Run detection on the embedded synthetic Helong tiles and write all outputs."""
    tiles = sample_tiles_dir()
    if out_dir is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path.cwd() / f"borderwatch-demo-{stamp}"
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir}: folder exists and is not empty; pass --overwrite")
    params = detect_params(
        method=method,
        threshold=threshold,
        min_area_m2=min_area_m2,
        **quality,
    )
    quiet = bool(ctx.obj.get("quiet"))
    with progress_reporter(quiet=quiet) as progress:
        tiles_ab = (tiles / "before.tif", tiles / "after.tif")
        run = detect(*tiles_ab, aoi="helong", params=params, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Layers and a project for QGIS and the evidence packet (report.html, chips, manifest)
    # all in out_dir;
    # no stored reviews are applied: the demo imagery is synthetic.
    with activity("writing", quiet=quiet):
        products = write_products(
            run,
            outputs=(out_dir / "new_structures.gpkg", out_dir / "new_structures.geojson"),
            evidence=out_dir,
            overwrite=overwrite,
            qgis_project=out_dir / "new_structures.qgz",
        )
    assert products.evidence is not None
    outputs = [*products.files, products.evidence.report, products.evidence.manifest]
    if not ctx.obj.get("quiet"):
        click.echo("borderwatch demo: synthetic sample tiles over the Helong AOI")
        print_summary(run, outputs)
