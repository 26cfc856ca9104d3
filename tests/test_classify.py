import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from borderwatch.io import Grid
from borderwatch.methods.indices import band_roles, compute_indices, index_change
from borderwatch.objects.classify import (
    classify_objects,
    object_confidence,
)
from borderwatch.objects.construction import construction_direction
from borderwatch.objects.polygons import mask_to_objects

GRID = Grid(CRS.from_epsg(32652), Affine(1.0, 0, 500000.0, 0, -1.0, 4700000.0), (200, 200))


def planted():
    """A 12 x 20 m building, a 3 m wide 60 x 60 m fence ring and an irregular blob."""
    mask = np.zeros(GRID.shape, bool)
    mask[20:32, 20:40] = True  # building
    mask[100:160, 100:160] = True  # fence ring, 3 m wide
    mask[103:157, 103:157] = False
    yy, xx = np.mgrid[:200, :200]
    blob = (yy - 40) ** 2 / 144 + (xx - 150) ** 2 / 25 < 1
    blob |= (yy - 52) ** 2 + (xx - 160) ** 2 < 36
    blob |= (np.abs(yy - 45) < 2) & (np.abs(xx - 168) < 12)
    mask |= blob
    return mask


def test_shapes_are_classified_with_lengths():
    mask = planted()
    score = np.where(mask, 6.0, 0.0)
    objs = mask_to_objects(mask, score, GRID)
    out = classify_objects(objs, mask, np.ones(GRID.shape), pixel_m=1.0, threshold=2.0)
    cls = dict(zip(out.geometry.centroid.x.round().astype(int) - 500000, out["class"], strict=True))
    assert cls[30] == "building"
    assert cls[130] == "fence_or_wall"
    assert "other" in cls.values()
    fence = out[out["class"] == "fence_or_wall"].iloc[0]
    # Centre line of a 60 m square ring, 3 m wide: 4 x 57 m.
    assert fence.length_m == pytest.approx(4 * 57, rel=0.08)
    assert fence.width_m == pytest.approx(3, rel=0.2)
    assert out.loc[out["class"] == "building", "length_m"].iloc[0] == pytest.approx(20, abs=1.5)
    assert out["confidence"].between(0, 1).all()
    assert (out["residual_shift_px"] == 0).all()


def test_straight_wall_is_fence_with_its_length():
    mask = np.zeros(GRID.shape, bool)
    mask[50:52, 20:100] = True  # 2 m x 80 m wall
    objs = mask_to_objects(mask, mask * 5.0, GRID)
    out = classify_objects(objs, mask, np.ones(GRID.shape), pixel_m=1.0, threshold=2.0)
    assert list(out["class"]) == ["fence_or_wall"]
    assert out.length_m.iloc[0] == pytest.approx(79, abs=2)


def test_direction_filter_drops_regreening_and_weak_objects():
    rng = np.random.default_rng(0)
    before = rng.normal(1000, 30, (4, 100, 100))
    before[3] += 1500  # vegetated: high NIR
    after = before + rng.normal(0, 30, before.shape)
    after[:, 10:20, 10:20] = 2500  # new bright roof on grass
    after[3, 60:70, 60:70] += 1500  # field greening up: NIR up, brightness up a bit
    after[:3, 60:70, 60:70] -= 300
    names = ["B02", "B03", "B04", "B08"]
    valid = np.ones((100, 100), bool)
    d = construction_direction(before, after, valid, band_names=names)
    assert d[10:20, 10:20].mean() > 1 and d[60:70, 60:70].mean() < -1
    mask = np.zeros((100, 100), bool)
    mask[10:20, 10:20] = mask[60:70, 60:70] = True
    mask[40:45, 80:90] = True  # weak object: peak below MIN_PEAK_SCORE
    score = np.where(mask, 5.0, 0.0)
    score[40:45, 80:90] = 2.0
    grid = Grid(GRID.crs, GRID.transform, (100, 100))
    objs = mask_to_objects(mask, score, grid)
    out = classify_objects(objs, mask, d, pixel_m=1.0, threshold=1.5)
    assert len(out) == 1 and out.geometry.iloc[0].intersects(
        objs.geometry[objs.geometry.centroid.x < 500030].iloc[0]
    )
    kept = classify_objects(objs, mask, d, pixel_m=1.0, threshold=1.5, keep_non_construction=True)
    assert kept["construction"].tolist().count(True) == 1 and len(kept) == 3


