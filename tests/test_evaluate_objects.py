"""Object-level evaluation and honest pixel size: known answers on hand-made masks.

The match rule (borderwatch.evaluation.objects.MATCH_RULE): a detection matches a true
object (8-connected component of the truth) at IoU >= 0.5, one-to-one, greedy by IoU.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from borderwatch.cli import main
from borderwatch.errors import InputError
from borderwatch.evaluation.datasets import check_pixel_size, iter_png_pairs, load_labelled
from borderwatch.evaluation.metrics import ProductScores, evaluate_pair, scores_from_counts
from borderwatch.evaluation.objects import (
    MATCH_RULE,
    ObjectScores,
    match_objects,
    object_scores,
    pool_objects,
)


def _three_truths() -> np.ndarray:
    truth = np.zeros((40, 40), bool)
    truth[2:6, 2:6] = True  # A, 16 px
    truth[10:14, 10:14] = True  # B, 16 px
    truth[20:24, 2:6] = True  # C, 16 px (missed)
    return truth


def test_three_true_two_matched_one_false_gives_two_thirds():
    truth = _three_truths()
    pred = np.zeros((40, 40), np.int32)
    pred[2:6, 2:6] = 1  # A exactly: IoU 1, area ratio 1
    pred[10:14, 10:16] = 2  # B and 8 px beside it: IoU 16/24, area ratio 1.5
    pred[30:33, 30:33] = 3  # bare ground: false
    s = object_scores(pred, np.array([0.9, 0.7, 0.2]), truth, pixel_area_m2=0.25)
    assert (s.tp, s.fp, s.fn) == (2, 1, 1)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 3)
    assert s.f1 == pytest.approx(2 / 3)
    assert s.scored_area_km2 == pytest.approx(1600 * 0.25 / 1e6)
    assert s.false_per_km2 == pytest.approx(1 / 4e-4)
    assert sorted(s.area_ratios) == pytest.approx([1.0, 1.5])
    assert s.median_area_ratio == pytest.approx(1.25)
    # confidences 0.9 (true), 0.7 (true), 0.2 (false): |1-0.9| + |1-0.7| + |0-0.2| over 3
    assert s.ece == pytest.approx((0.1 + 0.3 + 0.2) / 3)


def test_iou_threshold_and_one_to_one():
    truth = np.zeros((20, 20), bool)
    truth[0:4, 0:4] = True  # 16 px
    pred = np.zeros((20, 20), np.int32)
    pred[0:4, 0:2] = 1  # 8 of 16: IoU 0.5, matches (>= 0.5)
    pred[0:4, 2:4] = 2  # the other half: IoU 0.5 too, but the truth is taken
    s = object_scores(pred, np.array([0.5, 0.5]), truth, pixel_area_m2=1.0)
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)  # a split building: one match, one false
    pred2 = np.zeros((20, 20), np.int32)
    pred2[0:4, 0:1] = 1  # 4 of 16 px: IoU 0.25 < 0.5
    s2 = object_scores(pred2, np.array([0.5]), truth, pixel_area_m2=1.0)
    assert (s2.tp, s2.fp, s2.fn) == (0, 1, 1)
    # greedy by IoU: detection 1 overlaps truth 1 at 0.75 and truth 2 at 0; the best pair wins
    t = np.zeros((4, 10), np.int32)
    t[:, 0:4], t[:, 5:9] = 1, 2
    p = np.zeros((4, 10), np.int32)
    p[:, 0:3] = 1
    p[:, 5:9] = 2
    mp, mt, _, _ = match_objects(p, t)
    assert sorted(zip(mp.tolist(), mt.tolist(), strict=True)) == [(1, 1), (2, 2)]


def test_ece_hand_made_bins():
    # ten detections: four at 0.95 of which two are true, six at 0.15 of which none is
    n, t, c = [0] * 10, [0] * 10, [0.0] * 10
    n[9], t[9], c[9] = 4, 2, 4 * 0.95
    n[1], t[1], c[1] = 6, 0, 6 * 0.15
    s = ObjectScores(2, 8, 0, 1.0, bin_n=tuple(n), bin_confidence=tuple(c), bin_true=tuple(t))
    assert s.ece == pytest.approx((4 * abs(0.5 - 0.95) + 6 * 0.15) / 10)
    rows = s.calibration()
    assert rows[9] == {"low": 0.9, "high": 1.0, "n": 4, "mean_confidence": 0.95, "true_share": 0.5}
    assert rows[0]["n"] == 0 and rows[0]["mean_confidence"] is None
    # perfectly calibrated: 0.25 confidence, one of four true
    truth = np.zeros((10, 40), bool)
    truth[1:3, 1:3] = True
    pred = np.zeros((10, 40), np.int32)
    for i in range(4):
        pred[1:3, 1 + 10 * i : 3 + 10 * i] = i + 1
    exact = object_scores(pred, np.full(4, 0.25), truth, pixel_area_m2=1.0)
    assert exact.ece == pytest.approx(0.0)
    # a confidence of exactly 1.0 falls in the last bin; NaN confidences are left out
    edge = object_scores(pred, np.array([1.0, np.nan, np.nan, np.nan]), truth, pixel_area_m2=1.0)
    assert edge.bin_n[9] == 1 and sum(edge.bin_n) == 1 and edge.ece == pytest.approx(0.0)
    none = object_scores(pred, np.full(4, np.nan), truth, pixel_area_m2=1.0)
    assert none.ece is None and none.precision == pytest.approx(0.25)
    with pytest.raises(InputError):
        object_scores(pred, np.full(4, 1.5), truth, pixel_area_m2=1.0)


def test_pooling_sums_counts_not_ratios():
    a = ObjectScores(1, 0, 0, 1.0, area_ratios=(1.0,))  # precision 1
    b = ObjectScores(0, 3, 1, 1.0)  # precision 0
    p = pool_objects([a, b])
    assert (p.tp, p.fp, p.fn) == (1, 3, 1)
    assert p.precision == pytest.approx(1 / 4)  # not the mean of 1 and 0
    assert p.false_per_km2 == pytest.approx(1.5)
    assert p.area_ratios == (1.0,)
    empty = ObjectScores(0, 0, 0, 1.0)
    assert empty.precision is None and empty.recall is None and empty.f1 is None
    assert empty.median_area_ratio is None and empty.ece is None


def test_invalid_pixels_are_not_scored_for_objects():
    truth = _three_truths()
    pred = np.zeros((40, 40), np.int32)
    pred[30:33, 30:33] = 1  # a false detection, but on invalid pixels
    scored = np.ones((40, 40), bool)
    scored[28:, 28:] = False
    scored[20:24, 2:6] = False  # truth C out of the scored area
    s = object_scores(pred, np.array([0.4]), truth, pixel_area_m2=1.0, scored=scored)
    assert (s.tp, s.fp, s.fn) == (0, 0, 2)
    assert s.scored_area_km2 == pytest.approx(scored.sum() / 1e6)


def test_json_keys_stable_when_objects_are_not_scored():
    px = scores_from_counts(1, 0, 0, 3)
    d = ProductScores(px, px, 0, None).as_dict()
    for key in ("object_precision", "object_recall", "object_f1", "false_objects_per_km2"):
        assert d[key] is None
    assert d["ece"] is None and d["median_area_ratio"] is None
    assert d["object_match_rule"] == MATCH_RULE


def _png_pair(tmp_path, *, roofs=((20, 36, 20, 40),), labels=None, size=64):
    """Before/after/label PNGs: bright roofs planted at ``roofs``, labelled at ``labels``."""
    rng = np.random.default_rng(0)
    a = rng.normal(90, 5, (size, size, 3)).clip(0, 255).astype(np.uint8)
    b = a.copy()
    lab = np.zeros((size, size), np.uint8)
    for r0, r1, c0, c1 in roofs:
        b[r0:r1, c0:c1] = 230  # a new bright roof
    for r0, r1, c0, c1 in roofs if labels is None else labels:
        lab[r0:r1, c0:c1] = 255
    paths = []
    for name, arr in (("a.png", a), ("b.png", b), ("t.png", lab)):
        Image.fromarray(arr).save(tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def test_evaluate_pair_scores_the_engines_objects(tmp_path):
    from borderwatch.engine import DetectParams

    for sub in ("A", "B", "label"):
        (tmp_path / sub).mkdir()
    before, after, label = _png_pair(tmp_path)
    for src, sub in ((before, "A"), (after, "B"), (label, "label")):
        (tmp_path / sub / "x.png").write_bytes(src.read_bytes())
    (pair,) = iter_png_pairs(tmp_path, pixel_m=0.5)
    scores, run = evaluate_pair(pair, params=DetectParams(classify=False))
    o = scores.objects
    assert o is not None and len(run.objects) == scores.n_detections == 1
    assert (o.tp, o.fp, o.fn) == (1, 0, 0)  # the one planted roof, IoU >= 0.5
    assert o.scored_area_km2 == pytest.approx(64 * 64 * 0.25 / 1e6)
    # the area ratio is the engine object's own area over the truth's (m2 on the grid)
    assert o.median_area_ratio == pytest.approx(run.objects["area_m2"].iloc[0] / (320 * 0.25))
    assert o.ece is None  # no classification, so no confidence to calibrate


def test_evaluate_json_scores_what_detect_writes_object_by_object(tmp_path):
    """3 true roofs: 2 built and labelled, 1 labelled but not built; 1 built, not labelled."""
    import geopandas as gpd

    built = ((8, 24, 8, 28), (40, 56, 36, 56), (70, 86, 10, 30))
    labelled = ((8, 24, 8, 28), (40, 56, 36, 56), (70, 86, 60, 80))
    before, after, truth = _png_pair(tmp_path, roofs=built, labels=labelled, size=96)
    dates = ["--before", str(before), "--after", str(after)]
    method = ["--method", "cva", "--threshold", "otsu"]  # exact footprints on this scene
    args = ["evaluate", *dates, "--truth", str(truth), "--pixel-size", "0.5", *method]
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {"detections", "pixels", "n_detections"} <= set(out)
    assert (out["pixel_size_m"], out["pixel_size_source"]) == (0.5, "--pixel-size")
    assert (out["object_tp"], out["object_fp"], out["object_fn"]) == (2, 1, 1)
    assert out["object_precision"] == pytest.approx(2 / 3)
    assert out["object_recall"] == pytest.approx(2 / 3)
    assert out["object_f1"] == pytest.approx(2 / 3)
    assert out["scored_area_km2"] == pytest.approx(96 * 96 * 0.25 / 1e6)
    assert out["false_objects_per_km2"] == pytest.approx(1 / (96 * 96 * 0.25 / 1e6))
    assert out["median_area_ratio"] == pytest.approx(1.0)
    assert len(out["calibration"]) == 10 and "IoU" in out["object_match_rule"]
    # ECE by hand from the confidences detect writes for the same pair (same parameters)
    from borderwatch.engine import DetectParams, detect
    from borderwatch.evaluation.metrics import synthetic_grid

    pair = load_labelled([before], [after], truth, pixel_m=0.5)
    run = detect(
        *_as_tifs(tmp_path, pair),
        params=DetectParams(method="cva", threshold="otsu"),
        grid=synthetic_grid((96, 96), 0.5),
    )
    det = gpd.GeoDataFrame(run.objects)
    conf = det["confidence"].to_numpy(float)
    true = (det["area_m2"].to_numpy() == 320 * 0.25) & (det.geometry.centroid.y > _row_y(60))
    assert true.sum() == 2 and len(det) == 3
    bins = np.minimum((conf * 10).astype(int), 9)
    ece = sum(
        abs(true[bins == k].mean() - conf[bins == k].mean()) * (bins == k).sum()
        for k in np.unique(bins)
    ) / len(conf)
    assert out["ece"] == pytest.approx(ece, abs=1e-9)
    text = CliRunner().invoke(main, args)
    assert text.exit_code == 0
    assert "\nobjects     precision 0.667  recall 0.667  F1 0.667" in text.output


def _row_y(row: int) -> float:
    """Northing of a grid row on :func:`~borderwatch.evaluation.metrics.synthetic_grid`."""
    return 4_700_000 - 0.5 * row


def _as_tifs(tmp_path, pair):
    from borderwatch.evaluation.metrics import synthetic_grid
    from borderwatch.products.export import write_float_raster

    grid = synthetic_grid(pair.truth.shape, 0.5)
    return [
        write_float_raster(
            tmp_path / f"{role}.tif", getattr(pair, role), grid, band_names=pair.band_names
        )
        for role in ("before", "after")
    ]


def test_png_without_pixel_size_is_refused_naming_the_file(tmp_path):
    before, after, truth = _png_pair(tmp_path)
    args = ["evaluate", "--before", str(before), "--after", str(after), "--truth", str(truth)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"borderwatch: error: {before}: no georeferencing, so no pixel size; give "
        "--pixel-size (metres): the model's scale and every area depend on it"
    )
    with pytest.raises(InputError, match="a.png: no georeferencing"):
        load_labelled([before], [after], truth)
    no_default = inspect.signature(iter_png_pairs).parameters["pixel_m"].default
    assert no_default is inspect.Parameter.empty
    # detect has no --pixel-size: it refuses an un-georeferenced pair
    res = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(before),
            "--after",
            str(after),
            "--out",
            str(tmp_path / "o.gpkg"),
        ],
    )
    assert res.exit_code == 2 and f"{before}: not georeferenced" in res.output


def test_pixel_size_contradicting_georeferencing_is_refused(tmp_path, make_raster):
    img = np.random.default_rng(1).integers(300, 1500, (3, 64, 64)).astype(np.uint16)
    b = make_raster("b.tif", img)  # 1 m UTM pixels
    assert check_pixel_size([b], None) is None  # its own size
    assert check_pixel_size([b], 1.02) is None  # agrees within 5 %
    with pytest.raises(InputError) as err:
        check_pixel_size([b], 0.5)
    assert str(err.value) == (
        f"{b}: --pixel-size 0.5 m contradicts the file's georeferencing (1 m pixels); "
        "leave --pixel-size out"
    )
    truth = make_raster("t.tif", np.zeros((64, 64), np.uint8))
    args = ["evaluate", "--before", str(b), "--after", str(b), "--truth", str(truth)]
    res = CliRunner().invoke(main, [*args, "--pixel-size", "0.5"])
    assert res.exit_code == 2 and "contradicts the file's georeferencing" in res.output


def test_train_png_needs_pixel_size(tmp_path):
    for sub in ("A", "B", "label"):
        (tmp_path / sub).mkdir()
    res = CliRunner().invoke(main, ["train", "--dataset", "png", "--data", str(tmp_path), "--loo"])
    assert res.exit_code == 2 and "--pixel-size" in res.output
