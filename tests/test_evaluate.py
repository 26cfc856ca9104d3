import numpy as np
import pytest
from PIL import Image

from borderwatch.errors import InputError
from borderwatch.evaluation.datasets import iter_png_pairs, read_mask_array
from borderwatch.evaluation.metrics import (
    cleanup_radius_px,
    evaluate_mask,
    evaluate_pair,
    object_hit_rate,
    pool,
    scores_from_counts,
)


def test_counts_and_metrics_known_answer():
    truth = np.zeros((10, 10), bool)
    truth[:4, :5] = True  # 20 change pixels
    pred = np.zeros_like(truth)
    pred[:4, :3] = True  # 12 tp
    pred[8:, 8:] = True  # 4 fp
    s = evaluate_mask(pred, truth)
    assert (s.tp, s.fp, s.fn, s.tn) == (12, 4, 8, 76)
    assert s.precision == pytest.approx(0.75)
    assert s.recall == pytest.approx(0.6)
    assert s.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s.iou == pytest.approx(12 / 24)
    po, pe = 0.88, (16 * 20 + 84 * 80) / 10000
    assert s.kappa == pytest.approx((po - pe) / (1 - pe))
    assert s.object_hit_rate == 1.0
    assert set(s.as_dict()) >= {
        "precision",
        "recall",
        "f1",
        "iou",
        "kappa",
        "object_hit_rate",
        "tp",
        "fp",
        "fn",
        "tn",
    }


def test_partial_labels_and_invalid_pixels_are_not_scored():
    truth = np.zeros((4, 4), bool)
    truth[0, 0] = True
    pred = np.ones((4, 4), bool)
    labelled = np.zeros((4, 4), bool)
    labelled[0, :2] = True
    valid = np.ones((4, 4), bool)
    valid[0, 1] = False
    s = evaluate_mask(pred, truth, valid=valid, labelled=labelled)
    assert (s.tp, s.fp, s.fn, s.tn) == (1, 0, 0, 0)
    assert s.object_hit_rate is None  # undefined with partial labels
    with pytest.raises(InputError):
        evaluate_mask(pred, truth, labelled=np.zeros((4, 4), bool))
    with pytest.raises(InputError):
        evaluate_mask(pred[:2], truth)


def test_object_hit_rate_and_pooling():
    truth = np.zeros((20, 20), bool)
    truth[1:3, 1:3] = truth[10:12, 10:12] = truth[15:18, 2:4] = True
    pred = np.zeros_like(truth)
    pred[2, 2] = True
    assert object_hit_rate(pred, truth) == pytest.approx(1 / 3)
    assert object_hit_rate(pred, np.zeros_like(truth)) is None
    a, b = scores_from_counts(1, 2, 3, 4), scores_from_counts(5, 6, 7, 8)
    p = pool([a, b])
    assert (p.tp, p.fp, p.fn, p.tn) == (6, 8, 10, 12)
    assert scores_from_counts(0, 0, 0, 10).f1 == 0.0


def test_cleanup_rule():
    assert [cleanup_radius_px(m) for m in (0.5, 1.0, 10.0, 30.0)] == [2, 1, 1, 0]


def test_png_reader_and_arrays_pipeline(tmp_path):
    rng = np.random.default_rng(0)
    a = (rng.normal(90, 5, (64, 64, 3))).clip(0, 255).astype(np.uint8)
    b = a.copy()
    b[20:36, 20:40] = 230  # new bright roof, 8 x 10 m at 0.5 m
    lab = np.zeros((64, 64), np.uint8)
    lab[20:36, 20:40] = 255
    for sub, arr in (("A", a), ("B", b), ("label", lab)):
        (tmp_path / sub).mkdir()
        Image.fromarray(arr).save(tmp_path / sub / "x.png")
    (pair,) = list(iter_png_pairs(tmp_path, dataset="toy", pixel_m=0.5))
    assert pair.name == "toy/x" and pair.before.shape == (3, 64, 64)
    assert pair.pixel_area_m2 == 0.25
    assert read_mask_array(tmp_path / "label" / "x.png").sum() == 320
    from borderwatch.engine import DetectParams

    scores, run = evaluate_pair(pair, params=DetectParams(classify=False))
    s = scores.detections
    assert scores.n_detections == 1 and run.grid.res == (0.5, 0.5)
    assert s.f1 > 0.7 and s.recall > 0.95 and s.object_hit_rate == 1.0
