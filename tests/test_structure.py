"""The structure-change network: training data readers, augmentation, ONNX method, training."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from scipy import ndimage

from borderwatch.engine import DetectParams, detect
from borderwatch.errors import InputError
from borderwatch.methods import get_method
from borderwatch.methods.structure import StructureMethod, structure_halo_px
from borderwatch.structure.augment import PatchSampler, swap_dates
from borderwatch.structure.data import (
    ChangePair,
    Footprints,
    file_manifest,
    read_change_pairs,
    read_footprints,
)
from borderwatch.structure.infer import DEFAULT_MODEL, load_model_info

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "README.txt").is_file(), reason=f"training data absent ({DATA})"
)


# --------------------------------------------------------------------------- readers
@needs_data
def test_change_readers_group_levir_crops_with_their_tile_and_label_disasters_zero():
    pairs = read_change_pairs(DATA, ["levir_samples", "levir_tiles", "ida_bd"])
    by = {p.name: p for p in pairs}
    tile = by["levir_cd_tiles/test_2"]
    crop = by["levir_cd_samples/test_2_0000_0512"]
    assert crop.group == tile.group == "levir/test_2"
    assert by["levir_cd_samples/test_77_0512_0256"].group == "levir/test_77"
    # the sample crop is the tile's window at row 0, column 512, pixel for pixel
    assert np.array_equal(crop.before, tile.before[:, :256, 512:768])
    assert np.array_equal(crop.new, tile.new[:256, 512:768])
    assert tile.before.shape == (3, 1024, 1024) and tile.pixel_m == 0.5
    assert int(tile.new.sum()) == 50_321  # README: changed pixels of test_2
    ida = [p for p in pairs if p.dataset == "ida_bd_samples"]
    assert len(ida) == 4 and all(not p.new.any() for p in ida)
    man = file_manifest(DATA, [tile])
    assert [m["path"] for m in man] == [
        "levir_cd_tiles/A/test_2.png",
        "levir_cd_tiles/B/test_2.png",
        "levir_cd_tiles/label/test_2.png",
    ]
    want = hashlib.sha256((DATA / man[2]["path"]).read_bytes()).hexdigest()
    assert man[2]["sha256"] == want


@needs_data
def test_spacenet7_new_ids_and_georeferenced_pixel_sizes():
    sn7 = read_change_pairs(DATA, ["spacenet7"])
    assert len(sn7) == 10  # 2 AOIs x 5 consecutive pairs of the 6 months present
    first = [p for p in sn7 if p.name.endswith("2018_06")]
    assert len(first) == 2 and all(p.new.any() for p in first)
    assert all(3.7 < p.pixel_m < 4.1 for p in sn7)  # 4.777 m Web Mercator x cos(lat)
    feet = read_footprints(DATA, ["spacenet", "shanghai", "crowdai"])
    rio = [f for f in feet if f.dataset == "sn1"]
    assert rio and all(0.44 < f.pixel_m < 0.48 for f in rio)  # 4.49e-6 deg at 22.9 S
    sh = [f for f in feet if f.dataset == "shanghai"]
    assert len(sh) == 4 and all(0.84 < f.pixel_m < 0.87 for f in sh)
    assert all(f.image.dtype == np.uint8 and f.image.shape[0] == 3 for f in feet)
    assert all(0.01 < f.building.mean() < 0.6 for f in feet)


def test_unknown_dataset_is_refused(tmp_path):
    with pytest.raises(InputError, match="unknown change dataset"):
        read_change_pairs(tmp_path, ["nope"])


# --------------------------------------------------------------------------- augmentation
def _toy_records(rng):
    img = rng.integers(0, 255, size=(3, 200, 200), dtype=np.uint8)
    new = np.zeros((200, 200), bool)
    new[50:90, 60:110] = True
    after = img.copy()
    after[:, new] = 230
    pair = ChangePair("toy/a", "toy/a", img, after, new, 0.5, ())
    building = np.zeros((200, 200), bool)
    for r in range(10, 190, 30):
        for c in range(10, 190, 36):
            building[r : r + 14, c : c + 18] = True
    feet = Footprints("toy/f", "toy/f", img, building, 0.5, ())
    return pair, feet


def test_date_swap_gives_a_zero_label():
    rng = np.random.default_rng(1)
    pair, feet = _toy_records(rng)
    b, a, n = swap_dates(pair.before, pair.after, pair.new)
    assert b is pair.after and a is pair.before and not n.any()
    weights = {"change": 1.0, "stable": 0.0, "paste": 0.0, "same": 0.0}
    swapped = PatchSampler([pair], [], [feet], size=64, weights=weights, p_swap=1.0)
    kept = PatchSampler([pair], [], [feet], size=64, weights=weights, p_swap=0.0)
    _, y = swapped.batch(np.random.default_rng(0), 6)
    _, y_kept = kept.batch(np.random.default_rng(0), 6)
    assert y.shape == (6, 1, 64, 64) and not y.any()
    assert y_kept.any()


def test_paste_labels_exactly_the_pasted_buildings():
    rng = np.random.default_rng(2)
    _, feet = _toy_records(rng)
    weights = {"change": 0.0, "stable": 0.0, "paste": 1.0, "same": 0.0}
    s = PatchSampler([], [], [feet], size=128, weights=weights, p_swap=0.0, shift_px=0.0)
    found = 0
    for seed in range(5):
        before, after, new = s._paste(np.random.default_rng(seed))
        changed = np.abs(after - before).max(axis=0) > 1e-3
        assert not (changed & ~ndimage.binary_dilation(new, iterations=2)).any()
        found += int(new.any())
    assert found


# --------------------------------------------------------------------------- ONNX method
def _write(path: Path, arr: np.ndarray, date: str, names=("red", "green", "blue")) -> Path:
    profile = dict(
        driver="GTiff",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype="uint8",
        crs="EPSG:32652",
        transform=from_origin(500_000, 4_600_000, 0.5, 0.5),
        tiled=True,
        blockxsize=64,
        blockysize=64,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        dst.descriptions = names
        dst.update_tags(ACQUISITION_DATE=date)
    return path


def _scene(tmp_path: Path, names=("red", "green", "blue")) -> tuple[Path, Path]:
    rng = np.random.default_rng(5)
    base = ndimage.gaussian_filter(rng.normal(0, 1, (3, 320, 320)), (0, 3, 3))
    before = np.clip(110 + 400 * base, 0, 255).astype(np.uint8)
    after = before.copy()
    for r, c in [(40, 60), (180, 200), (250, 40)]:
        after[:, r : r + 24, c : c + 30] = np.array([200, 190, 185])[:, None, None]
    return (
        _write(tmp_path / "before.tif", before, "2019-05-01", names),
        _write(tmp_path / "after.tif", after, "2022-05-01", names),
    )


def test_structure_method_gives_the_same_score_at_two_block_sizes(tmp_path):
    b, a = _scene(tmp_path)
    params = DetectParams(method="structure", align=False, classify=False)
    runs = {}
    for size in (128, 320):
        out = tmp_path / f"score_{size}.tif"
        runs[size] = detect(b, a, params=params, block_size=size, score_out=out)
        with rasterio.open(out) as src:
            runs[size] = (runs[size], src.read(1))
    (r1, s1), (r2, s2) = runs[128], runs[320]
    assert r1.change.params["blockwise"]["blocks"] > r2.change.params["blockwise"]["blocks"]
    ok = np.isfinite(s1)
    assert np.array_equal(ok, np.isfinite(s2)) and ok.mean() > 0.95
    assert 0 <= s1[ok].min() and s1[ok].max() <= 1
    # the halo (32 m) keeps block edges out and score_at keeps every block on the
    # scene's pooling grid: blocks agree to 5e-3 in probability (measured 1.3e-4 for the
    # first model, 1.6e-3 for the shipped one, which uses more of its receptive field),
    # and the 0.5 masks agree wherever the score is not within that of the threshold
    assert np.abs(s1[ok] - s2[ok]).max() < 5e-3
    clear = ok & (np.abs(s1 - 0.5) > 5e-3)
    assert np.array_equal(s1[clear] >= 0.5, s2[clear] >= 0.5)
    sha = hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    for run in (r1, r2):
        assert run.change.method == "structure"
        assert run.change.params["model_sha256"] == sha
        assert run.change.params["model"] == str(DEFAULT_MODEL)
        assert run.change.params["threshold_value"] == 0.5


def test_structure_refuses_bands_without_rgb(tmp_path):
    b, a = _scene(tmp_path, names=("nir", "swir1", "swir2"))
    with pytest.raises(InputError, match=r"takes bands \['red', 'green', 'blue'\].*no \['red'"):
        detect(b, a, params=DetectParams(method="structure", align=False))


def test_onnx_model_file_selects_the_structure_method_and_resamples_coarser_grids():
    m = get_method("combined", model=str(DEFAULT_MODEL))
    assert isinstance(m, StructureMethod) and m.path == DEFAULT_MODEL
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (3, 50, 70)).astype(np.float32)
    valid = np.ones((50, 70), bool)
    valid[0, 0] = False
    f = StructureMethod().fit(img, img, valid, band_names=("blue", "green", "red"), pixel_m=1.0)
    assert f.bands == (2, 1, 0) and f.halo_px == structure_halo_px(1.0) == 32
    out = f.score(img, img, valid)
    assert out.shape == (50, 70) and np.isnan(out[0, 0]) and np.isfinite(out[1:]).all()
    info = load_model_info(DEFAULT_MODEL)
    assert info.pixel_m == 0.5 and info.band_roles == ("red", "green", "blue")


def test_structure_refuses_coarse_pixels():
    img = np.zeros((3, 8, 8), np.float32)
    with pytest.raises(InputError, match=r"2.5 m or finer; the analysis pixel is 10 m"):
        StructureMethod().fit(
            img, img, np.ones((8, 8), bool), band_names=("red", "green", "blue"), pixel_m=10.0
        )


def test_shipped_weights_match_their_model_card_and_record():
    import json
    import re

    sha = hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()
    card = (DEFAULT_MODEL.parent / "MODEL_CARD.md").read_text()
    assert re.search(r"weights SHA-256: `([0-9a-f]{64})`", card).group(1) == sha
    record = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    assert record["weights_sha256"] == sha
    # the shipped model trained on everything (held-out scores come from the
    # cross-validation folds, benchmarks/structure_cv.py) and carries their calibration
    assert record["config"]["holdout"] == []
    assert any("test_2" in f["path"] for f in record["data_files"])
    info = load_model_info(DEFAULT_MODEL)
    xs, ys = info.calibration
    assert len(xs) >= 2 and all(0 <= y <= 1 for y in ys) and list(ys) == sorted(ys)
    assert "calibration" in card


def test_non_structure_onnx_is_refused(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        load_model_info(bad)


# --------------------------------------------------------------------------- training
@needs_data
def test_tiny_training_run_exports_an_onnx_model_equal_to_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="PyTorch absent (the [train] extra)")
    pytest.importorskip("onnx", reason="onnx absent (the [train] extra)")
    from borderwatch.structure.infer import predict
    from borderwatch.structure.net import UNet
    from borderwatch.structure.train import TrainConfig, train_structure

    cfg = TrainConfig(
        data=str(DATA),
        change=("levir_samples",),
        stable=(),
        footprints=("crowdai",),
        steps=2,
        batch=2,
        size=64,
        widths=(4, 8, 16),
        threads=1,
    )
    out = tmp_path / "m.onnx"
    record = train_structure(cfg, out, command="test", log=lambda s: None)
    assert record["steps_done"] == 2
    assert record["weights_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    again = train_structure(cfg, tmp_path / "again.onnx", command="test", log=lambda s: None)
    assert again["weights_sha256"] == record["weights_sha256"]  # seeded: reproducible
    val = record["validation"]
    assert set(val["per_pair_f1"]) == {
        "levir_cd_samples/test_2_0000_0000",
        "levir_cd_samples/test_2_0000_0512",
    }
    paths = [f["path"] for f in record["data_files"]]
    assert not any("test_2_" in p for p in paths)  # the held-out place is not trained on
    info = load_model_info(out)
    assert info.multiple == 4
    # the same weights in torch and onnxruntime agree on a fixed input (tolerance 1e-4)
    torch.manual_seed(0)
    net = UNet(widths=(4, 8, 16)).eval()
    x = np.random.default_rng(0).normal(size=(6, 40, 48)).astype(np.float32)
    from borderwatch.structure.train import export_onnx

    export_onnx(
        net,
        tmp_path / "n.onnx",
        metadata={
            "borderwatch_structure": "1",
            "band_roles": "red,green,blue",
            "pixel_m": "0.5",
        },
        quantize=False,  # float weights: the same numbers as torch
    )
    with torch.no_grad():
        ref = torch.sigmoid(net(torch.from_numpy(x[None])))[0, 0].numpy()
    got = predict(load_model_info(tmp_path / "n.onnx"), x)
    assert np.abs(got - ref).max() < 1e-4


# --------------------------------------------------------------------------- drawn structures
def test_drawn_roofs_and_strips_are_labelled_and_their_shadows_are_not():
    from borderwatch.structure.paint import draw_structures

    size = 128
    grey = np.full((3, size, size), 120.0, np.float32)
    free = np.zeros((size, size), bool)
    shadows = labelled = 0
    for seed in range(12):
        after, new = draw_structures(grey, free, np.random.default_rng(seed))
        darker = (after < 120 - 20).all(axis=0)  # shade factor <= 0.7 of the ground
        # a shadow pixel (darker ground, far from any edge of a label) is never labelled
        core_shadow = darker & ~ndimage.binary_dilation(new, iterations=2)
        shadows += int(core_shadow.sum())
        labelled += int(new.sum())
        # labelled pixels are visibly different from the ground (a roof's mean differs by
        # at least 12 of 255; texture and a later roof's shadow leave a few pixels closer)
        if new.any():
            assert (np.abs(after - grey).mean(axis=0)[new] >= 6).mean() > 0.97
        # nothing changes outside the labels but shadows (and anti-aliased edges)
        changed = np.abs(after - grey).max(axis=0) > 1
        assert not (changed & ~ndimage.binary_dilation(new | darker, iterations=2)).any()
    assert shadows > 500 and labelled > 2000
    # existing buildings are not drawn over
    occupied = np.ones((size, size), bool)
    roofs = 0
    for seed in range(6):  # no roof where every pixel is taken (only a fence strip may be)
        _, new = draw_structures(grey, occupied, np.random.default_rng(seed))
        roofs += int(new.sum() > 0.1 * size * size)
    assert roofs == 0


def test_hold_out_a_whole_dataset_by_prefix():
    from borderwatch.structure.data import held_groups

    groups = {"levir/test_1", "levir/test_2", "xbd/harvey", "ida_bd/x"}
    assert held_groups(["levir/*"], groups) == {"levir/test_1", "levir/test_2"}
    assert held_groups(["xbd/*", "levir/test_2"], groups) == {"xbd/harvey", "levir/test_2"}
    with pytest.raises(InputError, match="'spacenet/\\*' matches none"):
        held_groups(["spacenet/*"], groups)


# --------------------------------------------------------------------------- calibration
def test_isotonic_calibration_is_monotone_with_known_shares():
    from borderwatch.structure.calibrate import fit_calibration

    rng = np.random.default_rng(0)
    score = rng.uniform(0.5, 1.0, 4000)
    real = rng.random(4000) < (score - 0.5) * 2  # true share rises from 0 to 1
    xs, ys = fit_calibration(score, real)
    assert len(xs) == 12 and all(b > a for a, b in zip(xs, xs[1:], strict=False))
    assert all(b >= a for a, b in zip(ys, ys[1:], strict=False))
    assert np.allclose(ys, (np.asarray(xs) - 0.5) * 2, atol=0.08)
    with pytest.raises(InputError, match="at least 30"):
        fit_calibration(score[:5], real[:5])


def _levir_scene(tmp_path: Path, stem: str = "test_2_0000_0000") -> tuple[Path, Path]:
    """A LEVIR-CD sample pair (0.5 m) written as georeferenced RGB GeoTIFFs."""
    from PIL import Image

    root = DATA / "levir_cd_samples"
    arrs = [np.asarray(Image.open(root / d / f"{stem}.png").convert("RGB")) for d in "AB"]
    return (
        _write(tmp_path / "before.tif", arrs[0].transpose(2, 0, 1).copy(), "2012-01-01"),
        _write(tmp_path / "after.tif", arrs[1].transpose(2, 0, 1).copy(), "2016-01-01"),
    )


@needs_data
def test_embedded_calibration_becomes_the_detections_confidence(tmp_path):
    pytest.importorskip("onnx", reason="onnx absent (the [train] extra)")
    import shutil

    from borderwatch.objects.classify import calibrated_confidence
    from borderwatch.structure.calibrate import embed_calibration

    model = tmp_path / "m.onnx"
    shutil.copy(DEFAULT_MODEL, model)
    cal = ((0.5, 0.75, 1.0), (0.1, 0.3, 0.6))
    sha = embed_calibration(model, cal, fitted_on="test")
    info = load_model_info(model)
    assert info.sha256 == sha and info.calibration == cal
    b, a = _levir_scene(tmp_path)
    run = detect(b, a, params=DetectParams(model=str(model), align=False))
    assert len(run.objects)
    want = [calibrated_confidence(s, cal) for s in run.objects["mean_score"]]
    assert np.allclose(run.objects["confidence"], want)
    assert run.objects["confidence"].max() <= 0.6


# --------------------------------------------------------------------------- auto
def test_auto_uses_the_structure_model_only_for_fine_rgb_pixels(tmp_path):
    from borderwatch.methods import choose_method

    rgb = ("red", "green", "blue")
    assert choose_method("auto", pixel_m=0.5, band_names=rgb, n_bands=3)[0] == "structure"
    assert choose_method("auto", pixel_m=2.5, band_names=rgb, n_bands=3)[0] == "structure"
    name, why = choose_method("auto", pixel_m=3.0, band_names=rgb, n_bands=3)
    assert name == "combined" and "coarser than the structure model's 2.5 m" in why
    name, why = choose_method("auto", pixel_m=1.0, band_names=("nir", "swir1"), n_bands=2)
    assert name == "combined" and "no red/green/blue band" in why
    assert choose_method("cva", pixel_m=0.5, band_names=rgb, n_bands=3)[0] == "cva"
    b, a = _scene(tmp_path)
    run = detect(b, a, params=DetectParams(align=False))  # the default: auto
    p = run.change.params
    assert run.change.method == "structure" and p["method_requested"] == "auto"
    assert "so the structure model" in p["method_reason"] and p["model_sha256"]
    (tmp_path / "nir").mkdir()
    b2, a2 = _scene(tmp_path / "nir", names=("nir", "swir1", "swir2"))
    run = detect(b2, a2, params=DetectParams(align=False))
    assert run.change.method == "combined" and "model_sha256" not in run.change.params
    assert "no red/green/blue band" in run.change.params["method_reason"]


# --------------------------------------------------------------------------- the demo, default
@pytest.fixture(scope="module")
def demo_run():
    import geopandas as gpd

    from borderwatch.sample_data import sample_tiles_dir

    tiles = sample_tiles_dir()
    run = detect(tiles / "before.tif", tiles / "after.tif", aoi="helong")  # auto
    return run, gpd.read_file(tiles / "truth.geojson").to_crs(run.grid.crs)


def test_demo_default_is_the_structure_model_and_finds_no_false_structure(demo_run):
    run, truth = demo_run
    assert run.change.method == "structure" and run.change.params["method_requested"] == "auto"
    det = run.objects
    false = det[[not truth.intersects(g).any() for g in det.geometry]]
    assert len(false) == 0, false[["class", "area_m2"]]


def test_demo_buildings_have_footprints_without_their_shadows(demo_run):
    """Measured with the shipped model: buildings 1, 2, 3, 5 and 6 are found with their
    areas at 1.03-1.34 of the truth (shadows fall outside; the excess is the blur of
    1 m pixels resampled to 0.5 m); building 4 is a fragment, 7 and the 16 m2 tower are
    missed (model card, Limits). The fence ring is found in pieces, each a fence. The
    renderer is in the training mix (other seeds): these are in-distribution figures, a
    check of the product, not accuracy on real imagery (benchmarks/structure_cv.py)."""
    run, truth = demo_run
    det = run.objects
    for row in truth[truth["id"].isin([1, 2, 3, 5, 6])].itertuples():
        hits = det[det.intersects(row.geometry)]
        assert len(hits) == 1 and hits["class"].iloc[0] == "building", row.id
        ratio = hits.geometry.area.iloc[0] / row.geometry.area
        assert 0.8 <= ratio <= 1.4, (row.id, ratio)
    fence = truth[truth["class"] == "fence_or_wall"].geometry.iloc[0]
    pieces = det[det.intersects(fence)]
    assert len(pieces) and set(pieces["class"]) == {"fence_or_wall"}


@pytest.mark.parametrize("seed", [0, 1])
def test_no_change_pair_gives_no_structure(tmp_path, seed):
    """Season, illumination, noise and a sub-pixel shift alone: nothing new."""
    from borderwatch.synthetic import make_pair, write_pair

    paths = write_pair(make_pair(seed=seed, changes=False), tmp_path)
    run = detect(paths["before"], paths["after"])
    assert run.change.method == "structure" and len(run.objects) == 0
