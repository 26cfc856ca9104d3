"""``borderwatch train``: fit the optional learned change model on labelled pairs.

``--structure`` trains the structure-change network instead (the ``[train]`` extra,
:mod:`borderwatch.structure.train`) on the training data under ``--data``;
``--from-reviews`` fits a place's re-ranker on an analyst's confirmed and rejected
detections (:mod:`borderwatch.objects.rerank`).
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
    default=None,
    help="Dataset folder (with --structure: the training data root, ../shared/data).",
)
@click.option(
    "--from-reviews",
    "reviews",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help=(
        "Reviewed detections (GeoPackage or GeoJSON with a review column; repeat for "
        "more): fit a re-ranker on the confirmed and rejected ones (--out FILE.json), "
        "for detect --reranker."
    ),
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
    help=(
        "With --structure: places (groups) never trained on and validated, comma-separated; "
        "<dataset>/* holds out all of a dataset's places, an empty string none."
    ),
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
    data: Path | None,
    reviews: tuple[Path, ...],
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

    if reviews:
        if out is None:
            raise click.UsageError("--from-reviews needs --out FILE.json")
        if structure or data is not None or dataset is not None:
            raise click.UsageError("--from-reviews takes no --structure, --data or --dataset")
        check_writable(out, overwrite=overwrite)
        _train_reranker(reviews, out, overwrite=overwrite)
        return
    if data is None:
        raise click.UsageError("give --data (or --from-reviews)")
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


def _train_reranker(files: tuple[Path, ...], out: Path, *, overwrite: bool) -> None:
    """Fit, cross-validate and write a re-ranker from reviewed detection files."""
    import numpy as np
    import pandas as pd
    import pyogrio

    from borderwatch.objects.rerank import (
        KEEP_PROBABILITY,
        fit_reranker,
        save_reranker,
    )

    tables = []
    for f in files:
        try:
            layers = [str(n) for n, _ in pyogrio.list_layers(f)]
            t = pyogrio.read_dataframe(f, layer="detections" if "detections" in layers else None)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as exc:
            raise InputError(f"{f}: not a readable detections file ({exc})") from None
        score = "score" if "score" in t.columns else "mean_score"
        missing = [c for c in ("review", score, "area_m2", "class") if c not in t.columns]
        if missing:
            raise InputError(f"{f}: detections have no {missing} column(s) for a re-ranker")
        tables.append(t[t["review"].isin(["confirmed", "rejected"])])
    reviewed = pd.concat(tables, ignore_index=True)
    confirmed = (reviewed["review"] == "confirmed").to_numpy()
    place = ", ".join(f.name for f in files)
    reranker = fit_reranker(reviewed, confirmed, place=place)
    # validation: 5 folds stratified by review, precision of the kept detections
    rng = np.random.default_rng(0)
    fold = np.empty(len(reviewed), int)
    for value in (True, False):
        idx = np.flatnonzero(confirmed == value)
        fold[rng.permutation(idx)] = np.arange(idx.size) % 5
    kept = np.zeros(len(reviewed), bool)
    scored = np.zeros(len(reviewed), bool)
    for k in range(5):
        test = fold == k
        try:
            part = fit_reranker(reviewed[~test], confirmed[~test], place=place)
        except InputError:
            continue  # too few of a kind without this fold: its rows are not scored
        kept[test] = part.probability(reviewed[test]) >= KEEP_PROBABILITY
        scored |= test
    sha = save_reranker(reranker, out, overwrite=overwrite)
    if scored.any():
        yes = confirmed[scored]
        after = yes[kept[scored]].mean() if kept[scored].any() else float("nan")
        click.echo(
            f"{len(reviewed)} reviewed detections ({int(confirmed.sum())} confirmed); 5-fold "
            f"cross-validated on {int(scored.sum())}: precision {yes.mean():.3f} -> "
            f"{after:.3f} keeping {int(kept[scored].sum())}, recall of confirmed "
            f"{(yes & kept[scored]).sum() / max(yes.sum(), 1):.3f}"
        )
    else:
        click.echo(f"{len(reviewed)} reviewed detections: too few to cross-validate")
    click.echo(f"wrote {out} (sha256 {sha}); use: borderwatch detect --reranker {out} ...")
