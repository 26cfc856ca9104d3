"""The default detection (combined, ki, co-registration, classification) block by block.

Known answers: a pair whose after date is the before texture moved by a known
sub-pixel shift, with planted construction (brighter, less NIR) across block edges.
The same scene as one block (fitted on the whole scene) is the reference.

Stated tolerances (issue 4):

- sample = whole scene (scenes up to ``sample_px``): threshold equal to 1e-9
  relative, the same shift, the same objects with the same classes and pixel counts;
- sample of ~15 % of the scene (seed 0): threshold within 20 % relative, the same
  number of objects, each in-memory object matched by a blockwise one with polygon
  IoU >= 0.95. (The KI threshold of a small sample is not stable on this scene: other
  seeds moved it by -7 % to +120 % while the objects still matched with IoU >= 0.93.)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_engine import _grid, _read, write_scene

from borderwatch.cli import main
from borderwatch.engine import DetectParams, detect, make_plan
from borderwatch.engine.read import TileReader, read_pair

BLOCK = 128
SHIFT = (0.6, -0.4)  # (row, col) pixels the after date is displaced by
PLANTED = [
    (110, 150, 90, 170),  # crosses the row edge 128 and the col edge 128
    (250, 262, 240, 270),  # crosses the corner (256, 256)
    (380, 386, 20, 660),  # a long thin wall over five blocks
    (500, 530, 500, 520),  # inside one block
]


def texture(rows: int, cols: int, dy: float = 0.0, dx: float = 0.0) -> np.ndarray:
    """Smooth analytic ground texture sampled at ``(row - dy, col - dx)``."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    y, x = y - dy, x - dx
    return (
        800
        + 200 * np.sin(x / 7.3) * np.cos(y / 5.1)
        + 150 * np.sin((x + 2 * y) / 11.7)
        + 100 * np.cos((3 * x - y) / 9.1)
    )


def make_shifted_pair(tmp_path: Path, rows: int = 600, cols: int = 700, seed: int = 7):
    rng = np.random.default_rng(seed)
    gains = np.array([1.0, 1.1, 0.9, 1.6])[:, None, None]
    before = texture(rows, cols) * gains + rng.normal(0, 8, (4, rows, cols))
    after = texture(rows, cols, *SHIFT) * gains * 1.03 + rng.normal(0, 8, (4, rows, cols))
    for r0, r1, c0, c1 in PLANTED:  # new roofs: brighter in the visible, less NIR
        after[:, r0:r1, c0:c1] += np.array([900, 1000, 1100, -700])[:, None, None]
    after[:, 560:, 640:] = 0  # nodata corner in one date only
    b = write_scene(tmp_path / "before_20190614.tif", np.clip(before, 0, 65535).astype(np.uint16))
    a = write_scene(tmp_path / "after_20210902.tif", np.clip(after, 0, 65535).astype(np.uint16))
    return b, a


@pytest.fixture
def shifted(tmp_path: Path):
    return make_shifted_pair(tmp_path)


PARAMS = DetectParams(min_area_m2=100.0)  # the defaults: combined, ki, align, classify


@pytest.mark.slow
def test_default_many_blocks_equals_one_block(shifted, tmp_path: Path) -> None:
    b, a = shifted
    grid = _grid(b, a)
    ref = detect(b, a, params=PARAMS, grid=grid, block_size=1024, mask_out=tmp_path / "ref.tif")
    run = detect(b, a, params=PARAMS, grid=grid, block_size=BLOCK, mask_out=tmp_path / "mask.tif")
    assert run.blocks == 30
    # A shift is estimated and applied to every block; same provenance as in memory.
    assert np.hypot(*run.change.params["shift_px"]) >= 0.02
    for key in ("shift_px", "residual_shift_px", "align", "normalise", "threshold"):
        assert run.change.params[key] == ref.change.params[key]
    assert run.change.params["blockwise"]["sample"]["whole_scene"]
    np.testing.assert_allclose(run.change.threshold, ref.change.threshold, rtol=1e-9)
    np.testing.assert_array_equal(_read(tmp_path / "mask.tif"), _read(tmp_path / "ref.tif"))
    got, want = run.objects, ref.objects
    assert len(got) == len(want) >= len(PLANTED)
    assert list(got.columns) == list(want.columns)
    assert list(got["class"]) == list(want["class"])
    np.testing.assert_array_equal(got["n_pixels"], want["n_pixels"])
    for col in ("mean_score", "max_score", "length_m", "width_m", "confidence"):
        np.testing.assert_allclose(got[col], want[col], rtol=1e-6, err_msg=col)
    assert all(g.equals(w) for g, w in zip(got.geometry, want.geometry, strict=True))


