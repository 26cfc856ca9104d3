"""``borderwatch evaluate``: score detections against a truth mask."""

from __future__ import annotations

import json
from pathlib import Path

import click

from borderwatch.cli.options import parse_threshold
from borderwatch.datasets import load_labelled
from borderwatch.evaluate import evaluate_mask, predict_pair

__all__ = ["evaluate"]


@click.command()
@click.option(
    "--before",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Before-date raster or PNG (repeat for one file per band).",
)
@click.option(
    "--after",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="After-date raster or PNG (repeat for one file per band).",
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
@click.option("--method", default="combined", show_default=True, help="Change score method.")
@click.option(
    "--threshold",
    default="ki",
    show_default=True,
    help="Threshold name (ki, otsu, chi2) or a fixed value.",
)
@click.option(
    "--align/--no-align", default=True, show_default=True, help="Co-register the after date first."
)
@click.option(
    "--pixel-size",
    "pixel_m",
    type=click.FloatRange(min=0, min_open=True),
    default=0.5,
    show_default=True,
    help="Pixel size in metres for inputs without georeferencing (PNG).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(
    before: tuple[Path, ...],
    after: tuple[Path, ...],
    truth: Path,
    change_value: float | None,
    method: str,
    threshold: str,
    align: bool,
    pixel_m: float,
    as_json: bool,
) -> None:
    """Detect change between BEFORE and AFTER and score it against TRUTH (pixel metrics)."""
    pair = load_labelled(
        list(before), list(after), truth, change_value=change_value, pixel_m=pixel_m
    )
    mask = predict_pair(
        pair.before,
        pair.after,
        pair.valid,
        band_names=pair.band_names,
        pixel_area_m2=pair.pixel_area_m2,
        method=method,
        threshold=parse_threshold(threshold),
        align=align,
    )
    s = evaluate_mask(mask, pair.truth, valid=pair.valid, labelled=pair.labelled)
    if as_json:
        click.echo(json.dumps(s.as_dict()))
        return
    orec = "n/a" if s.object_recall is None else f"{s.object_recall:.3f}"
    click.echo(
        f"precision {s.precision:.3f}  recall {s.recall:.3f}  F1 {s.f1:.3f}  IoU {s.iou:.3f}  "
        f"kappa {s.kappa:.3f}  object recall {orec}\n"
        f"pixels: tp {s.tp}  fp {s.fp}  fn {s.fn}  tn {s.tn}"
    )
