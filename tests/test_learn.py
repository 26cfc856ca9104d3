import numpy as np
import pytest

from borderwatch.errors import InputError
from borderwatch.evaluation.datasets import LabelledPair
from borderwatch.evaluation.metrics import evaluate_mask
from borderwatch.methods.training import (
    leave_one_out,
    load_model,
    predict_mask,
    save_model,
    train_model,
)

pytest.importorskip("sklearn")


def toy(seed, names=("B02", "B03", "B04", "B08")):
    rng = np.random.default_rng(seed)
    before = rng.normal(800, 40, (4, 80, 80)).astype(np.float32)
    before[3] += 1500
    after = (before * 1.1 + rng.normal(0, 40, before.shape)).astype(np.float32)
    truth = np.zeros((80, 80), bool)
    r, c = rng.integers(5, 55, 2)
    truth[r : r + 15, c : c + 12] = True
    after[:, truth] = 2600  # new bright roof on vegetation
    ones = np.ones((80, 80), bool)
    return LabelledPair(f"toy/{seed}", before, after, ones, truth, ones, names, 100.0)


def test_train_predict_roundtrip(tmp_path):
    model = train_model([toy(0), toy(1)], samples_per_pair=1000, max_iter=20)
    held = toy(2)
    s = evaluate_mask(predict_mask(model, held), held.truth)
    assert s.f1 > 0.8
    path = save_model(model, tmp_path / "m.pkl")
    again = load_model(path)
    assert again.band_names == model.band_names and again.trained_on == ("toy/0", "toy/1")
    np.testing.assert_array_equal(predict_mask(again, held), predict_mask(model, held))
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InputError):
        load_model(tmp_path / "bad.pkl")


@pytest.mark.slow
def test_band_mismatch_and_leave_one_out():
    with pytest.raises(InputError):
        train_model([toy(0), toy(1, names=("B02", "B03", "B04", "B8A"))], max_iter=5)
    res = leave_one_out([toy(3), toy(4), toy(5)], samples_per_pair=1000, max_iter=20)
    assert set(res) == {"toy/3", "toy/4", "toy/5"}
    assert all(s.f1 > 0.7 for s in res.values())


@pytest.mark.slow
def test_detect_cli_with_model(tmp_path):
    from click.testing import CliRunner

    from borderwatch.cli import main
    from borderwatch.io import open_date
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    names = open_date(tiles / "before.tif").band_names
    model = train_model([toy(0, names), toy(1, names)], samples_per_pair=1000, max_iter=20)
    path = save_model(model, tmp_path / "m.pkl")
    out = tmp_path / "det.geojson"
    res = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(tiles / "before.tif"),
            "--after",
            str(tiles / "after.tif"),
            "--model",
            str(path),
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert out.exists()
    from borderwatch.engine import DetectParams, detect

    run = detect(
        tiles / "before.tif",
        tiles / "after.tif",
        params=DetectParams(model=str(path), classify=False),
    )
    assert run.change.method == "model" and run.change.params["model"] == str(path)
    assert run.change.threshold == 0.5 and len(run.change.params["model_sha256"]) == 64


@pytest.mark.slow
def test_model_bands_are_matched_by_role_and_named_with_bands(tmp_path):
    from borderwatch.engine import DetectParams, detect
    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    b, a = tiles / "before.tif", tiles / "after.tif"  # bands blue, green, red, nir
    s2 = save_model(train_model([toy(0), toy(1)], max_iter=5), tmp_path / "s2.pkl")
    run = detect(b, a, params=DetectParams(model=str(s2), classify=False))  # B0x by role
    assert run.change.method == "model"
    odd = ("pan1", "pan2", "pan3", "pan4")
    m = save_model(train_model([toy(0, odd), toy(1, odd)], max_iter=5), tmp_path / "odd.pkl")
    with pytest.raises(InputError, match=r"trained on bands \['pan1'.*no match by name or role"):
        detect(b, a, params=DetectParams(model=str(m), classify=False))
    run = detect(b, a, params=DetectParams(model=str(m), classify=False, bands=odd))
    assert run.change.method == "model"
    with pytest.raises(InputError, match=r"before.tif: --bands names 2 bands"):
        detect(b, a, params=DetectParams(model=str(m), bands=("x", "y")))