@pytest.mark.slow
def test_sampled_statistics_within_stated_tolerance(shifted) -> None:
    b, a = shifted
    grid = _grid(b, a)
    ref = detect(b, a, params=PARAMS, grid=grid)
    run = detect(b, a, params=PARAMS, grid=grid, block_size=BLOCK, sample_px=100_000)
    sample = run.change.params["blockwise"]["sample"]
    assert not sample["whole_scene"] and sample["valid_pixels"] < 0.25 * 600 * 700
    assert abs(run.change.threshold / ref.change.threshold - 1) < 0.2
    assert len(run.objects) == len(ref.objects)
    for want in ref.objects.geometry:
        iou = max(want.intersection(g).area / want.union(g).area for g in run.objects.geometry)
        assert iou >= 0.95, iou


def test_tile_reader_equals_direct_reads(shifted) -> None:
    b, a = shifted
    job = make_plan(b, a, params=PARAMS, grid=_grid(b, a))
    wins = [(0, 0, 128, 128), (120, 250, 140, 77), (590, 690, 10, 10), (0, 0, 600, 700)]
    wins += [(590, 690, 20, 20), (-5, -7, 20, 30)]  # partly outside the files: NaN there
    with TileReader(job.source, wins, threads=2) as reader:
        for w in wins:
            got, want = reader.read(w), read_pair(job.source, w)
            for name in ("before", "after", "valid_before", "valid_after"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def test_cli_default_detect_runs_blockwise(shifted, tmp_path: Path) -> None:
    b, a = shifted
    out = tmp_path / "det.geojson"
    args = ["detect", "--before", str(b), "--after", str(a), "--min-area", "100"]
    res = CliRunner().invoke(main, [*args, "--block-size", "128", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    meta = doc["borderwatch"]["parameters"]
    assert meta["method"] == "combined" and meta["align"] is True
    assert meta["blockwise"]["blocks"] > 20
    assert {f["properties"]["class"] for f in doc["features"]} <= {
        "building",
        "fence_or_wall",
        "other",
    }
    assert len(doc["features"]) >= len(PLANTED)


def test_tile_reader_float_nan_unequal_files_and_outside(tmp_path: Path) -> None:
    # Float files without a nodata tag: NaN and infinities are invalid, as read_pair and
    # the in-memory reader have it. The after file is smaller than the before file, and
    # some windows lie partly or wholly outside one or both files.
    rng = np.random.default_rng(7)
    before = rng.normal(800, 50, (4, 150, 170)).astype(np.float32)
    after = rng.normal(800, 50, (4, 140, 150)).astype(np.float32)
    before[:, 10:14, 20:25] = np.nan
    before[2, 100, 100] = np.inf
    after[1, 30:33, 40:44] = np.nan
    b = write_scene(tmp_path / "b.tif", before, nodata=None)
    a = write_scene(tmp_path / "a.tif", after, nodata=None)
    job = make_plan(b, a, params=DetectParams(method="cva", threshold=3.0), grid=_grid(b, a))
    assert job.source.native is not None
    wins = [(0, 0, 150, 170), (5, 15, 40, 40), (130, 140, 20, 30), (145, 155, 5, 10)]
    wins += [(-4, -6, 20, 20), (160, 180, 8, 8)]
    with TileReader(job.source, wins, threads=2) as reader:
        for w in wins:
            got, want = reader.read(w), read_pair(job.source, w)
            for name in ("before", "after", "valid_before", "valid_after"):
                np.testing.assert_array_equal(getattr(got, name), getattr(want, name), name)
    assert not want.valid_before.any()  # the last window is outside both files
