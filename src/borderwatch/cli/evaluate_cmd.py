"""``borderwatch evaluate``: run ``detect`` on a pair and score what it writes."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from borderwatch.cli.options import detect_options, detect_params
from borderwatch.evaluation.datasets import check_pixel_size, is_georeferenced, load_labelled
from borderwatch.evaluation.metrics import ProductScores, Scores, evaluate_files, evaluate_pair

__all__ = ["evaluate"]


def is_geographic(path: Path) -> bool:
    """Whether a raster's CRS is geographic (degrees)."""
    from borderwatch.io import open_raster

    with open_raster(path) as ds:
        return bool(ds.crs is not None and ds.crs.is_geographic)


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _line(name: str, s: Scores) -> str:
    return (
        f"{name:<11} precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}  "
        f"IoU {s.iou:.3f}  kappa {s.kappa:.3f}  objects hit {_num(s.object_hit_rate)}  "
        f"(tp {s.tp} fp {s.fp} fn {s.fn} tn {s.tn})"
    )


def _object_line(scores: ProductScores) -> str:
    o = scores.objects
    if o is None:
        return "objects     not scored (the reference labels only a sample of pixels)"
    return (
        f"objects     precision {_num(o.precision)}  recall {_num(o.recall)}  "
        f"F1 {_num(o.f1)}  false/km2 {_num(o.false_per_km2)}  ECE {_num(o.ece)}  "
        f"median area ratio {_num(o.median_area_ratio)}  (tp {o.tp} fp {o.fp} fn {o.fn}; "
        "match: IoU >= 0.5, one-to-one)"
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
    help="Pixel size in metres; required for inputs without georeferencing (PNG); "
    "georeferenced inputs keep their own (a contradicting value is refused).",
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

    Pixel rows: the final detections (what detect writes, rasterised on the grid) and
    the pixel mask before the object filters (minimum area, classification). Object
    row: the same detections object by object, with their confidence: a detection
    matches a true object (8-connected component of TRUTH) at IoU >= 0.5, one-to-one,
    greedy by IoU (the SpaceNet rule); ECE bins the detections' confidence in 10
    equal-width bins. The JSON names the pixel size used and where it came from
    (``pixel_size_m``, ``pixel_size_source``).
    """
    given = check_pixel_size(list(before), pixel_m)
    params = detect_params(
        method=method,
        threshold=threshold,
        min_area_m2=min_area_m2,
        **quality,
    )
    if is_georeferenced(list(before)) and is_georeferenced([truth]) and not is_geographic(truth):
        # the truth's own grid: detections rasterised exactly on its pixels
        scores, run = evaluate_files(
            list(before), list(after), truth, params=params, change_value=change_value
        )
    else:
        pair = load_labelled(
            list(before), list(after), truth, change_value=change_value, pixel_m=pixel_m
        )
        scores, run = evaluate_pair(pair, params=params)
    if as_json:
        size = {
            "pixel_size_m": math.sqrt(run.grid.pixel_area),
            "pixel_size_source": "georeferencing" if given is None else "--pixel-size",
        }
        click.echo(json.dumps({**scores.as_dict(), **size}))
        return
    click.echo(f"{scores.n_detections} detections")
    click.echo(_line("detections", scores.detections))
    click.echo(_line("pixel mask", scores.pixels))
    click.echo(_object_line(scores))
