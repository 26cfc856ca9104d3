from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import ndimage

from borderwatch.errors import InputError
from borderwatch.methods import get_method
from borderwatch.methods.cva import cva
from borderwatch.methods.scores import CombinedMethod, CvaMethod
from borderwatch.methods.thresholds import otsu_from_histogram, otsu_threshold, threshold_score
from borderwatch.objects.morphology import clean_mask, square_dilation, square_erosion


def pair(seed: int = 0, shape=(3, 64, 64)):
    rng = np.random.default_rng(seed)
    before = rng.normal(1000, 50, shape).astype(np.float32)
    after = before * 1.1 + 30 + rng.normal(0, 10, shape).astype(np.float32)
    return before, after


def test_cva_is_the_norm_of_the_standardised_difference():
    b, a = pair()
    valid = np.ones(b.shape[1:], bool)
    valid[:5] = False
    d = (a - b).astype(np.float64)[:, valid]
    z = (d - d.mean(axis=1, keepdims=True)) / d.std(axis=1, keepdims=True)
    want = np.sqrt((z**2).mean(axis=0))
    got = cva(b, a, valid)
    assert np.isnan(got[:5]).all()
    assert_allclose(got[valid], want, rtol=1e-4)


def test_inputs_are_not_modified():
    b, a = pair()
    b0, a0 = b.copy(), a.copy()
    valid = np.ones(b.shape[1:], bool)
    for method in (CombinedMethod(), CvaMethod()):
        method.fit(b, a, valid, band_names=(), pixel_m=1.0).score(b, a, valid)
    np.testing.assert_array_equal(b, b0)
    np.testing.assert_array_equal(a, a0)


def _cva_mask(b, a, valid, threshold=None):
    s = cva(b, a, valid)
    t = otsu_threshold(s[valid]) if threshold is None else threshold
    raw = valid & (np.nan_to_num(s, nan=-np.inf) > t)
    mask = clean_mask(raw, pixel_area_m2=1.0, min_area_m2=20, opening_px=1, closing_px=1)
    return s, mask


def test_cva_finds_planted_square_and_ignores_gain_offset():
    b, a = pair()
    a[:, 20:30, 40:52] += 400  # a new 10 x 12 px bright structure
    valid = np.ones(b.shape[1:], bool)
    _, mask = _cva_mask(b, a, valid)
    truth = np.zeros_like(valid)
    truth[20:30, 40:52] = True
    assert (mask == truth).mean() > 0.995
    assert mask[truth].mean() > 0.95


def test_invalid_pixels_never_change():
    b, a = pair()
    a[:, 0:20, 0:20] += 500
    valid = np.ones(b.shape[1:], bool)
    valid[0:20, 0:20] = False
    score, mask = _cva_mask(b, a, valid, threshold=3.0)
    assert not mask[~valid].any()
    assert np.isnan(score[~valid]).all()


def test_otsu_separates_two_modes():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(0, 1, 9000), rng.normal(10, 1, 1000)])
    t = otsu_threshold(values)
    assert 3 < t < 7


def test_otsu_from_histogram_hand_computed():
    # Bins [0,1) [1,2) [2,3) [3,4], centres 0.5 .. 3.5. Between-class variance
    # w0 * w1 * (mu0 - mu1)^2 after bin 0: 3 * 5 * (0.5 - 15.5 / 5)^2 = 101.4; after bin 1:
    # 4 * 4 * (0.75 - 3.5)^2 = 121; after bin 2 (empty): 121 again. The first maximum
    # wins, and the threshold is the upper edge of its last low bin: 2.0.
    assert otsu_from_histogram(np.array([3, 1, 0, 4]), 0.0, 4.0) == 2.0
    assert otsu_from_histogram(np.array([1, 2]), 3.0, 3.0) == 3.0  # empty range


