import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import ndimage

from borderwatch.engine.align import (
    apply_shift,
    coregister,
    estimate_shift,
)
from borderwatch.errors import InputError
from borderwatch.methods import get_normaliser
from borderwatch.methods.normalise import HistogramNormaliser, IrmadNormaliser


def textured(seed=0, shape=(3, 256, 256)):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(size=shape), (0, 2, 2)) * 100 + 500


def shifted(img, shift):
    return np.stack([ndimage.shift(b, shift, order=3, mode="reflect") for b in img])


@pytest.mark.parametrize("shift", [(0.35, -0.25), (-1.4, 2.3), (0.5, 0.0)])
def test_planted_shift_is_recovered_to_a_tenth_of_a_pixel(shift):
    before = textured()
    rng = np.random.default_rng(1)
    # Gain, offset and noise differ between dates: registration must not care.
    after = shifted(before, shift) * 1.3 - 40 + rng.normal(0, 2, before.shape)
    valid = np.ones(before.shape[1:], bool)
    reg = coregister(before, after, valid, valid)
    # The correction undoes the planted shift.
    assert_allclose(reg.shift_px, (-shift[0], -shift[1]), atol=0.1)
    assert reg.residual_norm_px < 0.1
    assert reg.block_shifts.shape == (1, 4)
    assert_allclose(reg.block_shifts[0, 2:], (-shift[0], -shift[1]), atol=0.15)


@pytest.mark.slow
def test_centre_window_without_overlap_falls_back_to_the_whole_image():
    # A partial after footprint that misses the centre window: the shift is measured
    # on the whole image instead of failing (or trusting a handful of pixels).
    before = textured(5, (3, 400, 400))
    after = shifted(before, (0.7, -0.5))
    valid_b = np.ones((400, 400), bool)
    valid_a = np.zeros((400, 400), bool)
    valid_a[:90, :90] = True  # outside the centre 200 px window [100:300]
    after = np.where(valid_a, after, np.nan)
    reg = coregister(before, after, valid_b, valid_a, window_px=200)
    assert reg.applied
    assert_allclose(reg.shift_px, (-0.7, 0.5), atol=0.15)
    # With overlap, the centre window decides and the shift applies to the whole image.
    full = coregister(before, shifted(before, (0.7, -0.5)), valid_b, valid_b, window_px=200)
    assert_allclose(full.shift_px, (-0.7, 0.5), atol=0.1)
    assert full.after.shape == before.shape and full.valid[5:-5, 5:-5].all()
    assert full.block_shifts.size == 0 or full.block_shifts[:, :2].min() >= 100


def test_shift_estimate_ignores_nodata():
    before = textured(2)
    after = shifted(before, (0.6, -0.4))
    valid = np.ones(before.shape[1:], bool)
    valid[:, :60] = False
    after[:, :, :60] = np.nan
    dy, dx = estimate_shift(before, after, valid)
    assert abs(dy + 0.6) < 0.15 and abs(dx - 0.4) < 0.15


def test_apply_shift_is_nan_aware_and_invalidates_uncovered_border():
    img = textured(3, (2, 64, 64))
    valid = np.ones((64, 64), bool)
    valid[30:34, 30:34] = False
    img[:, 30:34, 30:34] = np.nan
    out, out_valid = apply_shift(img, valid, (1.5, 0.0))
    assert not out_valid[:2].any()  # uncovered top rows
    assert not out_valid[32:35, 31:33].any()  # the hole moved down
    assert np.isnan(out[:, ~out_valid]).all()
    assert np.isfinite(out[:, out_valid]).all()
    # Whole-pixel shifts are exact in the interior.
    out2, v2 = apply_shift(img, valid, (2.0, -3.0))
    assert_allclose(out2[:, 10:20, 10:20], img[:, 8:18, 13:23], atol=1e-3)
    f, fv = apply_shift(img, valid, (2.0, -3.0), mode="fourier")
    assert_allclose(f[:, 10:20, 10:20], img[:, 8:18, 13:23], atol=1.0)
    with pytest.raises(InputError):
        apply_shift(img, valid, (1, 1), mode="cubic")


