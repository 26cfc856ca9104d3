import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from borderwatch.errors import InputError
from borderwatch.methods.irmad import apply_irmad, change_probability, fit_irmad, irmad


def correlated_pair(seed=0, shape=(4, 60, 60), noise=0.3):
    rng = np.random.default_rng(seed)
    common = rng.normal(size=shape)
    mix = rng.normal(size=(shape[0], shape[0]))
    before = np.einsum("ij,jrc->irc", mix, common) + noise * rng.normal(size=shape)
    after = 1.7 * before + 5.0 + noise * rng.normal(size=shape)
    return before, after


def reference_cca(x, y):
    """Textbook CCA: eigenvalues of S11^-1 S12 S22^-1 S21 (unweighted)."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    n = len(x)
    s11, s22, s12 = x.T @ x / n, y.T @ y / n, x.T @ y / n
    m = np.linalg.inv(s11) @ s12 @ np.linalg.inv(s22) @ s12.T
    return np.sort(np.sqrt(np.real(np.linalg.eigvals(m))))


def test_plain_mad_matches_reference_cca():
    before, after = correlated_pair(shape=(3, 20, 20), noise=1.0)
    valid = np.ones((20, 20), bool)
    model = fit_irmad(before, after, valid, max_iter=1)
    x = before.reshape(3, -1).T
    y = after.reshape(3, -1).T
    assert_allclose(model.rho, reference_cca(x, y), atol=1e-6)
    # Canonical variates have unit variance and MAD sigmas follow 2(1 - rho).
    u = (x - model.mean_before) @ model.a
    v = (y - model.mean_after) @ model.b
    assert_allclose(u.var(0), 1, atol=1e-6)
    assert_allclose(v.var(0), 1, atol=1e-6)
    assert_allclose(np.diag(np.corrcoef(u.T, v.T)[:3, 3:]), model.rho, atol=1e-6)
    assert_allclose(model.sigma, np.sqrt(2 * (1 - model.rho)), rtol=0.15)


def test_chi2_follows_expected_distribution_on_no_change():
    before, after = correlated_pair(seed=1, shape=(4, 100, 100))
    valid = np.ones((100, 100), bool)
    model = fit_irmad(before, after, valid, max_iter=30)
    assert model.n_iter > 1
    chi2 = apply_irmad(model, before, after).ravel()
    assert chi2.mean() == pytest.approx(4.0, rel=0.05)
    # 1 % of no-change pixels exceed the 99 % quantile of chi2(4).
    assert np.mean(chi2 > stats.chi2.ppf(0.99, 4)) == pytest.approx(0.01, abs=0.004)
    assert stats.kstest(chi2, "chi2", args=(4,)).pvalue > 0.01
    p = change_probability(chi2, 4)
    assert 0 <= p.min() and p.max() <= 1


def test_iterations_find_planted_change_despite_gain_and_offset():
    before, after = correlated_pair(seed=2)
    after[:, 10:20, 10:20] += 4.0
    valid = np.ones(before.shape[1:], bool)
    model = fit_irmad(before, after, valid, max_iter=30)
    assert model.converged and model.n_iter > 1
    chi2 = apply_irmad(model, before, after)
    p = change_probability(chi2, model.dof)
    assert p[10:20, 10:20].mean() > 0.99
    background = np.ones_like(valid)
    background[8:22, 8:22] = False
    assert (p[background] > 0.999).mean() < 0.01


def test_sample_and_blockwise_apply_equal_whole_image():
    before, after = correlated_pair(seed=3)
    valid = np.ones(before.shape[1:], bool)
    full = fit_irmad(before, after, valid)
    sampled = fit_irmad(before, after, valid, sample=2000, seed=4)
    assert sampled.n_samples == 2000
    assert_allclose(sampled.rho, full.rho, atol=0.02)
    whole = apply_irmad(full, before, after)
    block = apply_irmad(full, before[:, 20:40, 5:50], after[:, 20:40, 5:50])
    assert_allclose(block, whole[20:40, 5:50], rtol=1e-5)


def test_nodata_is_ignored_and_stays_nan():
    before, after = correlated_pair(seed=5)
    before[:, :5, :] = np.nan
    valid = np.ones(before.shape[1:], bool)
    valid[:, -3:] = False
    score = irmad(before, after, valid)
    assert np.isnan(score[:5]).all() and np.isnan(score[:, -3:]).all()
    assert np.isfinite(score[5:, :-3]).all()


def test_too_few_pixels_raise():
    before, after = correlated_pair(shape=(4, 2, 4))  # 8 pixels < 2 * 4 + 1
    with pytest.raises(InputError):
        fit_irmad(before, after, np.ones((2, 4), bool))
