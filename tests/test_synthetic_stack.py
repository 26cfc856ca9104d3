"""Tests for borderwatch.synthetic.stack: the planted truth matches what was drawn."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from numpy.testing import assert_allclose, assert_array_equal
from rasterio.features import rasterize
from scipy import ndimage
from skimage.registration import phase_cross_correlation

from borderwatch.errors import InputError, OutputExistsError
from borderwatch.synthetic.stack import MASK_CLOUD, StackTruth, make_stack, stack_dates

N_DATES = 6
SEED = 0


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, StackTruth]:
    """The same seed built, not built, and without clouds: they differ only by that."""
    root = tmp_path_factory.mktemp("stacks")
    return {
        "built": make_stack(root / "built", seed=SEED, dates=N_DATES),
        "empty": make_stack(root / "empty", seed=SEED, dates=N_DATES, construction=False),
        "clear": make_stack(root / "clear", seed=SEED, dates=N_DATES, clouds=False),
    }


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().astype(np.int32)


def footprint(truth: StackTruth, sid: int, i: int, *, erode: int = 1) -> np.ndarray:
    """Pixels of a structure's footprint as displaced on date ``i``, eroded by ``erode`` px."""
    geom = truth.structures.set_index("id").loc[sid, "geometry"]
    dr, dc = truth.dates[i].shift_px
    px = truth.transform.a
    moved = shapely.affinity.translate(geom, xoff=dc * px, yoff=-dr * px)
    with rasterio.open(truth.dates[i].path) as src:
        shape = (src.height, src.width)
    fp = rasterize([(moved, 1)], out_shape=shape, transform=truth.transform, dtype="uint8") > 0
    return ndimage.binary_erosion(fp, iterations=erode) if erode else fp


