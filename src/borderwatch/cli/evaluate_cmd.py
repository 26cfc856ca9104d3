"""``borderwatch evaluate``: run ``detect`` on a pair and score what it writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from borderwatch.cli.options import detect_options, detect_params
from borderwatch.errors import InputError
from borderwatch.evaluation.datasets import is_georeferenced, load_labelled
from borderwatch.evaluation.metrics import Scores, evaluate_files, evaluate_pair

__all__ = ["evaluate"]


def is_geographic(path: Path) -> bool:
    """Whether a raster's CRS is geographic (degrees)."""
    from borderwatch.io import open_raster

    with open_raster(path) as ds:
        return bool(ds.crs is not None and ds.crs.is_geographic)


def _line(name: str, s: Scores) -> str:
    orec = "n/a" if s.object_recall is None else f"{s.object_recall:.3f}"
    return (
        f"{name:<11} precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}  "
        f"IoU {s.iou:.3f}  kappa {s.kappa:.3f}  object recall {orec}  "
        f"(tp {s.tp} fp {s.fp} fn {s.fn} tn {s.tn})"
    )


@click.command()
@click.option(
    "--before",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Before-date raster, band files or folder, as for detect (PNG too).",
)
@click.option(
    "--after",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="After-date raster, band files or folder, as for detect (PNG too).",
)
@click.option(
    "--truth",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="Truth mask on the before image's pixel grid (raster or PNG).",
)
@click.option(
    "--change-value",
    type=float,
    default=None,
    help="Mask value meaning change (default: any non-zero; 2 for OSCD).",
)
@click.option(
    "--pixel-size",
    "pixel_m",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Pixel size in metres; required for inputs without georeferencing (PNG).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@detect_options
def evaluate(
    before: tuple[Path, ...],
    after: tuple[Path, ...],
    truth: Path,
    change_value: float | None,
    pixel_m: float | None,
    as_json: bool,
    method: Any,
    threshold: str,
    min_area_m2: float,
    overwrite: bool,
    **quality: Any,
) -> None:
    """Run detect on BEFORE and AFTER and score its detections against TRUTH.

    Two rows: the final detections (what detect writes, rasterised on the grid) and
    the pixel mask before the object filters (minimum area, classification).
    """
    if not is_georeferenced(list(before)) and pixel_m is None:
        raise InputError(
            f"{before[0]}: no georeferencing; give --pixel-size (metres), since the "
            "model's scale and every area depend on it"
        )
    params = detect_params(
        method=method,
        threshold=threshold,
        min_area_m2=min_area_m2,
        **quality,
    )
    if is_georeferenced([truth]) and not is_geographic(truth):
        # the truth's own grid: detections rasterised exactly on its pixels
        scores, _ = evaluate_files(
            list(before), list(after), truth, params=params, change_value=change_value
        )
    else:
        pair = load_labelled(
            list(before), list(after), truth, change_value=change_value, pixel_m=pixel_m or 1.0
        )
        scores, _ = evaluate_pair(pair, params=params)
    if as_json:
        click.echo(json.dumps(scores.as_dict()))
        return
    click.echo(f"{scores.n_detections} detections")
    click.echo(_line("detections", scores.detections))
    click.echo(_line("pixel mask", scores.pixels))