def test_confidence_orders_evidence():
    strong = object_confidence(
        mean_score=6, threshold=2, direction_fraction=1, shape_class="building", width_m=10
    )
    weak = object_confidence(
        mean_score=2.1, threshold=2, direction_fraction=0.3, shape_class="other", width_m=10
    )
    shifted = object_confidence(
        mean_score=6,
        threshold=2,
        direction_fraction=1,
        shape_class="building",
        width_m=2,
        residual_shift_m=2,
    )
    assert 0 <= weak < shifted < strong <= 1
    assert shifted == pytest.approx(strong / 2)


def test_band_roles_and_indices():
    assert band_roles(["B02", "B03", "B04", "B08", "B11"])["swir1"] == 4
    roles = band_roles(["blue", "green", "red", "nir"])
    assert roles == {"blue": 0, "green": 1, "red": 2, "nir": 3}
    assert band_roles(["band1", "band2", "band3"]) == {"red": 0, "green": 1, "blue": 2}
    assert band_roles(["band1", "band2", "band3", "band4"]) == {}
    img = np.ones((5, 2, 2))
    img[3] = 3.0  # nir
    idx = compute_indices(img, ["B02", "B03", "B04", "B08", "B11"])
    assert set(idx) == {"brightness", "ndvi", "ndbi"}
    assert idx["ndvi"][0, 0] == pytest.approx(0.5)
    assert idx["ndbi"][0, 0] == pytest.approx(-0.5)
    assert set(compute_indices(img[:3], ["band1", "band2", "band3"])) == {"brightness", "greenness"}


def test_index_change_is_one_sided():
    rng = np.random.default_rng(1)
    before = rng.normal(100, 5, (4, 50, 50))
    before[3] += 100  # NIR
    after = before + rng.normal(0, 5, before.shape)
    after[:, :10, :10] += 80  # brighter: construction-like
    after[:, -10:, -10:] *= 0.5  # darker (shadow), same NDVI
    names = ["B02", "B03", "B04", "B08"]
    s = index_change(before, after, np.ones((50, 50), bool), band_names=names)
    assert s[:10, :10].mean() > 2
    assert s[-10:, -10:].mean() < 0.5


def test_building_length_and_width_come_from_its_rectangle():
    mask = np.zeros(GRID.shape, bool)
    mask[10:22, 10:30] = True  # a 20 x 12 px building
    objs = mask_to_objects(mask, np.where(mask, 6.0, 0.5), GRID)
    out = classify_objects(objs, mask, np.ones(GRID.shape), pixel_m=1.0, threshold=2.0)
    row = out.iloc[0]
    assert row["class"] == "building"
    assert row.length_m == pytest.approx(20.0, abs=1.0)
    assert row.width_m == pytest.approx(12.0, abs=1.0)


def test_classes_need_pixels_that_can_resolve_them():
    from borderwatch.objects.classify import (
        MAX_CLASS_PIXEL_M,
        ShapeMeasures,
        class_reason,
        classify_shape,
    )

    house = ShapeMeasures(20.0, 10.0, 20.0, 10.0, 0.95)
    wall = ShapeMeasures(200.0, 3.0, 200.0, 3.0, 0.9)
    assert classify_shape(house, pixel_m=1.0) == "building"
    assert classify_shape(wall, pixel_m=1.0) == "fence_or_wall"
    assert classify_shape(house, pixel_m=MAX_CLASS_PIXEL_M) == "building"
    # Sentinel-2: a 114,598 m2 blob is built-up change, never a "building"
    for m in (house, wall):
        assert classify_shape(m, pixel_m=10.0) == "built_up_change"
    assert "too coarse" in class_reason(house, "built_up_change", pixel_m=10.0)
    # a compact object of fewer than 9 pixels cannot show a building's shape
    assert classify_shape(house, pixel_m=1.0, n_pixels=8) == "other"
    assert "200 m long" in class_reason(wall, "fence_or_wall", pixel_m=1.0)
