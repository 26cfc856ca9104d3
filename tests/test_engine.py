"""One engine: the same product at every block size, for every method (issue 12).

Known answers: a textured 4-band pair with planted changes across block edges (every
128 px) and a nodata corner in one date. A scene as one block and as many blocks of
64-256 px must give the same objects, attributes and ids, for every method, for
``--normalise`` and for ``--model``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from click.testing import CliRunner
from shapely.geometry import Point

from borderwatch.cli import main
from borderwatch.engine import DetectParams, detect, make_plan
from borderwatch.engine.plan import block_layout
from borderwatch.errors import InputError
from borderwatch.io import choose_grid, open_date
from borderwatch.products.schema import analyst_table

TILE = 64
#: Parameters without the whole-scene steps (co-registration, classification).
WHOLE_OFF = {"align": False, "normalise": "none", "classify": False}
BLOCK = 128
ORIGIN = Affine(1.0, 0.0, 500000.0, 0.0, -1.0, 4720000.0)


def write_scene(path: Path, data: np.ndarray, *, nodata: float | None = 0) -> Path:
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": "EPSG:32652",
        "transform": ORIGIN,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return path


def make_pair(tmp_path: Path, rows: int = 600, cols: int = 700, seed: int = 4):
    """Textured 4-band pair with planted changes across block edges (every 128 px)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    base = 800 + 300 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    before = np.stack([base * g for g in (1.0, 1.1, 0.9, 1.6)])
    before = before + rng.normal(0, 25, before.shape)
    gain = np.array([1.05, 1.02, 0.98, 1.1])[:, None, None]
    after = before * gain + rng.normal(0, 25, before.shape)
    planted = [
        (110, 150, 90, 170),  # crosses the row edge 128 and the col edge 128
        (250, 262, 240, 270),  # crosses the corner (256, 256)
        (380, 386, 20, 660),  # a long thin wall over five blocks
        (500, 530, 500, 520),  # inside one block
        (120, 132, 380, 390),  # small: split by the edge at 128, kept only as a whole
    ]
    for r0, r1, c0, c1 in planted:
        after[:, r0:r1, c0:c1] += np.array([900, 1000, 1200, -600])[:, None, None]
    before = np.clip(before, 1, 65535).astype(np.uint16)
    after = np.clip(after, 1, 65535).astype(np.uint16)
    after[:, 560:, 640:] = 0  # nodata corner in one date only
    b = write_scene(tmp_path / "before_20190614.tif", before)
    a = write_scene(tmp_path / "after_20210902.tif", after)
    return b, a, planted


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    return make_pair(tmp_path_factory.mktemp("pair"))


def _grid(b: Path, a: Path):
    bs, as_ = open_date(b), open_date(a)
    return choose_grid([bs, as_], match=bs)


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


def _product(run) -> object:
    """The analyst table detect writes (ids from the inputs' hashes)."""
    return analyst_table(
        run.objects,
        input_hashes=tuple(run.input_sha256.values()),
        before_date=run.before.source.date,
        after_date=run.after.source.date,
    )


def assert_same_product(one, many) -> None:
    """Same threshold, objects, attributes, ids and polygons."""
    assert many.change.threshold == pytest.approx(one.change.threshold, rel=1e-9)
    a, b = _product(one), _product(many)
    assert list(a.columns) == list(b.columns)
    assert list(a["id"]) == list(b["id"])
    for col in a.columns:
        if col == "geometry":
            assert all(g.equals(w) for g, w in zip(a.geometry, b.geometry, strict=True))
        elif a[col].dtype.kind == "f":
            np.testing.assert_allclose(a[col], b[col], rtol=1e-6, atol=1e-9, err_msg=col)
        else:
            assert list(a[col]) == list(b[col]), col


def _train_model(pair, tmp_path: Path) -> Path:
    from borderwatch.evaluation.datasets import load_labelled
    from borderwatch.methods.training import save_model, train_model

    b, a, planted = pair
    truth = np.zeros((600, 700), np.uint8)
    for r0, r1, c0, c1 in planted:
        truth[r0:r1, c0:c1] = 1
    t = write_scene(tmp_path / "truth.tif", truth[None], nodata=None)
    labelled = load_labelled([b], [a], t)
    model = train_model([labelled], samples_per_pair=4000, max_iter=40)
    return save_model(model, tmp_path / "model.pkl")