def test_otsu_equals_skimage_and_stays_exact_where_skimage_rounds():
    from skimage.filters import threshold_otsu

    # skimage returns the centre of the last low bin; this module the bin's upper edge.
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.gamma(2.0, 1.0, 40_000), rng.normal(9.0, 1.0, 4_000)])
    hist, edges = np.histogram(v, bins=512, range=(0.0, 14.0))
    centres = (edges[:-1] + edges[1:]) / 2
    k = int(np.flatnonzero(centres == threshold_otsu(hist=(hist, centres)))[0])
    assert otsu_from_histogram(hist, 0.0, 14.0) == edges[k + 1]
    # A near tie: the exact between-class variances are 3002753040054004/92209 after
    # bin 0 and 3003143721542500/92221 after bin 1 (relative gap 3e-8), so the
    # threshold is edge 1. skimage 0.26 sums float32 counts and picks bin 1 (centre 1.5,
    # edge 2) instead, which is why change.py keeps its own float64 arithmetic.
    assert otsu_from_histogram(np.array([90229, 1992, 90217]), 0.0, 3.0) == 1.0


def test_threshold_by_name_or_value():
    s = np.array([[0.0, 1.0], [2.0, np.nan]])
    v = np.isfinite(s)
    assert threshold_score(s, v, 1.5) == 1.5
    with pytest.raises(InputError, match="unknown threshold 'nope'"):
        threshold_score(s, v, "nope")
    with pytest.raises(InputError, match="finite"):
        threshold_score(s, v, float("nan"))


def test_clean_mask_min_area_and_speckle():
    m = np.zeros((50, 50), bool)
    m[5:10, 5:10] = True  # 25 px
    m[30:33, 30:33] = True  # 9 px
    m[45, 45] = True  # speckle
    out = clean_mask(m, pixel_area_m2=1.0, min_area_m2=20, opening_px=1, closing_px=1)
    assert out[5:10, 5:10].all()
    assert not out[30:33, 30:33].any()
    assert not out[45, 45]
    # With 4 m2 pixels the 9-px object is 36 m2 and survives.
    out4 = clean_mask(m, pixel_area_m2=4.0, min_area_m2=20)
    assert out4[30:33, 30:33].all()


def test_cva_is_vectorised_scale_free():
    b, a = pair(shape=(6, 32, 32))
    s6 = cva(b, a, np.ones((32, 32), bool))
    assert s6.dtype == np.float32
    assert 0.5 < float(np.mean(s6)) < 1.5  # ~1 for unit-variance bands


def test_shape_errors():
    b, a = pair()
    with pytest.raises(InputError, match="must both be"):
        cva(b, a[:2], np.ones(b.shape[1:], bool))
    with pytest.raises(InputError, match="no valid pixels"):
        cva(b, a, np.zeros(b.shape[1:], bool))
    with pytest.raises(InputError, match="unknown method"):
        get_method("magic")


def test_combined_applies_fitted_statistics_block_by_block():
    """apply_combined on a block with combined_halo_px of context equals the whole scene."""
    from borderwatch.methods.combined import (
        apply_combined,
        combined,
        combined_halo_px,
        fit_combined,
    )

    rng = np.random.default_rng(7)
    before = rng.normal(1000, 50, (4, 96, 96)).astype(np.float32)
    after = before * 1.1 + rng.normal(0, 20, before.shape).astype(np.float32)
    after[:, 40:60, 30:50] += 400
    valid = np.ones((96, 96), bool)
    valid[:5] = False
    names = ("blue", "green", "red", "nir")
    whole = combined(before, after, valid, band_names=names, pixel_m=0.5)
    model = fit_combined(before, after, valid, band_names=names)
    h = combined_halo_px(0.5)
    assert h >= 8
    rows = slice(30 - h, 70 + h)
    part = apply_combined(model, before[:, rows], after[:, rows], valid[rows], pixel_m=0.5)
    np.testing.assert_allclose(part[h:-h], whole[30:70], rtol=1e-5, atol=1e-5)
    assert whole[50, 40] > 3 * np.nanmedian(whole)


def test_combined_scores_by_strips_equal_whole_arrays(monkeypatch):
    # The per-pixel arithmetic runs over strips of rows (cache-sized temporaries); the
    # strip size must not change a single bit of either score, NaN at invalid pixels.
    from borderwatch.methods.combined import apply_combined, fit_combined, rank_verification

    rng = np.random.default_rng(11)
    before = rng.gamma(3, 300, (4, 70, 90)).astype(np.float32)
    after = before * 1.2 + rng.normal(0, 60, before.shape).astype(np.float32)
    after[:, 20:30, 40:60] += 900
    after[2, 50, 50] = np.nan
    valid = np.isfinite(after).all(axis=0)
    valid[:3] = False
    model = fit_combined(before, after, valid, band_names=("blue", "green", "red", "nir"))
    got = {}
    for strip_px in (1 << 16, 7 * 90, 1):  # one strip; 7 rows; one row
        monkeypatch.setattr("borderwatch.methods.arrays.STRIP_PX", strip_px)
        got[strip_px] = [
            f(model, before, after, valid, pixel_m=0.5) for f in (apply_combined, rank_verification)
        ]
    for strip_px in (7 * 90, 1):
        for whole, strips in zip(got[1 << 16], got[strip_px], strict=True):
            np.testing.assert_array_equal(strips, whole)
            assert np.isnan(strips[~valid]).all() and not np.isnan(strips[valid]).any()


