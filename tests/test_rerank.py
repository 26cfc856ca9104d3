"""A place's re-ranker: fitted on reviews, written as JSON, applied by detect."""

from __future__ import annotations

import dataclasses
import json

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner
from shapely.geometry import box

from borderwatch.cli import main
from borderwatch.engine import DetectParams, detect
from borderwatch.errors import InputError
from borderwatch.objects.rerank import (
    KEEP_PROBABILITY,
    apply_reranker,
    fit_reranker,
    load_reranker,
    save_reranker,
)


def reviewed(
    n: int = 80, seed: int = 0, *, scores: tuple[float, float] = (0.5, 1.0)
) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """Detections where the analyst confirms strong, building-sized ones."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(*scores, n)
    area = np.exp(rng.uniform(np.log(10), np.log(2000), n))
    confirmed = (score > np.mean(scores)) & (area > 40)
    frame = gpd.GeoDataFrame(
        {
            "score": score,
            "area_m2": area,
            "length_m": np.sqrt(area),
            "class": np.where(confirmed, "building", "other"),
            "confidence": np.full(n, 0.9),
            "review": np.where(confirmed, "confirmed", "rejected"),
        },
        geometry=[box(i * 50, 0, i * 50 + 10, 10) for i in range(n)],
        crs="EPSG:32652",
    )
    return frame, confirmed


def test_reranker_learns_the_reviews_and_round_trips(tmp_path):
    frame, confirmed = reviewed()
    r = fit_reranker(frame, confirmed, place="toy")
    p = r.probability(frame)
    assert r.score_kind == "probability"
    assert np.median(p[confirmed]) > 0.8 and np.median(p[~confirmed]) < 0.2
    assert ((p >= KEEP_PROBABILITY) == confirmed).mean() > 0.9
    # calibrated where fitted: mean probability is the share confirmed
    assert abs(p.mean() - confirmed.mean()) < 0.03
    path = tmp_path / "r.json"
    sha = save_reranker(r, path)
    again = load_reranker(path)
    assert again.sha256 == sha and again == dataclasses.replace(r, sha256=sha)
    kept = apply_reranker(frame, r)
    assert (kept["confidence"] >= KEEP_PROBABILITY).all()
    assert (kept["confidence_before_rerank"] == 0.9).all()
    assert kept["review"].eq("confirmed").mean() > 0.9 > confirmed.mean()
    with pytest.raises(InputError, match="at least 5 of each"):
        fit_reranker(frame.iloc[:6], confirmed[:6])
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="bad.json: not a borderwatch re-ranker"):
        load_reranker(tmp_path / "bad.json")


@pytest.mark.slow
def test_train_from_reviews_then_detect_with_the_reranker(tmp_path, sample_detect_args):
    frame, _ = reviewed(seed=1, scores=(3.0, 12.0))  # reviews of combined runs
    gpkg = tmp_path / "reviewed.gpkg"
    frame.to_file(gpkg, layer="detections", driver="GPKG")
    out = tmp_path / "helong.rerank.json"
    res = CliRunner().invoke(main, ["train", "--from-reviews", str(gpkg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "5-fold cross-validated on 80: precision 0.375 -> " in res.output and out.exists()
    res = CliRunner().invoke(main, ["train", "--from-reviews", str(gpkg), "--out", str(out)])
    assert res.exit_code != 0 and "exists" in res.output  # no overwrite without --overwrite
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    params = DetectParams(method="combined", reranker=str(out))
    run = detect(tiles / "before.tif", tiles / "after.tif", params=params)
    p = run.change.params
    assert p["reranker"] == str(out) and len(p["reranker_sha256"]) == 64
    assert p["reranker_reviews"]["confirmed"] == int((frame["review"] == "confirmed").sum())
    assert 0 < len(run.objects) and (run.objects["confidence"] >= KEEP_PROBABILITY).all()
    # a re-ranker of probability scores is refused on a standardised score, before work
    prob = tmp_path / "prob.json"
    save_reranker(fit_reranker(*reviewed(seed=2)), prob)
    with pytest.raises(InputError, match="prob.json: re-ranker fitted on probability scores"):
        detect(
            tiles / "before.tif",
            tiles / "after.tif",
            params=params.__class__(method="combined", reranker=str(prob)),
        )
    # a broken re-ranker is refused before any work, naming the file
    bad = tmp_path / "broken.json"
    bad.write_text("{")
    res = CliRunner().invoke(
        main, sample_detect_args(tmp_path / "d.geojson", "--reranker", str(bad))
    )
    assert res.exit_code != 0 and "broken.json: not a re-ranker file" in res.output