@pytest.mark.parametrize(
    "params",
    [
        DetectParams(),  # the default: combined, ki, co-registration, classification
        DetectParams(method="cva", threshold="otsu", min_area_m2=100.0, **WHOLE_OFF),
        DetectParams(method="cva", threshold=3.0, min_area_m2=100.0),
        DetectParams(method="irmad", threshold="chi2", min_area_m2=100.0),
        DetectParams(method="irmad", threshold="ki", min_area_m2=100.0, classify=False),
        DetectParams(method="index", threshold="otsu", min_area_m2=50.0),
        DetectParams(normalise="histogram", threshold="otsu"),
        DetectParams(method="cva", normalise="irmad", threshold="otsu", min_area_m2=100.0),
    ],
    ids=[
        "default",
        "cva-otsu",
        "cva-fixed",
        "irmad-chi2",
        "irmad-ki",
        "index",
        "hist",
        "norm-irmad",
    ],
)
def test_one_block_equals_many_blocks(pair, params) -> None:
    b, a, planted = pair
    grid = _grid(b, a)
    one = detect(b, a, params=params, grid=grid, block_size=1024)
    many = detect(b, a, params=params, grid=grid, block_size=BLOCK)
    assert one.blocks == 1 and many.blocks > 20
    assert len(one.objects) >= 1
    assert_same_product(one, many)


def test_model_one_block_equals_many_blocks(pair, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    b, a, planted = pair
    model = _train_model(pair, tmp_path)
    params = DetectParams(model=str(model), min_area_m2=100.0)
    grid = _grid(b, a)
    one = detect(b, a, params=params, grid=grid, block_size=1024)
    many = detect(b, a, params=params, grid=grid, block_size=BLOCK)
    assert one.change.method == "model" and one.change.threshold == 0.5
    assert len(one.objects) >= len(planted) - 1
    assert len(one.change.params["model_sha256"]) == 64  # the run records the model's hash
    assert_same_product(one, many)


def test_planted_changes_found_across_block_edges(pair) -> None:
    b, a, planted = pair
    run = detect(
        b, a, params=DetectParams(method="cva", threshold="otsu", **WHOLE_OFF), block_size=BLOCK
    )
    found = 0
    for r0, r1, c0, c1 in planted:
        cx, cy = run.grid.transform * ((c0 + c1) / 2, (r0 + r1) / 2)
        found += any(g.contains(Point(cx, cy)) for g in run.objects.geometry)
    assert found == len(planted)


def test_score_and_mask_rasters_written_in_the_object_pass(pair, tmp_path: Path) -> None:
    b, a, _ = pair
    params = DetectParams(method="cva", threshold="otsu", min_area_m2=100.0)
    run = detect(
        b,
        a,
        params=params,
        block_size=BLOCK,
        score_out=tmp_path / "s.tif",
        mask_out=tmp_path / "m.tif",
    )
    detect(b, a, params=params, block_size=1024, score_out=tmp_path / "s1.tif")
    np.testing.assert_array_equal(_read(tmp_path / "s.tif"), _read(tmp_path / "s1.tif"))
    mask = _read(tmp_path / "m.tif")
    assert int(mask.sum()) == int(run.objects["n_pixels"].sum())  # the final detections
    with rasterio.open(tmp_path / "m.tif") as ds:
        assert ds.profile["tiled"] and ds.overviews(1)  # a Cloud Optimized GeoTIFF


def test_block_layout_on_tile_edges() -> None:
    layout = block_layout((1000, 600), block_size=300, tile=(256, 256))
    assert layout.row_edges == (0, 512, 1000) and layout.col_edges == (0, 512, 600)


def test_plan_small_scene_is_one_block_fitted_whole(pair) -> None:
    b, a, _ = pair
    plan = make_plan(b, a)
    assert len(plan.blocks) == 1 and plan.sample == [(0, 0, *plan.grid.shape)]


@pytest.mark.parametrize(("resolution", "radius"), [(None, 1), (13.0, 1), (30.0, 0)])
def test_cleanup_radius_follows_the_pixel_size(pair, resolution, radius) -> None:
    """1 px while a 3 x 3 kernel fits inside a 40 m building, none at Landsat's 30 m."""
    b, a, _ = pair
    plan = make_plan(b, a, params=DetectParams(resolution=resolution))
    assert (plan.params.opening_px, plan.params.closing_px) == (radius, radius)
    assert plan.clean(1.0).opening_px == radius
    given = make_plan(b, a, params=DetectParams(resolution=resolution, opening_px=2))
    assert (given.params.opening_px, given.params.closing_px) == (2, radius)


def test_bad_parameters_are_refused_once() -> None:
    with pytest.raises(InputError, match="unknown method"):
        DetectParams(method="magic")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="chi2"):
        DetectParams(method="cva", threshold="chi2")
    with pytest.raises(InputError, match="opening_px"):
        DetectParams(opening_px=-1)


