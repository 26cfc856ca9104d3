"""The default single-pass blockwise detection on Dask equals the local run (issue 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_blocks_default import BLOCK, PARAMS, make_shifted_pair

from borderwatch.engine import detect

distributed = pytest.importorskip("distributed")


@pytest.mark.slow
def test_default_method_on_local_cluster_equals_local_run(tmp_path: Path) -> None:
    b, a = make_shifted_pair(tmp_path)
    local = detect(b, a, params=PARAMS, block_size=BLOCK, sample_px=100_000)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = detect(
            b,
            a,
            params=PARAMS,
            block_size=BLOCK,
            sample_px=100_000,
            scheduler=cluster.scheduler_address,
        )
    assert remote.change.params["blockwise"]["scheduler"] == cluster.scheduler_address
    assert remote.change.threshold == local.change.threshold
    assert remote.change.params["shift_px"] == local.change.params["shift_px"]
    assert len(local.objects) >= 4
    assert list(remote.objects["class"]) == list(local.objects["class"])
    for col in ("n_pixels", "max_score", "confidence"):
        np.testing.assert_array_equal(remote.objects[col], local.objects[col])
    assert all(
        g.equals(w) for g, w in zip(remote.objects.geometry, local.objects.geometry, strict=True)
    )
