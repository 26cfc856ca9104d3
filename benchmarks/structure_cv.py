"""Cross-validation of the structure model by place, leave-one-dataset-out, calibration.

Usage::

    python benchmarks/structure_cv.py [--data ../shared/data] [--minutes 7] [--work DIR]
        [--reuse] [--embed MODEL.onnx] [--out benchmarks/results/structure_cv.md]

Needs the ``[train]`` extra (PyTorch). Every model here is trained by
``borderwatch.structure.train.train_structure`` (what ``borderwatch train --structure``
runs) with the shipped settings except the time budget (``--minutes`` per model, the
shipped model had more), and scored through ``borderwatch.evaluation.metrics.evaluate_pair``:
``detect`` with ``--model`` set to the fold's file, its detections rasterised on the
truth grid (what ``borderwatch evaluate`` does). No model is scored on a place it
trained on:

* **LEVIR-CD, 3 folds by place** (:data:`FOLDS`: the 14 LEVIR places, tiles and sample
  crops; the two crops inside tile ``test_2`` are in that tile's group, and only the
  tile is scored so no pixel counts twice). Pooled pixel F1 over all held-out LEVIR
  pixels, object precision/recall/F1 (IoU >= 0.5, one-to-one), ECE.
* **Leave one dataset out** (:data:`LODO`): a model trained without any LEVIR place,
  scored on all of LEVIR; a model trained without xBD and Ida-BD, whose flagged share
  (pixels inside detections / valid pixels) on every xBD and Ida-BD pair must stay
  <= 2 % (no new construction there). DSIFN (land-cover labels, no floor) is in no
  training set: it is scored with the model given by ``--embed`` (the shipped one).
* **Calibration**: the detections' confidence of the fold models is recalibrated
  (:func:`borderwatch.structure.calibrate.fit_calibration` on their mean probability)
  by cross-fitting, each fold's detections with a calibration fitted on the other
  folds', and the ECE is reported before and after. ``--embed MODEL`` fits one
  calibration on all held-out fold detections and writes it into ``MODEL``'s metadata
  (the shipped model: ``src/borderwatch/structure/models/``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from borderwatch.engine import DetectParams
from borderwatch.evaluation.datasets import LabelledPair, iter_png_pairs
from borderwatch.evaluation.metrics import ProductScores, Scores, evaluate_pair, pool
from borderwatch.evaluation.objects import (
    ObjectScores,
    calibration_bins,
    label_objects_on_grid,
    match_objects,
    pool_objects,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

#: LEVIR places per fold (tiles test_1..5 spread over the folds).
FOLDS: dict[str, tuple[str, ...]] = {
    "levir-A": ("levir/test_1", "levir/test_2", "levir/test_102", "levir/test_121"),
    "levir-B": ("levir/test_3", "levir/test_4", "levir/test_55", "levir/test_77"),
    "levir-C": (
        "levir/test_5",
        "levir/test_7",
        "levir/train_36",
        "levir/train_386",
        "levir/train_412",
        "levir/val_27",
    ),
}
#: Leave-one-dataset-out trainings.
LODO: dict[str, tuple[str, ...]] = {
    "no-levir": ("levir/*",),
    "no-xbd-ida": ("xbd/*", "ida_bd/*"),
}
#: Floors of the issue.
F1_FLOOR = 0.50
ECE_FLOOR = 0.10
FLAGGED_CEILING = 0.02
LEVIR_PIXEL_M = 0.5
DSIFN_PIXEL_M = 0.5
_PLACE = re.compile(r"((?:test|train|val)_\d+)")


def levir_pairs(data: Path) -> Iterator[tuple[str, LabelledPair]]:
    """``(group, pair)`` of the LEVIR tiles and the sample crops outside tile ``test_2``."""
    tiles = data / "levir_cd_tiles"
    tile_groups = set()
    if tiles.is_dir():
        for pair in iter_png_pairs(tiles, pixel_m=LEVIR_PIXEL_M, dataset="levir_tiles"):
            group = f"levir/{pair.name.split('/', 1)[1]}"
            tile_groups.add(group)
            yield group, pair
    for pair in iter_png_pairs(data / "levir_cd_samples", pixel_m=LEVIR_PIXEL_M, dataset="levir"):
        m = _PLACE.search(pair.name)
        group = f"levir/{m.group(1) if m else pair.name}"
        if group not in tile_groups:  # crops of a tile: the tile is scored instead
            yield group, pair


def stable_pairs(data: Path) -> Iterator[tuple[str, LabelledPair]]:
    """``(group, pair)`` of the xBD and Ida-BD pairs (no new construction)."""
    from borderwatch.structure.data import read_change_pairs

    for p in read_change_pairs(data, ("xbd_harvey", "xbd_guatemala", "ida_bd")):
        rows, cols = p.new.shape
        ones = np.ones((rows, cols), bool)
        yield (
            p.group,
            LabelledPair(
                name=p.name,
                before=p.before.astype(np.float32),
                after=p.after.astype(np.float32),
                valid=ones,
                truth=p.new,
                labelled=ones,
                band_names=("red", "green", "blue"),
                pixel_area_m2=p.pixel_m**2,
            ),
        )


def train_fold(
    data: Path, holdout: Sequence[str], out: Path, *, minutes: float, reuse: bool
) -> dict[str, object]:
    """Train (or with ``reuse`` load the record of) one held-out model."""
    record_path = out.with_suffix(".json")
    if reuse and out.exists() and record_path.exists():
        record = json.loads(record_path.read_text())
        if tuple(record["config"]["holdout"]) == tuple(holdout):
            return dict(record)
    from borderwatch.structure.train import TrainConfig, train_structure

    cfg = TrainConfig(
        data=str(data),
        holdout=tuple(holdout),
        steps=100_000,
        batch=8,
        size=96,
        time_budget_s=minutes * 60,
    )
    return train_structure(cfg, out, command=f"benchmarks/structure_cv.py holdout {holdout}")


def outcomes(run: object, pair: LabelledPair) -> tuple[np.ndarray, np.ndarray]:
    """Mean probability and real (matched) flag of every detection of a run."""
    from borderwatch.objects.polygons import label_objects

    objects = run.objects  # type: ignore[attr-defined]
    ids = label_objects_on_grid(objects, run.grid)  # type: ignore[attr-defined]
    truth_labels, _ = label_objects(pair.truth & pair.valid)
    mp, _, _, _ = match_objects(np.where(pair.valid, ids, 0), truth_labels)
    real = np.zeros(len(objects), bool)
    real[np.asarray(mp, int) - 1] = True
    score = objects["mean_score"].to_numpy(np.float64) if len(objects) else np.zeros(0)
    return score, real


def ece(conf: np.ndarray, real: np.ndarray) -> float | None:
    """Expected calibration error, as ``evaluate`` computes it (:class:`ObjectScores`)."""
    return ObjectScores(0, 0, 0, 0.0, (), *calibration_bins(conf, real)).ece


def flagged_share(scores: Sequence[ProductScores]) -> float:
    """Share of valid pixels inside detections (all pixels are truth-negative here)."""
    s = pool(x.detections for x in scores)
    return (s.tp + s.fp) / max(s.tp + s.fp + s.tn + s.fn, 1)


def _f(v: float | None, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _row(name: str, pix: Scores, obj: ObjectScores | None, extra: str = "") -> str:
    o = obj or ObjectScores(0, 0, 0, 0.0)
    return (
        f"| {name} | {pix.f1:.3f} | {pix.precision:.3f} | {pix.recall:.3f} | {_f(o.precision)} "
        f"| {_f(o.recall)} | {_f(o.f1)} | {_f(o.false_per_km2, '.1f')} | {_f(o.ece)} "
        f"| {_f(o.median_area_ratio, '.2f')} | {extra} |"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--minutes", type=float, default=7.0, help="Training budget per model.")
    ap.add_argument("--work", type=Path, default=Path("/tmp/borderwatch-structure-cv"))
    ap.add_argument("--reuse", action="store_true", help="Reuse fold models already in --work.")
    ap.add_argument("--embed", type=Path, default=None, help="Write the calibration into it.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "structure_cv.md")
    args = ap.parse_args(argv)
    if not (args.data / "levir_cd_samples").is_dir():
        print(f"{args.data}: no levir_cd_samples", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    records = {
        name: train_fold(
            args.data, held, args.work / f"{name}.onnx", minutes=args.minutes, reuse=args.reuse
        )
        for name, held in {**FOLDS, **LODO}.items()
    }
    levir = list(levir_pairs(args.data))
    fold_of = {g: f for f, groups in FOLDS.items() for g in groups}
    cv: dict[str, list[ProductScores]] = {f: [] for f in FOLDS}
    raw: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {f: [] for f in FOLDS}
    heuristic: list[np.ndarray] = []
    for group, pair in levir:
        fold = fold_of[group]
        params = DetectParams(model=str(args.work / f"{fold}.onnx"))
        scores, run = evaluate_pair(pair, params=params)
        cv[fold].append(scores)
        raw[fold].append(outcomes(run, pair))
        heuristic.append(run.objects["confidence"].to_numpy(np.float64))
        print(f"{fold}: {pair.name} F1 {scores.detections.f1:.3f}", file=sys.stderr)
    from borderwatch.objects.classify import calibrated_confidence
    from borderwatch.structure.calibrate import fit_calibration

    # cross-fitted calibration: each fold's detections with the other folds' calibration
    cal_conf, cal_real = [], []
    for fold in FOLDS:
        others = [r for f in FOLDS if f != fold for r in raw[f]]
        cal = fit_calibration(
            np.concatenate([s for s, _ in others]), np.concatenate([r for _, r in others])
        )
        for s, r in raw[fold]:
            cal_conf.append(np.array([calibrated_confidence(v, cal) for v in s]))
            cal_real.append(r)
    conf_after, real_all = np.concatenate(cal_conf), np.concatenate(cal_real)
    ece_before = ece(
        np.concatenate(heuristic), np.concatenate([r for f in FOLDS for _, r in raw[f]])
    )
    ece_after = ece(conf_after, real_all)
    all_scores = [s for f in FOLDS for s in cv[f]]
    pooled = pool(s.detections for s in all_scores)
    pooled_obj = pool_objects(s.objects for s in all_scores if s.objects is not None)

    lodo_levir = [
        evaluate_pair(p, params=DetectParams(model=str(args.work / "no-levir.onnx")))[0]
        for _, p in levir
    ]
    stable = list(stable_pairs(args.data))
    flag_by: dict[str, list[ProductScores]] = {}
    for group, pair in stable:
        params = DetectParams(model=str(args.work / "no-xbd-ida.onnx"))
        flag_by.setdefault(group, []).append(evaluate_pair(pair, params=params)[0])
    dsifn: list[ProductScores] = []
    calibration = None
    if args.embed is not None:
        from borderwatch.structure.calibrate import embed_calibration

        calibration = fit_calibration(
            np.concatenate([s for f in FOLDS for s, _ in raw[f]]), real_all
        )
        sha = embed_calibration(
            args.embed, calibration, fitted_on=f"held-out detections of {', '.join(FOLDS)}"
        )
        print(f"calibration written into {args.embed} (sha256 {sha})", file=sys.stderr)
        for p in iter_png_pairs(
            args.data / "dsifn_cd_samples", pixel_m=DSIFN_PIXEL_M, dataset="dsifn"
        ):
            dsifn.append(evaluate_pair(p, params=DetectParams(model=str(args.embed)))[0])

    minutes = {n: round(float(r["train_seconds"]) / 60, 1) for n, r in records.items()}
    steps = {n: r["steps_done"] for n, r in records.items()}
    head = (
        "| held out | pixel F1 | precision | recall | object precision | object recall "
        "| object F1 | false objects / km2 | ECE | median area ratio | note |"
    )
    sep = "| --- " * 11 + "|"
    lines = [
        "# Structure model: cross-validation by place, leave-one-dataset-out, calibration",
        "",
        "Generated by `python benchmarks/structure_cv.py"
        + (f" --embed {args.embed.name}" if args.embed else "")
        + f" --minutes {args.minutes:g}` (data: ../shared/data). Every model is trained by "
        "`train_structure` with the shipped settings and a time budget of "
        f"{args.minutes:g} min (steps done: {steps}; minutes: {minutes}), and scored through "
        "`evaluate_pair` (`detect --model <fold>.onnx`, detections rasterised on the truth "
        "grid), on places it never trained on. Object match: IoU >= 0.5, one-to-one. "
        f"Run time {time.perf_counter() - t0:.0f} s.",
        "",
        f"## LEVIR-CD, 3 folds by place (floor: pooled pixel F1 >= {F1_FLOOR:.2f})",
        "",
        head,
        sep,
    ]
    for fold, scores in cv.items():
        objs = pool_objects(s.objects for s in scores if s.objects is not None)
        lines.append(_row(fold, pool(s.detections for s in scores), objs, ", ".join(FOLDS[fold])))
    lines += [
        _row("**pooled, 3 folds**", pooled, pooled_obj, f"{len(all_scores)} pairs"),
        "",
        f"Pooled pixel F1 {pooled.f1:.3f}: {'meets' if pooled.f1 >= F1_FLOOR else 'MISSES'} "
        f"the floor {F1_FLOOR:.2f}. Object F1 {_f(pooled_obj.f1)}.",
        "",
        "### Confidence calibration (held-out LEVIR detections)",
        "",
        f"- ECE of the engine's heuristic confidence: {_f(ece_before)}",
        f"- ECE after isotonic calibration on mean probability, cross-fitted (each fold's "
        f"detections with the calibration of the other two): {_f(ece_after)} "
        f"({'meets' if ece_after is not None and ece_after <= ECE_FLOOR else 'MISSES'} "
        f"<= {ECE_FLOOR:.2f}); {real_all.size} detections, {int(real_all.sum())} real.",
    ]
    if calibration is not None:
        knots = ", ".join(f"{x:.3f}->{y:.2f}" for x, y in zip(*calibration, strict=True))
        lines.append(f"- Calibration written into `{args.embed.name}`: {knots}")
    lo_pix = pool(s.detections for s in lodo_levir)
    lo_obj = pool_objects(s.objects for s in lodo_levir if s.objects is not None)
    lines += [
        "",
        "## Leave one dataset out",
        "",
        head,
        sep,
        _row("LEVIR-CD (trained without any LEVIR place)", lo_pix, lo_obj, "no floor"),
    ]
    if dsifn:
        d_pix = pool(s.detections for s in dsifn)
        d_obj = pool_objects(s.objects for s in dsifn if s.objects is not None)
        lines.append(
            _row(
                f"DSIFN-CD (never trained on; `{args.embed.name}`)",
                d_pix,
                d_obj,
                "land-cover labels, no floor",
            )
        )
    lines += [
        "",
        f"xBD and Ida-BD (no new construction), model trained without either: share of "
        f"pixels flagged as new structures (ceiling {FLAGGED_CEILING:.0%}):",
        "",
        "| place | pairs | flagged share | detections |",
        "| --- | --- | --- | --- |",
    ]
    worst = 0.0
    for group, scores in flag_by.items():
        share = flagged_share(scores)
        worst = max(worst, share)
        n = sum(s.n_detections for s in scores)
        lines.append(f"| {group} | {len(scores)} | {share:.4f} | {n} |")
    every = [s for v in flag_by.values() for s in v]
    lines += [
        f"| **all** | {len(every)} | {flagged_share(every):.4f} | "
        f"{sum(s.n_detections for s in every)} |",
        "",
        f"Worst place {worst:.4f}: {'meets' if worst <= FLAGGED_CEILING else 'MISSES'} the "
        f"{FLAGGED_CEILING:.0%} ceiling.",
        "",
        "Footprint datasets (Inria, WHU, SpaceNet 1/2, crowdAI, LoveDA, Myanmar, Shanghai) "
        "are single-date: they teach what a building is and are pasted into pairs; they "
        "have no real change pair to score, so no leave-one-out row.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    summary = {
        "levir_cv_pooled_f1": pooled.f1,
        "levir_cv_object_f1": pooled_obj.f1,
        "ece_heuristic": ece_before,
        "ece_calibrated_crossfit": ece_after,
        "lodo_levir_f1": lo_pix.f1,
        "flagged_share_worst": worst,
        "calibration": calibration,
        "records": {n: {"steps": steps[n], "minutes": minutes[n]} for n in records},
    }
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