def test_model_on_other_bands_is_refused(pair, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    b, a, _ = pair
    model = _train_model(pair, tmp_path)
    with rasterio.open(b) as ds:
        three = ds.read([1, 2, 3])
    b3 = write_scene(tmp_path / "b3.tif", three)
    a3 = write_scene(tmp_path / "a3.tif", three)
    with pytest.raises(InputError, match="model was trained on bands"):
        # Both dates hold the same pixels: allowed here, only the bands are under test.
        detect(b3, a3, params=DetectParams(model=str(model)), allow_reversed=True)


def test_large_scene_cli_gpkg_evidence_verify(tmp_path: Path) -> None:
    """A scene over 20 Mpx writes a styled GeoPackage and a packet that verify accepts."""
    rows, cols = 4608, 4608  # 21.2 Mpx
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    base = 800 + 300 * np.sin(xx / 37.0) * np.cos(yy / 23.0)
    rng = np.random.default_rng(1)
    before = np.stack([base, base * 1.1, base * 0.9]) + rng.normal(0, 20, (3, rows, cols))
    after = before + rng.normal(0, 20, before.shape)
    after[:, 2000:2040, 3000:3060] += np.array([900, 1000, 1100])[:, None, None]
    b = write_scene(tmp_path / "before_20190614.tif", before.astype(np.uint16))
    a = write_scene(tmp_path / "after_20210902.tif", after.astype(np.uint16))
    del before, after, base, yy, xx
    out = tmp_path / "big.gpkg"
    res = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(b),
            "--after",
            str(a),
            "--out",
            str(out),
            "--evidence",
            str(tmp_path / "packet"),
            "--reviews",
            str(tmp_path / "reviews"),
            *("--method", "combined"),  # the products of a large scene, not the scorer
        ],
    )
    assert res.exit_code == 0, res.output
    import geopandas as gpd

    det = gpd.read_file(out, layer="detections")
    assert {"id", "review", "note", "score", "class"} <= set(det.columns)
    assert len(det) >= 1
    manifest = json.loads((tmp_path / "packet" / "manifest.json").read_text())
    assert manifest["parameters"]["blockwise"]["blocks"] > 1
    res = CliRunner().invoke(main, ["verify", str(tmp_path / "packet")])
    assert res.exit_code == 0, res.output


def test_evaluate_scores_what_detect_writes(pair, tmp_path: Path) -> None:
    """``evaluate`` against detect's own --mask-out as truth gives F1 = 1.0 exactly."""
    b, a, _ = pair
    mask = tmp_path / "mask.tif"
    args = ["--before", str(b), "--after", str(a), "--method", "cva", "--min-area", "100"]
    res = CliRunner().invoke(
        main, ["detect", *args, "--mask-out", str(mask), "--reviews", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["evaluate", *args, "--truth", str(mask), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["detections"]["f1"] == 1.0 and out["detections"]["fp"] == 0
    assert out["n_detections"] >= 4
    assert out["pixels"]["recall"] == 1.0  # the pixel mask before object filters holds them
    # object by object too: each detection is one component of its own mask, area for area
    assert out["object_tp"] == out["n_detections"] and out["object_fp"] == out["object_fn"] == 0
    assert out["object_f1"] == 1.0 and out["median_area_ratio"] == 1.0
    assert out["pixel_size_source"] == "georeferencing"


def test_batch_writes_per_job_what_detect_writes(pair, tmp_path: Path) -> None:
    import geopandas as gpd

    b, a, _ = pair
    opts = ["--method", "cva", "--min-area", "100"]
    res = CliRunner().invoke(
        main,
        ["batch", "--pair", str(b), str(a), "--out-dir", str(tmp_path / "batch"), "--gpkg", *opts],
    )
    assert res.exit_code == 0, res.output
    job = json.loads((tmp_path / "batch" / "batch.json").read_text())["jobs"][0]
    stem = Path(job["report"]).stem
    res = CliRunner().invoke(
        main,
        ["detect", "--before", str(b), "--after", str(a), "--out", str(tmp_path / "d.gpkg"), *opts],
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(
        main,
        [
            "detect",
            "--before",
            str(b),
            "--after",
            str(a),
            "--out",
            str(tmp_path / "d.geojson"),
            *opts,
        ],
    )
    assert res.exit_code == 0, res.output
    import pyogrio

    got = tmp_path / "batch" / f"{stem}.gpkg"
    assert [n for n, _ in pyogrio.list_layers(got)] == [
        n for n, _ in pyogrio.list_layers(tmp_path / "d.gpkg")
    ]
    for x, y in (
        (got, tmp_path / "d.gpkg"),
        (tmp_path / "batch" / f"{stem}.geojson", tmp_path / "d.geojson"),
    ):
        layer = {"layer": "detections"} if x.suffix == ".gpkg" else {}
        dx, dy = gpd.read_file(x, **layer), gpd.read_file(y, **layer)
        assert list(dx.columns) == list(dy.columns)
        assert list(dx["id"]) == list(dy["id"]) and len(dx) >= 4
    assert (tmp_path / "batch" / f"{stem}.qml").read_text() == (tmp_path / "d.qml").read_text()