@pytest.mark.parametrize("shape", [(60, 70), (9, 200), (13, 11), (4, 4)])
@pytest.mark.parametrize("sigma_px", [0.3, 1.0, 1.7, 2.5])
@pytest.mark.parametrize("holes", [False, True])
def test_smooth_score_at_some_pixels_equals_smoothing_everything(shape, sigma_px, holes):
    # The pointwise Gaussian replicates scipy's arithmetic: the same float32 bits at
    # every asked pixel, edges (reflected) and invalid pixels included.
    from borderwatch.methods.smoothing import smooth_score, smooth_score_at

    rng = np.random.default_rng(int(sigma_px * 10) + shape[0])
    score = rng.normal(0, 1, shape).astype(np.float32) ** 2
    valid = rng.random(shape) > (0.05 if holes else -1.0)
    score[~valid] = np.nan
    score[rng.random(shape) > 0.99] = np.nan  # NaN at a valid pixel counts as 0
    flat = np.flatnonzero(rng.random(shape) > 0.9)
    flat = np.unique(np.concatenate([flat, [0, shape[1] - 1, score.size - 1]]))  # corners
    if holes:  # an asked pixel is invalid
        valid.ravel()[flat[1]] = False
        score.ravel()[flat[1]] = np.nan
    want = smooth_score(score, valid, sigma_px=sigma_px).ravel()[flat]
    got = smooth_score_at(score, valid, flat, sigma_px=sigma_px)
    np.testing.assert_array_equal(got, want)
    assert holes == bool(np.isnan(want).any())


def test_smooth_score_at_no_pixel_and_rank_verification_of_no_object():
    # A block whose objects can all be dropped asks for no pixel at all.
    from borderwatch.methods.combined import fit_combined, rank_verification
    from borderwatch.methods.smoothing import smooth_score_at

    rng = np.random.default_rng(4)
    score = rng.random((40, 50)).astype(np.float32)
    valid = np.ones(score.shape, bool)
    none = np.zeros(0, np.intp)
    assert smooth_score_at(score, valid, none, sigma_px=1.0).shape == (0,)
    before = rng.gamma(3, 300, (4, 40, 50)).astype(np.float32)
    model = fit_combined(before, before * 1.1, valid)
    out = rank_verification(
        model, before, before * 1.1, valid, pixel_m=1.0, where=np.zeros_like(valid)
    )
    assert out.shape == valid.shape and np.isnan(out).all()


def test_pixels_at_equals_boolean_indexing_on_a_strided_window():
    from borderwatch.methods.arrays import pixels_at

    rng = np.random.default_rng(2)
    image = rng.random((3, 50, 60)).astype(np.float32)[:, 5:45, 7:52]  # a block window
    mask = rng.random(image.shape[1:]) > 0.9
    np.testing.assert_array_equal(pixels_at(image, np.flatnonzero(mask)), image[:, mask])


def test_normal_scores_of_integer_data_equal_direct_interpolation():
    # Integer-valued bands go through a table of their range; the numbers must be those
    # of interpolating every pixel (NaN, fractions and wide ranges take the direct path).
    from borderwatch.methods.combined import fit_combined, normal_score_table, normal_scores

    rng = np.random.default_rng(5)
    before = rng.integers(80, 800, (3, 60, 70)).astype(np.float32)
    after = before * 1.3 + 7
    model = fit_combined(before, after, np.ones((60, 70), bool))
    _, zq = normal_score_table(model.before_q.shape[1])

    def direct(image: np.ndarray, q: np.ndarray) -> np.ndarray:
        out = np.empty(image.shape, np.float32)
        for k in range(image.shape[0]):
            xp, inv = np.unique(q[k], return_inverse=True)
            out[k] = np.interp(image[k], xp, np.bincount(inv, weights=zq) / np.bincount(inv))
        return out

    holed = before.copy()
    holed[1, 5, 5] = np.nan
    wide = before.copy()
    wide[0, 0, 0] = 60000  # a range wider than a quarter of the pixels
    top = before.astype(np.uint16)
    top[:, :2] = 65535  # the dtype's largest value: its table must not wrap around
    signed = (before - 500).astype(np.int16)
    huge = before + np.float32(2**25)  # float32 integers beyond 2**24 are not all exact
    for image in (before, before + 0.5, holed, wide, before[:, :10, :10], top, signed, huge):
        np.testing.assert_array_equal(
            normal_scores(image, model.before_q), direct(image, model.before_q)
        )