@pytest.mark.parametrize("shift", [(0.37, -0.81), (-2.6, 1.2), (0.0, 3.5), (-0.001, 0.0004)])
@pytest.mark.parametrize("strip_px", [1 << 18, 2 * 37 * 3, 1])  # one strip; 3 rows; 1 row
def test_bilinear_shift_equals_scipy_order_1(shift, strip_px, monkeypatch):
    monkeypatch.setattr("borderwatch.engine.align.SHIFT_STRIP_PX", strip_px)
    # The separable fast path must equal ndimage.shift(order=1) with the edge modes the
    # docstring names: nearest for values, constant 0 for the validity weight.
    img = textured(4, (2, 40, 37))
    valid = np.ones((40, 37), bool)
    valid[5:9, 20:23] = False
    filled = np.where(valid, img, img[:, valid].mean(axis=1)[:, None, None])
    ref = np.stack([ndimage.shift(b, shift, order=1, mode="nearest") for b in filled])
    weight = ndimage.shift(valid.astype(float), shift, order=1, mode="constant", cval=0.0)
    out, out_valid = apply_shift(np.where(valid, img, np.nan), valid, shift)
    np.testing.assert_array_equal(out_valid, weight > 0.999)
    assert_allclose(out[:, out_valid], ref[:, out_valid], rtol=1e-5)


@pytest.mark.parametrize("shift", [(0.37, -0.81), (-2.6, 1.2), (0.0, 3.5), (-0.001, 0.0004)])
@pytest.mark.parametrize("strip_px", [1 << 18, 2 * 37 * 3, 1])  # one strip; 3 rows; 1 row
def test_bilinear_shift_of_all_valid_image_equals_scipy(shift, strip_px, monkeypatch):
    monkeypatch.setattr("borderwatch.engine.align.SHIFT_STRIP_PX", strip_px)
    # All valid: the validity comes from two 1-D shifts; it must match the 2-D weight.
    img = textured(5, (2, 40, 37))
    valid = np.ones((40, 37), bool)
    ref = np.stack([ndimage.shift(b, shift, order=1, mode="nearest") for b in img])
    weight = ndimage.shift(valid.astype(float), shift, order=1, mode="constant", cval=0.0)
    before = img.copy()
    out, out_valid = apply_shift(img, valid, shift)
    np.testing.assert_array_equal(out_valid, weight > 0.999)
    assert np.isnan(out[:, ~out_valid]).all()
    assert_allclose(out[:, out_valid], ref[:, out_valid], rtol=1e-5)
    np.testing.assert_array_equal(img, before)  # the input is not modified


def test_histogram_match_maps_distribution():
    before = textured(4, (2, 64, 64))
    after = before * 2.0 + 100
    valid = np.ones((64, 64), bool)
    out = HistogramNormaliser().fit(before, after, valid).apply(after)
    assert_allclose(out, before, atol=1.0)


def test_irmad_normalisation_recovers_gain_and_offset_despite_change():
    before = textured(5, (3, 100, 100))
    gain = np.array([1.2, 0.8, 1.5])[:, None, None]
    offset = np.array([30.0, -20.0, 5.0])[:, None, None]
    rng = np.random.default_rng(6)
    after = before * gain + offset + rng.normal(0, 1, before.shape)
    after[:, 20:40, 20:40] += 300  # change: must not bias the fit
    valid = np.ones((100, 100), bool)
    out = IrmadNormaliser().fit(before, after, valid).apply(after)
    unchanged = np.ones_like(valid)
    unchanged[18:42, 18:42] = False
    assert_allclose(out[:, unchanged], before[:, unchanged], atol=6.0)
    assert (out[:, 20:40, 20:40] - before[:, 20:40, 20:40]).mean() > 150
    assert get_normaliser("none") is None
    with pytest.raises(InputError):
        get_normaliser("bogus")
