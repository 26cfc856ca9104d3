"""``borderwatch train``: fit the optional learned change model on labelled pairs.

``--structure`` trains the structure-change network instead (the ``[train]`` extra,
:mod:`borderwatch.structure.train`) on the training data under ``--data``.
"""

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
    default=None,
    help="Layout of --data: OSCD folder, A/B/label PNG folder, or Taizhou folder.",
)
@click.option(
    "--data",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Dataset folder (with --structure: the training data root, ../shared/data).",
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
    help="Model file to write (pickle; with --structure an .onnx file and its .json record).",
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
@click.option(
    "--structure",
    is_flag=True,
    help="Train the structure-change network (needs the [train] extra: PyTorch).",
)
@click.option(
    "--holdout",
    default="levir/test_2",
    show_default=True,
    help="With --structure: places (groups) never trained on and validated, comma-separated.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=600,
    show_default=True,
    help="With --structure: optimiser steps.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="With --structure: patches per step.",
)
@click.option(
    "--patch",
    "patch_px",
    type=click.IntRange(min=32),
    default=128,
    show_default=True,
    help="With --structure: patch side in 0.5 m pixels.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="With --structure: seed.")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="With --structure: PyTorch CPU threads.",
)
@click.option(
    "--time-budget",
    "time_budget_min",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="With --structure: stop training after this many minutes.",
)
def train(
    dataset: str | None,
    data: Path,
    bands: str,
    out: Path | None,
    pixel_m: float | None,
    loo: bool,
    overwrite: bool,
    structure: bool,
    holdout: str,
    steps: int,
    batch: int,
    patch_px: int,
    seed: int,
    threads: int,
    time_budget_min: float,
) -> None:
    """Train a small scikit-learn pixel classifier on a labelled dataset.

    With --structure, train the structure-change network on the training data root
    given as --data and export it to ONNX (--out), printing the held-out pixel F1.
    """
    from borderwatch.methods.training import leave_one_out, save_model, train_model
    from borderwatch.products.export import check_writable

    if structure:
        if out is None:
            raise click.UsageError("--structure needs --out FILE.onnx")
        check_writable(out, overwrite=overwrite)
        _train_structure(
            data,
            out,
            holdout=tuple(h.strip() for h in holdout.split(",") if h.strip()),
            steps=steps,
            batch=batch,
            size=patch_px,
            seed=seed,
            threads=threads,
            time_budget_s=time_budget_min * 60.0,
        )
        return
    if dataset is None:
        raise click.UsageError("give --dataset (or --structure)")
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


def _train_structure(data: Path, out: Path, **options: object) -> None:
    """Run :func:`borderwatch.structure.train.train_structure` with the CLI's options."""
    import shlex
    import sys

    from borderwatch.errors import MissingDependencyError

    try:
        from borderwatch.structure.train import TrainConfig, train_structure
    except ImportError as exc:
        raise MissingDependencyError(
            f"borderwatch train --structure needs PyTorch ({exc}); "
            "install the extra: pip install 'borderwatch[train]'"
        ) from None
    cfg = TrainConfig(data=str(data), **options)  # type: ignore[arg-type]
    command = "borderwatch train " + " ".join(shlex.quote(a) for a in sys.argv[2:])
    train_structure(cfg, out, command=command, log=click.echo)