def test_rank_model_cancels_order_preserving_radiometry():
    """A surface-dependent stretch that keeps the order of values cancels in normal scores.

    Linear per-date standardisation leaves the brightest pixels far apart under a
    non-linear stretch (after = before ** 1.3, per band); the normal scores of the two
    dates agree, and a planted change still stands out in :func:`rank_verification`.
    """
    from borderwatch.methods.combined import fit_combined, normal_scores, rank_verification

    rng = np.random.default_rng(3)
    before = rng.lognormal(6.5, 0.5, (4, 80, 80)).astype(np.float32)
    after = before**1.3
    valid = np.ones((80, 80), bool)
    model = fit_combined(before, after, valid)
    zb, za = normal_scores(before, model.before_q), normal_scores(after, model.after_q)
    assert np.abs(za - zb).max() < 0.05
    linear = (after - after.mean((1, 2), keepdims=True)) / after.std((1, 2), keepdims=True) - (
        before - before.mean((1, 2), keepdims=True)
    ) / before.std((1, 2), keepdims=True)
    assert np.abs(linear).max() > 2.0

    after = after + rng.normal(0, 2, before.shape).astype(np.float32)
    after[:, 30:40, 30:40] = np.percentile(after, 99.5)
    before[:, 30:40, 30:40] = np.percentile(before, 5)
    rank = rank_verification(fit_combined(before, after, valid), before, after, valid)
    assert rank[35, 35] > 3.0
    assert np.nanmedian(rank) < 1.0


@pytest.mark.parametrize("pixel_m", [None, 0.5, 1.0, 10.0])
def test_rank_verification_at_some_pixels_equals_the_full_score(pixel_m):
    # ``where=`` computes only near the asked pixels (per-object peaks); the values
    # there must be those of the full computation, NaN elsewhere.
    from borderwatch.methods.combined import fit_combined, rank_verification

    rng = np.random.default_rng(3)
    before = rng.gamma(3, 300, (4, 120, 140)).astype(np.float32)
    after = before * 1.1 + rng.normal(0, 60, before.shape).astype(np.float32)
    after[:, 20:30, 40:60] += 900
    valid = np.ones((120, 140), bool)
    valid[:5] = False  # invalid rows inside a group's box
    valid[60:62] = False
    where = np.zeros_like(valid)
    where[15:35, 35:65] = True  # a planted object
    where[0:8, 0:3] = True  # at the array corner, partly invalid
    where[61, 70] = True  # a single invalid pixel
    where[90:92, 5:130] = True  # a long thin group
    where &= rng.random(where.shape) > 0.3
    model = fit_combined(before, after, valid, band_names=("blue", "green", "red", "nir"))
    full = rank_verification(model, before, after, valid, pixel_m=pixel_m)
    part = rank_verification(model, before, after, valid, pixel_m=pixel_m, where=where)
    np.testing.assert_array_equal(part[where], full[where])
    assert np.isnan(part[~where]).all()


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (2, 5), (6, 1), (40, 37)])
@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_square_morphology_equals_scipy(shape, radius):
    # clean_mask's separable erosion/dilation must equal scipy's (outside = False),
    # including arrays thinner than the structuring element.
    rng = np.random.default_rng(radius)
    square = np.ones((2 * radius + 1,) * 2, bool)
    for p in (0.3, 0.7, 0.95):
        m = rng.random(shape) < p
        eroded, dilated = ndimage.binary_erosion(m, square), ndimage.binary_dilation(m, square)
        np.testing.assert_array_equal(square_erosion(m, radius), eroded)
        np.testing.assert_array_equal(square_dilation(m, radius), dilated)
