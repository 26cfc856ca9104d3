"""``borderwatch train``: fit the optional learned change model on labelled pairs."""

from __future__ import annotations

from pathlib import Path

import click

from borderwatch.errors import InputError
from borderwatch.evaluation.datasets import OSCD_BANDS, iter_oscd, iter_png_pairs, read_taizhou
from borderwatch.evaluation.metrics import pool

__all__ = ["train"]


@click.command()
@click.option(
    "--dataset",
    type=click.Choice(["oscd", "png", "taizhou"]),
    required=True,
    help="Layout of --data: OSCD folder, A/B/label PNG folder, or Taizhou folder.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Dataset folder.",
)
@click.option(
    "--bands",
    default=",".join(OSCD_BANDS[:4]),
    show_default=True,
    help="OSCD bands, comma-separated.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Model file to write (pickle).",
)
@click.option(
    "--pixel-size",
    "pixel_m",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Pixel size in metres of a PNG dataset (required for --dataset png).",
)
@click.option(
    "--loo", is_flag=True, help="Also report leave-one-out F1 (one pair/city held out at a time)."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing model file.")
def train(
    dataset: str,
    data: Path,
    bands: str,
    out: Path | None,
    pixel_m: float | None,
    loo: bool,
    overwrite: bool,
) -> None:
    """Train a small scikit-learn pixel classifier on a labelled dataset."""
    from borderwatch.methods.training import leave_one_out, save_model, train_model
    from borderwatch.products.export import check_writable

    if out is None and not loo:
        raise click.UsageError("give --out FILE and/or --loo")
    if out is not None:
        check_writable(out, overwrite=overwrite)
    if dataset == "oscd":
        pairs = list(iter_oscd(data, bands=tuple(b.strip() for b in bands.split(","))))
    elif dataset == "png":
        if pixel_m is None:
            raise click.UsageError("--dataset png needs --pixel-size (PNGs carry no pixel size)")
        pairs = list(iter_png_pairs(data, pixel_m=pixel_m))
    else:
        pairs = [read_taizhou(data)]
    if loo:
        if len(pairs) < 2:
            raise InputError("leave-one-out needs at least two pairs")
        res = leave_one_out(pairs)
        for name, s in res.items():
            click.echo(
                f"{name}: F1 {s.f1:.3f}  precision {s.precision:.3f}  "
                f"recall {s.recall:.3f}  kappa {s.kappa:.3f}"
            )
        click.echo(
            f"pooled (each scored by a model that never saw it): F1 {pool(res.values()).f1:.3f}"
        )
    if out is not None:
        save_model(train_model(pairs), out)
        click.echo(f"wrote {out}")
