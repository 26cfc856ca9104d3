"""``borderwatch demo``: the whole pipeline on the embedded sample tiles."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import click

from borderwatch.cli.detect_cmd import print_summary
from borderwatch.cli.options import (
    detect_options,
    detect_params,
    imagery_options,
    packet_options,
    print_packet,
    sign_key_file,
)
from borderwatch.engine import detect
from borderwatch.products.write import check_outputs, write_products
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
@imagery_options
@detect_options
@packet_options(redact=True)
@click.pass_context
def demo(
    ctx: click.Context,
    out_dir: Path | None,
    method: Any,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    sign_key: Any = None,
    redact: bool = True,
    imagery: Any = None,
    allow_reversed: bool = False,
    **quality: Any,
) -> None:
    """Run detection on the embedded synthetic Helong tiles and write all outputs.

    OUT_DIR is the evidence packet, with the layers inside it; it appears complete
    or not at all. Redacted by default (--no-redact keeps host, user and paths).
    """
    tiles = sample_tiles_dir()
    if out_dir is None:
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = Path.cwd() / f"borderwatch-demo-{stamp}"
    layers = (out_dir / "new_structures.gpkg", out_dir / "new_structures.geojson")
    # Before the long work.
    check_outputs(layers, evidence=out_dir, overwrite=overwrite, sign_key_file=sign_key_file())
    params = detect_params(
        method=method,
        threshold=threshold,
        min_area_m2=min_area_m2,
        **quality,
    )
    quiet = bool(ctx.obj.get("quiet"))
    with progress_reporter(quiet=quiet) as progress:
        tiles_ab = (tiles / "before.tif", tiles / "after.tif")
        run = detect(
            *tiles_ab,
            aoi="helong",
            params=params,
            progress=progress,
            imagery=imagery,
            allow_reversed=allow_reversed,
        )
    # Layers and a project for QGIS and the evidence packet (report.html, chips, manifest)
    # all in out_dir;
    # no stored reviews are applied: the demo imagery is synthetic.
    with activity("writing", quiet=quiet):
        products = write_products(
            run,
            outputs=layers,
            evidence=out_dir,
            overwrite=overwrite,
            sign_key=sign_key,
            redact=redact,
            command=f"borderwatch {ctx.info_name}",
            qgis_project=out_dir / "new_structures.qgz",
        )
    assert products.evidence is not None
    outputs = [*products.files, products.evidence.report, products.evidence.manifest]
    if not ctx.obj.get("quiet"):
        click.echo("borderwatch demo: synthetic sample tiles over the Helong AOI")
        print_summary(run, outputs, products.detections)
        print_packet(products.evidence)
