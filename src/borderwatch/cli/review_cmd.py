"""``borderwatch review``: import analyst reviews from QGIS and export training labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from borderwatch.errors import InputError
from borderwatch.products.review import default_store_dir, export_labels, import_reviews

__all__ = ["review", "store_option"]


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--reviews DIR``: the review store (env ``BORDERWATCH_REVIEWS``)."""
    return click.option(
        "--reviews",
        "reviews_dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="BORDERWATCH_REVIEWS",
        default=None,
        help="Review store folder [default: $XDG_DATA_HOME/borderwatch/reviews, "
        "$XDG_DATA_HOME defaulting to ~/.local/share; env BORDERWATCH_REVIEWS].",
    )(fn)


@click.group()
def review() -> None:
    """Keep analysts' reviews of detections across runs."""


@review.command("import")
@click.argument("gpkg", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--place", default=None, help="Store under this place (default: the AOI id).")
@store_option
@click.pass_context
def import_cmd(ctx: click.Context, gpkg: Path, place: str | None, reviews_dir: Path | None) -> None:
    """Read review and note from GPKG (edited in QGIS) into the review store."""
    result = import_reviews(gpkg, store_dir=reviews_dir or default_store_dir(), place=place)
    if not (ctx.obj or {}).get("quiet"):
        click.echo(
            f"{result.reviewed} of {result.read} detections reviewed; "
            f"{result.stored} reviews stored for {result.place} in {result.store}"
        )


@review.command("export-labels")
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--place", default=None, help="Place key (default: the only place in the store).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
@store_option
@click.pass_context
def export_labels_cmd(
    ctx: click.Context, out: Path, place: str | None, overwrite: bool, reviews_dir: Path | None
) -> None:
    """Write confirmed (label 1) and rejected (label 0) objects to OUT (GeoJSON)."""
    store = reviews_dir or default_store_dir()
    if place is None:
        places = sorted(
            p.name.removesuffix(".reviews.geojson") for p in store.glob("*.reviews.geojson")
        )
        if len(places) != 1:
            raise InputError(
                f"{store}: {len(places)} places stored ({', '.join(places) or 'none'}); "
                "name one with --place"
            )
        place = places[0]
    path, count = export_labels(out, store_dir=store, place=place, overwrite=overwrite)
    if not (ctx.obj or {}).get("quiet"):
        click.echo(f"wrote {count} labels for {place} to {path}")
