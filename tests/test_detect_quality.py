"""The unsupervised score on the committed synthetic tiles: classes, lengths, alignment.

At 1 m with red, green and blue ``auto`` (the default) takes the structure model; these
known answers are the ``combined`` score's (the default for coarser imagery)."""

import geopandas as gpd
import pytest

from borderwatch.engine import DetectParams, detect, run_metadata
from borderwatch.sample_data import sample_tiles_dir


@pytest.fixture(scope="module")
def run_and_truth():
    tiles = sample_tiles_dir()
    run = detect(tiles / "before.tif", tiles / "after.tif", params=DetectParams(method="combined"))
    truth = gpd.read_file(tiles / "truth.geojson").to_crs(run.grid.crs)
    return run, truth


@pytest.mark.slow
def test_default_is_auto_and_combined_records_its_alignment(run_and_truth):
    run, _ = run_and_truth
    assert DetectParams().method == "auto" and DetectParams().threshold == "ki"
    assert run.change.params["method_reason"] == "combined (--method)"
    meta = run_metadata(run, hash_inputs=False)["parameters"]
    # The tiles carry a planted (0.35, -0.25) px shift of the after date.
    assert meta["shift_px"] == pytest.approx([-0.35, 0.25], abs=0.1)
    assert meta["residual_shift_px"] < 0.1
    assert (run.objects["residual_shift_px"] == meta["residual_shift_px"]).all()


def test_every_object_found_and_fence_classified(run_and_truth):
    run, truth = run_and_truth
    det = run.objects
    assert {"class", "length_m", "confidence"} <= set(det.columns)
    assert det["confidence"].between(0, 1).all()
    as_building = 0
    for row in truth.itertuples():
        hits = det[det.intersects(row.geometry)]
        assert len(hits), f"truth {row.id} missed"
        if row._2 == "fence_or_wall":
            fence = hits.loc[hits.area_m2.idxmax()]
            assert fence["class"] == "fence_or_wall"
            assert fence["length_m"] == pytest.approx(row.length_m, rel=0.2)
        else:
            as_building += "building" in set(hits["class"])
    # A watchtower standing on the fence line merges into the fence object.
    assert as_building >= (truth["class"] == "building").sum() - 1