def test_stack_csv_lists_every_date_with_its_mask(stacks: dict[str, StackTruth]) -> None:
    t = stacks["built"]
    with open(t.csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["date", "path", "credit", "scene_id", "mask"]
    assert [r["date"] for r in rows] == list(stack_dates(N_DATES))
    for r, d in zip(rows, t.dates, strict=True):
        assert (t.folder / r["path"]).is_file()
        assert r["scene_id"] == d.scene_id
        assert "Synthetic" in r["credit"]
        assert (r["mask"] != "") == (d.cloud_share > 0)
        if r["mask"]:
            assert (t.folder / r["mask"]).is_file()
    assert sum(r["mask"] != "" for r in rows) >= 2  # several cloudy dates
    with open(stacks["clear"].csv_path, newline="") as f:
        assert all(r["mask"] == "" for r in csv.DictReader(f))


def test_images_share_one_grid_and_are_marked_synthetic(stacks: dict[str, StackTruth]) -> None:
    t = stacks["built"]
    for d in t.dates:
        with rasterio.open(d.path) as src:
            assert src.crs.to_epsg() == 32652
            assert src.transform == t.transform
            assert (src.count, src.dtypes[0], src.nodata) == (4, "uint16", 0)
            assert src.descriptions == ("blue", "green", "red", "nir")
            tags = src.tags()
            assert tags["SYNTHETIC"] == "yes"
            assert tags["ACQUISITION_DATE"] == d.date
            assert tags["SCENE_ID"] == d.scene_id


def test_truth_json_round_trips(stacks: dict[str, StackTruth]) -> None:
    t = stacks["built"]
    doc = json.loads(t.truth_path.read_text())
    assert doc["synthetic"] is True and doc["crs"] == "EPSG:32652"
    s = t.structures
    assert [x["id"] for x in doc["structures"]] == list(s["id"])
    assert [x["built"] for x in doc["structures"]] == list(s["built"])
    assert [x["removed"] for x in doc["structures"]] == list(s["removed"])
    for x, g in zip(doc["structures"], s.geometry, strict=True):
        assert shapely.from_wkt(x["wkt"]).equals_exact(g, 1e-6)
    assert [d["date"] for d in doc["dates"]] == [d.date for d in t.dates]
    assert [d["shift_px"] for d in doc["dates"]] == [list(d.shift_px) for d in t.dates]


def test_plan_has_buildings_a_fence_and_one_transient(stacks: dict[str, StackTruth]) -> None:
    s = stacks["built"].structures
    dates = [d.date for d in stacks["built"].dates]
    assert set(s["class"]) == {"building", "fence_or_wall"}
    assert s["area_m2"].min() <= 20 and s["area_m2"].max() >= 500  # several sizes
    assert all(dates[1] <= b <= dates[-2] for b in s["built"])  # absent first, present twice
    gone = s[s["removed"].notna()]
    assert len(gone) == 1 and gone["removed"].iloc[0] > gone["built"].iloc[0]
    assert len(stacks["empty"].structures) == 0


def test_structure_pixels_change_exactly_while_it_stands(stacks: dict[str, StackTruth]) -> None:
    # The built and empty stacks share seasons, clouds, shifts and noise, so they differ
    # only where a structure stands on a date and can be seen.
    t = stacks["built"]
    checked = {"present": 0, "absent": 0, "hidden": 0}
    for i, d in enumerate(t.dates):
        diff = np.abs(read(d.path) - read(stacks["empty"].dates[i].path)).mean(axis=0)
        for sid in t.structures["id"]:
            fp = footprint(t, int(sid), i)
            state = t.state(int(sid), d.date, min_clear=1.0)
            if (
                d.masked_share.get(int(sid), 0) == 1.0
                or d.nodata_share_by_id.get(int(sid), 0) == 1.0
            ):
                assert diff[fp].mean() < 5, (sid, d.date)  # under cloud or outside: unseen
                checked["hidden"] += 1
            elif state == "present":
                assert diff[fp].mean() > 200, (sid, d.date)
                checked["present"] += 1
            elif state == "absent":
                assert diff[fp].mean() < 5, (sid, d.date)
                checked["absent"] += 1
    assert min(checked.values()) >= 3


def test_masks_cover_the_cloud_pixels(stacks: dict[str, StackTruth]) -> None:
    t, clear = stacks["built"], stacks["clear"]
    cloudy = [i for i, d in enumerate(t.dates) if d.mask_path is not None]
    assert cloudy
    for i in cloudy:
        d = t.dates[i]
        changed = np.abs(read(d.path) - read(clear.dates[i].path)).max(axis=0) > 30
        with rasterio.open(d.mask_path) as src:
            assert src.transform == t.transform and src.dtypes[0] == "uint8"
            mask = src.read(1)
        assert changed.any()
        assert not (changed & (mask == 0)).any()  # every cloud and shadow pixel is masked
        assert (mask == MASK_CLOUD).any() and set(np.unique(mask)) <= {0, 1, 2}
        # the mask is the cloud grown by 2 px, not the whole scene
        assert (mask > 0).sum() < 2 * changed.sum() + 4000
        assert_allclose((mask > 0).mean(), d.cloud_share, atol=1e-4)
    for i, d in enumerate(t.dates):
        if d.mask_path is None:
            assert_array_equal(read(d.path), read(clear.dates[i].path))


def test_clouds_hide_a_structure_on_its_built_date_and_a_standing_one(
    stacks: dict[str, StackTruth],
) -> None:
    t = stacks["built"]
    built = t.structures.set_index("id")["built"]
    hidden = [(sid, d.date) for d in t.dates for sid, v in d.masked_share.items() if v == 1.0]
    assert any(built[sid] == date for sid, date in hidden)  # first visible under cloud
    assert any(built[sid] < date for sid, date in hidden)  # standing, under cloud
    for sid, date in hidden:
        assert t.state(sid, date) == "unassessable"


def test_the_nodata_date_has_nodata_where_stated(stacks: dict[str, StackTruth]) -> None:
    t = stacks["built"]
    holed = [d for d in t.dates if d.nodata_region is not None]
    assert len(holed) == 1
    d = holed[0]
    img = read(d.path)
    empty = (img == 0).all(axis=0)
    region = rasterize([(d.nodata_region, 1)], out_shape=empty.shape, transform=t.transform) > 0
    assert 0.05 < d.nodata_share < 0.6
    assert_allclose(empty.mean(), d.nodata_share, atol=1e-5)
    assert (empty != region).sum() <= empty.shape[0]  # at most the edge's pixels differ
    assert d.nodata_share_by_id and all(
        t.state(k, d.date) == "unassessable"
        for k in d.nodata_share_by_id
        if d.nodata_share_by_id[k] > 0.5
    )
    others = [x for x in t.dates if x is not d]
    assert all(not (read(x.path) == 0).all(axis=0).any() for x in others)


def test_misregistration_is_as_recorded(stacks: dict[str, StackTruth]) -> None:
    t = stacks["empty"]
    ref = read(t.dates[0].path)[3].astype(float)
    shifts = np.array([d.shift_px for d in t.dates])
    assert np.abs(shifts).max() >= 1.5  # a few-pixel shift among them
    for d in t.dates[1:]:
        if d.cloud_share or d.nodata_share:
            continue
        mov = read(d.path)[3].astype(float)
        est, _, _ = phase_cross_correlation(ref, mov, upsample_factor=20)
        assert_allclose(-est, d.shift_px, atol=0.2)


def test_tightest_bracket_skips_unassessable_dates(stacks: dict[str, StackTruth]) -> None:
    t = stacks["built"]
    dates = [d.date for d in t.dates]
    for sid, built in zip(t.structures["id"], t.structures["built"], strict=True):
        lo, hi = t.tightest_bracket(int(sid))
        assert lo is None or lo < built <= hi
        ok = [x for x in dates if t.state(int(sid), x) != "unassessable"]
        assert hi == min(x for x in ok if x >= built)
        assert all(not (lo or "") < x < built for x in ok)


def test_same_seed_same_files_other_seed_other_files(
    stacks: dict[str, StackTruth], tmp_path: Path
) -> None:
    again = make_stack(tmp_path / "again", seed=SEED, dates=N_DATES)
    base = stacks["built"]
    assert again.truth_path.read_text() == base.truth_path.read_text()
    for a, b in zip(again.dates, base.dates, strict=True):
        assert_array_equal(read(a.path), read(b.path))
    other = make_stack(tmp_path / "other", seed=SEED + 1, dates=N_DATES)
    assert not np.array_equal(read(other.dates[0].path), read(base.dates[0].path))


def test_bad_arguments_and_existing_output(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least 4"):
        make_stack(tmp_path / "a", seed=0, dates=3)
    with pytest.raises(InputError, match="increasing"):
        make_stack(
            tmp_path / "a", seed=0, dates=["2020-01-01", "2019-01-01", "2021-01-01", "2022-01-01"]
        )
    with pytest.raises(InputError, match="ISO"):
        make_stack(
            tmp_path / "a", seed=0, dates=["2020-01-01", "2020-13-01", "2021-01-01", "2022-01-01"]
        )
    with pytest.raises(InputError, match="smaller than"):
        make_stack(tmp_path / "a", seed=0, size_px=256)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "STACK.csv").write_text("date,path\n")
    with pytest.raises(OutputExistsError, match="STACK.csv"):
        make_stack(tmp_path / "b", seed=0, dates=4)
