"""Gain of a place's re-ranker (``train --from-reviews``) on the rest of the same tiles.

Usage::

    python benchmarks/rerank.py [--data ../shared/data] [--work /tmp/borderwatch-structure-cv]
        [--out benchmarks/results/rerank.md]

Run ``benchmarks/structure_cv.py`` first: its fold models are used here, each on the
LEVIR-CD tiles it never trained on. For every tile (a place) and each half of it, an
analyst is simulated on that half: every detection whose centroid lies there is
*confirmed* when it is real (it matches a true object, IoU >= 0.5, the object-metric
rule) and *rejected* otherwise. The reviews are written as the GeoPackage an analyst
would save from QGIS, ``borderwatch train --from-reviews`` fits the re-ranker on them,
and ``detect --model <fold> --reranker <file>`` runs again (through
``evaluate_pair``). Object precision and recall are then counted on the *other* half
only (detections by centroid, true objects by centroid), before and after. Tiles whose
reviewed half has fewer than 5 confirmed or 5 rejected detections get no re-ranker
(said in the table).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from borderwatch.cli import main as cli
from borderwatch.engine import DetectParams
from borderwatch.evaluation.datasets import iter_png_pairs
from borderwatch.evaluation.metrics import evaluate_pair
from borderwatch.objects.polygons import label_objects

sys.path.insert(0, str(Path(__file__).resolve().parent))
from structure_cv import FOLDS, LEVIR_PIXEL_M, outcomes  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def _half_of(run: object, cols: int) -> np.ndarray:
    """True where a detection's centroid is in the left half of the tile."""
    objects = run.objects  # type: ignore[attr-defined]
    if not len(objects):
        return np.zeros(0, bool)
    grid = run.grid  # type: ignore[attr-defined]
    x0 = grid.transform.c
    mid = x0 + cols / 2 * grid.transform.a
    return np.asarray(objects.geometry.centroid.x < mid)


def _true_left(truth: np.ndarray) -> tuple[int, int]:
    """True objects in the left and right halves (by centroid)."""
    labels, n = label_objects(truth)
    if not n:
        return 0, 0
    cols = np.bincount(labels.ravel(), weights=np.indices(truth.shape)[1].ravel())[1:]
    size = np.bincount(labels.ravel())[1:]
    left = int(((cols / size) < truth.shape[1] / 2).sum())
    return left, n - left


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--work", type=Path, default=Path("/tmp/borderwatch-structure-cv"))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "rerank.md")
    args = ap.parse_args(argv)
    fold_of = {g.split("/", 1)[1]: f for f, groups in FOLDS.items() for g in groups}
    rows, totals = [], np.zeros(6)  # tp/n before, tp/n after, found before/after
    true_total = 0
    for pair in iter_png_pairs(
        args.data / "levir_cd_tiles", pixel_m=LEVIR_PIXEL_M, dataset="levir_tiles"
    ):
        tile = pair.name.split("/", 1)[1]
        model = args.work / f"{fold_of[tile]}.onnx"
        if not model.exists():
            print(f"{model} missing: run benchmarks/structure_cv.py first", file=sys.stderr)
            return 2
        _, run = evaluate_pair(pair, params=DetectParams(model=str(model)))
        score, real = outcomes(run, pair)
        left = _half_of(run, pair.truth.shape[1])
        n_true = _true_left(pair.truth & pair.valid)
        for reviewed_left in (True, False):
            on = left if reviewed_left else ~left
            test_true = n_true[1] if reviewed_left else n_true[0]
            name = f"{tile}, reviewed {'left' if reviewed_left else 'right'} half"
            reviews = run.objects[on].copy()
            reviews["review"] = np.where(real[on], "confirmed", "rejected")
            before = (int(real[~on].sum()), int((~on).sum()))
            with tempfile.TemporaryDirectory() as tmp:
                gpkg, rr = Path(tmp) / "reviewed.gpkg", Path(tmp) / "place.rerank.json"
                if len(reviews):
                    reviews.drop(columns=["before", "after"], errors="ignore").to_file(
                        gpkg, layer="detections", driver="GPKG"
                    )
                res = CliRunner().invoke(
                    cli, ["train", "--from-reviews", str(gpkg), "--out", str(rr)]
                )
                if res.exit_code != 0:
                    why = (res.output.strip().splitlines() or ["?"])[-1][:90]
                    rows.append(
                        f"| {name} | {before[1]} | {before[0] / max(before[1], 1):.3f} "
                        f"| no re-ranker: {why} | | | |"
                    )
                    totals += [before[0], before[1], before[0], before[1], before[0], before[0]]
                    true_total += test_true
                    continue
                _, rerun = evaluate_pair(
                    pair, params=DetectParams(model=str(model), reranker=str(rr))
                )
            s2, real2 = outcomes(rerun, pair)
            left2 = _half_of(rerun, pair.truth.shape[1])
            test2 = ~left2 if reviewed_left else left2
            after = (int(real2[test2].sum()), int(test2.sum()))
            p0, p1 = before[0] / max(before[1], 1), after[0] / max(after[1], 1)
            rows.append(
                f"| {name} | {before[1]} | {p0:.3f} | {after[1]} | {p1:.3f} | {p1 - p0:+.3f} "
                f"| {before[0] / max(test_true, 1):.3f} -> {after[0] / max(test_true, 1):.3f} |"
            )
            totals += [before[0], before[1], after[0], after[1], before[0], after[0]]
            true_total += test_true
        print(f"{tile} done", file=sys.stderr)
    p0, p1 = totals[0] / max(totals[1], 1), totals[2] / max(totals[3], 1)
    r0, r1 = totals[4] / max(true_total, 1), totals[5] / max(true_total, 1)
    lines = [
        "# Re-ranker from an analyst's reviews: object precision on the rest of the tile",
        "",
        "Generated by `python benchmarks/rerank.py` after `benchmarks/structure_cv.py` "
        "(fold models, each on LEVIR-CD tiles it never trained on; see the script's "
        "docstring for the simulated review). Counted on the half that was *not* reviewed.",
        "",
        "| tile and reviewed half | detections before | object precision before "
        "| detections after | object precision after | gain | object recall before -> after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        f"| **pooled** | {int(totals[1])} | {p0:.3f} | {int(totals[3])} | {p1:.3f} "
        f"| {p1 - p0:+.3f} | {r0:.3f} -> {r1:.3f} |",
        "",
    ]
    args.out.write_text("\n".join(lines), encoding="utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {
                "precision_before": p0,
                "precision_after": p1,
                "recall_before": r0,
                "recall_after": r1,
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
