"""Dask execution equals the local run: LocalCluster with 2 worker processes (issue 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from test_engine import BLOCK, WHOLE_OFF, make_pair

from borderwatch.cli import main
from borderwatch.engine import DetectParams, detect

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as c:
        yield c


def _same(a, b) -> None:
    assert a.change.threshold == b.change.threshold
    np.testing.assert_array_equal(a.objects["n_pixels"], b.objects["n_pixels"])
    np.testing.assert_array_equal(a.objects["max_score"], b.objects["max_score"])
    np.testing.assert_allclose(a.objects["mean_score"], b.objects["mean_score"], rtol=1e-12)
    assert all(g.equals(w) for g, w in zip(a.objects.geometry, b.objects.geometry, strict=True))


@pytest.mark.slow
def test_local_cluster_equals_local_run(cluster, tmp_path: Path) -> None:
    b, a, _ = make_pair(tmp_path)
    params = DetectParams(method="cva", threshold="otsu", min_area_m2=100.0, **WHOLE_OFF)
    local = detect(b, a, params=params, block_size=BLOCK, mask_out=tmp_path / "local_mask.tif")
    remote = detect(
        b,
        a,
        params=params,
        block_size=BLOCK,
        scheduler=cluster.scheduler_address,
        mask_out=tmp_path / "dask_mask.tif",
    )
    assert len(local.objects) >= 4
    _same(local, remote)
    with rasterio.open(tmp_path / "local_mask.tif") as x:
        with rasterio.open(tmp_path / "dask_mask.tif") as y:
            np.testing.assert_array_equal(x.read(1), y.read(1))
    threads = detect(b, a, params=params, block_size=BLOCK, scheduler="threads")
    _same(local, threads)


@pytest.mark.slow
def test_batch_on_cluster_one_report_per_job(cluster, tmp_path: Path) -> None:
    d1, d2 = tmp_path / "p1", tmp_path / "p2"
    d1.mkdir()
    d2.mkdir()
    pairs = [make_pair(d1, seed=1)[:2], make_pair(d2, rows=400, cols=500, seed=2)[:2]]
    (d2 / "before_20190614.tif").rename(d2 / "b2.tif")
    pairs[1] = (d2 / "b2.tif", pairs[1][1])
    out = tmp_path / "reports"
    args = [
        "batch",
        "--out-dir",
        str(out),
        "--method",
        "cva",
        "--threshold",
        "otsu",
        "--min-area",
        "100",
        "--block-size",
        str(BLOCK),
        "--scheduler",
        cluster.scheduler_address,
    ]
    for bb, aa in pairs:
        args += ["--pair", str(bb), str(aa)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "batch.json").read_text())
    assert [j["status"] for j in summary["jobs"]] == ["ok", "ok"]
    for job, (bb, aa) in zip(summary["jobs"], pairs, strict=True):
        report = json.loads((out / job["report"]).read_text())
        local = detect(
            bb,
            aa,
            block_size=BLOCK,
            params=DetectParams(method="cva", threshold="otsu", min_area_m2=100.0, **WHOLE_OFF),
        )
        assert len(report["features"]) == len(local.objects) == job["detections"]
        assert report["borderwatch"]["parameters"]["threshold_value"] == local.change.threshold
