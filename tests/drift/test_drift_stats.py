"""The statistics behind the detector: KS against scipy, the corrections, the chi-square's
merging of sparse categories, and the permutation MMD's exact level."""
import numpy as np
import pytest
from scipy.stats import binom, ks_2samp

from redline.drift.kernel import median_width, mmd_permutation_test
from redline.drift.univariate import adjust, category_counts, chi2_counts, ks_columns


@pytest.mark.parametrize("m, n, discrete", [(50, 10, True), (300, 40, False), (1000, 1000, True), (200, 7, False)])
def test_ks_statistic_matches_scipy_ties_included(m, n, discrete):
    rng = np.random.default_rng(m + n)
    draw = (lambda k: rng.integers(0, 5, (k, 3)).astype(float)) if discrete else (lambda k: rng.normal(size=(k, 3)))
    a, b = draw(m), draw(n) + (0 if discrete else 0.3)
    stat, p = ks_columns(np.sort(a, axis=0), b)
    ref = ks_2samp(a, b, axis=0)
    np.testing.assert_allclose(stat, ref.statistic)
    np.testing.assert_allclose(p, ref.pvalue, atol=0.02)


def test_adjustments():
    p = np.array([0.01, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(adjust(p, "bonferroni"), [0.04, 0.16, 0.12, 1.0])
    # Holm: sorted 0.01*4, 0.03*3, 0.04*2, 0.5*1, made monotone.
    np.testing.assert_allclose(adjust(p, "holm"), [0.04, 0.09, 0.09, 0.5])
    assert adjust(np.array([]), "holm").size == 0


def test_chi_square_is_exact_where_counts_are_small():
    # Ten rows all in the rarest category (a fifth of the reference): Fisher's exact test
    # per category sees it (the chi-square approximation is not used with expected counts < 5).
    stat, p = chi2_counts(np.array([500, 300, 200]), np.array([0, 0, 10]))
    assert p < 1e-4
    # A value the reference never showed, in 6 of 10 rows.
    assert chi2_counts(np.array([600, 400, 0]), np.array([2, 2, 6]))[1] < 1e-6
    # Ten rows in proportion: no evidence.
    assert chi2_counts(np.array([500, 300, 200]), np.array([5, 3, 2]))[1] == 1.0
    stat, p = chi2_counts(np.array([500, 300, 200]), np.array([20, 30, 50]))
    assert stat > 30 and p < 1e-6
    counts = category_counts(np.array([0.0, 1.0, 1.0, 5.0]), np.array([0.0, 1.0, 2.0]))
    assert counts.tolist() == [1, 2, 0, 1]


def test_small_sample_category_tests_keep_their_level():
    rng = np.random.default_rng(1)
    shares = [0.6, 0.25, 0.1, 0.05]
    ref = np.bincount(rng.choice(4, 800, p=shares), minlength=4)
    alarms = sum(chi2_counts(ref, np.bincount(rng.choice(4, n, p=shares), minlength=4))[1] <= 0.05
                 for n in (5, 10, 20, 40) for _ in range(100))
    assert alarms <= binom.ppf(0.999, 400, 0.05)


def test_mmd_permutation_p_value_has_exact_level():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 3))
    width = median_width(ref, rng)
    alarms = sum(mmd_permutation_test(ref, rng.normal(size=(20, 3)), width, 99, rng)[1] <= 0.05 for _ in range(100))
    assert alarms <= binom.ppf(0.999, 100, 0.05)
    stat, p = mmd_permutation_test(ref, rng.normal(size=(50, 3)) + 1.0, width, 99, rng)
    assert p == pytest.approx(0.01) and stat > 0
