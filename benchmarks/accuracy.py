"""Accuracy benchmark of the product: what ``detect`` writes, every method, every dataset.

Usage::

    python benchmarks/accuracy.py [--data ../shared/data] [--out benchmarks/results/accuracy.md]

Datasets (see borderwatch.datasets): OSCD 5 cities (B02, B03, B04, B08 for the scores
that use all bands; B11 adds NDBI to the index terms), LEVIR-CD and DSIFN-CD samples
(RGB PNG, 0.5 m), Landsat Taizhou (6 bands, partial labels). Each pair runs through
``borderwatch.engine.detect`` (``borderwatch.evaluate.evaluate_pair``): the row
``detections`` scores the final detections ``detect`` writes (rasterised on the truth
grid), the row ``pixel mask`` the cleaned mask before the object filters (minimum area,
classification). The baseline is plain CVA + Otsu without alignment, clean-up, minimum
area or classification (its pixel mask), as measured in the issue. No parameter depends
on the image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from borderwatch.datasets import LabelledPair, iter_oscd, iter_png_pairs, read_taizhou
from borderwatch.engine import DetectParams
from borderwatch.evaluate import Scores, evaluate_pair, pool

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"

_PLAIN = {"align": False, "opening_px": 0, "closing_px": 0, "min_area_m2": 0.0, "classify": False}
#: name -> detect parameters (every other parameter at its default).
RUNS: dict[str, DetectParams] = {
    "baseline cva+otsu": DetectParams(method="cva", threshold="otsu", **_PLAIN),  # type: ignore[arg-type]
    "cva+ki": DetectParams(method="cva", threshold="ki"),
    "irmad+chi2": DetectParams(method="irmad", threshold="chi2"),
    "irmad+ki": DetectParams(method="irmad", threshold="ki"),
    "index+ki": DetectParams(method="index", threshold="ki"),
    "combined+otsu": DetectParams(method="combined", threshold="otsu"),
    "combined+ki (default)": DetectParams(),
}
DEFAULT_RUN = "combined+ki (default)"
BASELINE_RUN = "baseline cva+otsu"
FLOORS = {"oscd": 0.30, "levir": 0.45, "dsifn": 0.55, "landsat": 0.80}


def oscd_bands(pair: LabelledPair) -> LabelledPair:
    """Keep B02, B03, B04, B08 and B11 (NDBI); drop B12 (not needed, adds noise)."""
    keep = [i for i, n in enumerate(pair.band_names) if n in ("B02", "B03", "B04", "B08", "B11")]
    return LabelledPair(
        pair.name,
        pair.before[keep],
        pair.after[keep],
        pair.valid,
        pair.truth,
        pair.labelled,
        tuple(pair.band_names[i] for i in keep),
        pair.pixel_area_m2,
        pair.grid,
    )


def datasets(data: Path) -> Iterator[tuple[str, LabelledPair]]:
    """Yield ``(dataset, pair)`` for every dataset found under ``data``."""
    if (data / "oscd").is_dir():
        for p in iter_oscd(data / "oscd"):
            yield "oscd", oscd_bands(p)
    if (data / "levir_cd_samples").is_dir():
        for p in iter_png_pairs(data / "levir_cd_samples", dataset="levir"):
            yield "levir", p
    if (data / "dsifn_cd_samples").is_dir():
        for p in iter_png_pairs(data / "dsifn_cd_samples", dataset="dsifn"):
            yield "dsifn", p
    if (data / "landsat_cd_whu" / "Taizhou").is_dir():
        yield "landsat", read_taizhou(data / "landsat_cd_whu" / "Taizhou")


def score_pair(pair: LabelledPair, run: str) -> dict[str, Scores]:
    """``{"detections": ..., "pixel mask": ...}`` of one pair under one run of :data:`RUNS`."""
    params = RUNS[run]
    if params.method in ("cva", "irmad") and pair.name.startswith("oscd/"):
        # The reference measurement uses the four 10 m bands for these scores.
        pair = LabelledPair(
            pair.name,
            pair.before[:4],
            pair.after[:4],
            pair.valid,
            pair.truth,
            pair.labelled,
            pair.band_names[:4],
            pair.pixel_area_m2,
            pair.grid,
        )
    scores, _ = evaluate_pair(pair, params=params)
    return {"detections": scores.detections, "pixel mask": scores.pixels}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "accuracy.md")
    ap.add_argument("--json", type=Path, default=None, help="Also write raw results as JSON.")
    ap.add_argument("--runs", nargs="*", default=None, help="Subset of runs (names in RUNS).")
    args = ap.parse_args(argv)
    runs_wanted = [r for r in RUNS if args.runs is None or r in args.runs]
    if not args.data.is_dir():
        print(f"{args.data}: data folder not found", file=sys.stderr)
        return 2
    results: dict[str, dict[str, list[dict[str, Scores]]]] = {}
    t0 = time.perf_counter()
    for ds, pair in datasets(args.data):
        for run in runs_wanted:
            results.setdefault(ds, {}).setdefault(run, []).append(score_pair(pair, run))
        print(f"{pair.name} done ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    lines = [
        "# Accuracy benchmark",
        "",
        "Generated by `python benchmarks/accuracy.py` (data: ../shared/data). One fixed "
        "parameter set for every image; pooled F1 counts all scored pixels of a dataset "
        "together, mean F1 averages the per-image F1. Only valid, labelled pixels are "
        "scored (Taizhou: the change.bmp / unchanged.bmp samples).",
        "",
        f"Run time: {time.perf_counter() - t0:.0f} s.",
        "",
    ]
    raw: dict[str, dict[str, object]] = {}
    for ds, runs in results.items():

        def pooled(run: str, row: str, runs: dict[str, list[dict[str, Scores]]] = runs) -> Scores:
            return pool(r[row] for r in runs[run])

        base = pooled(BASELINE_RUN, "pixel mask").f1 if BASELINE_RUN in runs else float("nan")
        lines += [
            f"## {ds} ({len(next(iter(runs.values())))} pairs, floor for the default "
            f"{FLOORS.get(ds, 0):.2f})",
            "",
            "| method | row | pooled F1 | mean F1 | precision | recall | kappa | IoU "
            "| vs baseline |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for run, scores in runs.items():
            for row in ("detections", "pixel mask"):
                p = pooled(run, row)
                mean_f1 = float(np.mean([s[row].f1 for s in scores]))
                lines.append(
                    f"| {run} | {row} | {p.f1:.3f} | {mean_f1:.3f} | {p.precision:.3f} "
                    f"| {p.recall:.3f} | {p.kappa:.3f} | {p.iou:.3f} | {p.f1 - base:+.3f} |"
                )
                raw.setdefault(ds, {})[f"{run} / {row}"] = {
                    "pooled": p.as_dict(),
                    "mean_f1": mean_f1,
                }
        if DEFAULT_RUN not in runs:
            continue
        d = pooled(DEFAULT_RUN, "detections").f1
        floor = FLOORS.get(ds, 0.0)
        verdict = (
            f"detections {'meet' if d >= floor else 'MISS'} the floor ({floor:.2f}), "
            f"{'not below' if d >= base else 'BELOW'} the baseline ({base:.3f})"
        )
        lines += ["", f"Default {d:.3f}: {verdict}.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
