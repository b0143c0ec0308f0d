"""The shift generator and the statistics behind FM14.shift_sensitivity's verdict."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks.robustness import shift_stats
from redline.checks.robustness.shifts import (
    ShiftPlan,
    feature_band_shifts,
    kmeans,
    label_prior_shifts,
    make_shifts,
    principal_scores,
)
from redline.util.stats import adjust_p_values, clopper_pearson

pytest.importorskip("scipy")


# -- the generator -----------------------------------------------------------------------------

def test_feature_bands_hold_the_lowest_and_highest_rows_and_say_where():
    x = np.arange(100, dtype=float)[:, None]
    low, high = feature_band_shifts(x, ["'age'"], 0.2)
    assert low.name == "band:'age':low" and high.name == "band:'age':high"
    assert np.array_equal(np.flatnonzero(low.groups), np.arange(20))  # x <= 19.8
    assert np.array_equal(np.flatnonzero(high.groups), np.arange(80, 100))  # x >= 79.2
    assert high.description == "only rows with 'age' in its highest 20% (≥ 79.2; 20 of 100 rows)"
    assert list(high.shares) == [0.0, 1.0] and high.subgroup_rows() == 20


def test_a_band_can_be_up_weighted_instead_of_kept_alone():
    x = np.arange(100, dtype=float)[:, None]
    _, high = feature_band_shifts(x, ["'age'"], 0.2, share=0.6)
    assert list(high.shares) == [0.4, 0.6] and high.groups.sum() == 20
    assert high.description == "rows with 'age' in its highest 20% (≥ 79.2; 20 of 100 rows) at 60% of the population"
    binary = np.r_[np.zeros(70), np.ones(30)][:, None]
    # the zeros already make up 70%: up-weighting them to 60% would be a down-weighting, so no shift
    assert [s.name for s in feature_band_shifts(binary, ["'smoker'"], 0.2, share=0.6)] == ["band:'smoker':high"]


def test_tied_and_constant_features():
    binary = np.r_[np.zeros(70), np.ones(30)][:, None]
    low, high = feature_band_shifts(binary, ["'smoker'"], 0.2)
    assert low.groups.sum() == 70 and "tied: 70%" in low.description  # every 0 is in the lowest band
    assert high.groups.sum() == 30
    assert feature_band_shifts(np.ones((50, 1)), ["'c'"], 0.2) == []  # a constant has no band to keep


def test_kmeans_finds_separated_blobs_and_numbers_them_by_size():
    rng = np.random.default_rng(0)
    sizes = (60, 40, 20)
    z = np.concatenate([rng.normal(c * 10, 0.5, size=(n, 2)) for c, n in enumerate(sizes)])
    labels = kmeans(z, 3, np.random.default_rng(1))
    assert list(np.bincount(labels)) == list(sizes)
    assert len(set(labels[:60])) == len(set(labels[60:100])) == len(set(labels[100:])) == 1


def test_principal_scores_follow_the_widest_direction():
    rng = np.random.default_rng(0)
    x = np.c_[rng.normal(0, 5, 500), rng.normal(0, 1, 500), rng.normal(0, 0.1, 500)]
    scores, explained = principal_scores(x, 2)
    assert scores.shape == (500, 2) and explained[0] > 0.9
    assert np.corrcoef(scores[:, 0], x[:, 0])[0, 1] > 0.99  # signed: high score = high first feature


def test_label_prior_shifts():
    y = np.repeat([0, 1, 2], [100, 60, 10])
    shifts, skipped = label_prior_shifts(y, ["a", "b", "2"], 0.6, 5, 30, np.random.default_rng(0))
    priors = {s.name: s for s in shifts}
    assert set(priors) == {"prior:0", "prior:1", "prior:2"}  # no Dirichlet: class 2 has 10 rows
    assert priors["prior:1"].description.startswith("class 1 (b) at 60% of rows (35% in the test data")
    assert priors["prior:2"].description.startswith("class 2 at 60%") and priors["prior:2"].subgroup_rows() == 10
    assert skipped[0]["name"] == "dirichlet" and "10 rows" in skipped[0]["reason"]
    shifts, skipped = label_prior_shifts(np.repeat([0, 1, 2], 50), [], 0.6, 4, 30, np.random.default_rng(0))
    dirichlet = [s for s in shifts if s.kind == "dirichlet prior"]
    assert len(dirichlet) == 4 and not skipped
    assert all(np.isclose(s.shares.sum(), 1) and len(s.shares) == 3 for s in dirichlet)
    binary, _ = label_prior_shifts(np.repeat([0, 1], [80, 20]), [], 0.6, 4, 10, np.random.default_rng(0))
    assert [s.name for s in binary] == ["prior:1"]  # class 0 is already at 80%; no Dirichlet for two classes


def test_make_shifts_uses_directions_for_images_and_features_for_tables():
    rng = np.random.default_rng(0)
    images, y = rng.random((200, 1, 8, 8)), rng.integers(0, 4, 200)
    shifts, _, how = make_shifts(images, y, ShiftPlan(n_directions=3), feature_names=None, class_names=None,
                                 image=True, min_rows=10, rng=np.random.default_rng(0))
    kinds = {s.kind for s in shifts}
    assert kinds == {"direction band", "cluster", "held-out cluster", "label prior", "dirichlet prior"}
    assert sum(s.kind == "direction band" for s in shifts) == 6 and how["directions"].startswith("3 leading")
    table = rng.random((200, 4))
    shifts, _, how = make_shifts(table, y, ShiftPlan(n_clusters=0, n_priors=0), feature_names=["a", "b", "c", "d"],
                                 class_names=None, image=False, min_rows=10, rng=np.random.default_rng(0))
    assert [s.name for s in shifts[:2]] == ["band:'a':low", "band:'a':high"] and "clusters" not in how
    # every shift is a reweighting of the given rows: one group index per row, shares summing to one
    assert all(len(s.groups) == 200 and np.isclose(s.shares.sum(), 1) for s in shifts)


# -- the statistics ----------------------------------------------------------------------------

def test_a_shift_to_one_group_gets_its_exact_interval():
    k, n, only = np.array([90, 20]), np.array([100, 50]), np.array([0.0, 1.0])
    accuracy, interval = shift_stats.shifted_accuracy(k, n, only)
    assert accuracy == pytest.approx(0.4) and interval == pytest.approx(list(clopper_pearson(20, 50)))
    drop, drop_ci = shift_stats.accuracy_drop(k, n, only)
    assert drop == pytest.approx(110 / 150 - 0.4)
    assert drop_ci[0] < drop < drop_ci[1]


def test_drop_interval_covers_the_true_drop():
    """Simulated groups with known accuracies: the 95% interval covers the true drop at least 95%
    of the time (it is conservative, so in practice more)."""
    rng = np.random.default_rng(0)
    n, shares, rates = np.array([200, 60, 40]), np.array([0.2, 0.5, 0.3]), np.array([0.9, 0.7, 0.8])
    true = float(np.sum((n / n.sum() - shares) * rates))
    covered = 0
    for _ in range(300):
        k = rng.binomial(n, rates)
        _, (low, high) = shift_stats.accuracy_drop(k, n, shares)
        covered += low <= true <= high
    assert covered / 300 >= 0.95


def test_excess_drop_pvalue_agrees_with_the_interval_and_holds_its_level():
    k, n, only = np.array([90, 20]), np.array([100, 50]), np.array([0.0, 1.0])
    p = shift_stats.excess_drop_pvalue(k, n, only, 0.1)
    assert 0 < p < 0.01  # a 33-point drop against a 10-point tolerance
    # the interval's lower end is the one-sided 97.5% bound: above a tolerance exactly when p <= 2.5%
    _, (low, _) = shift_stats.accuracy_drop(k, n, only)
    for tolerated in (low - 0.01, low + 0.01):
        assert (shift_stats.excess_drop_pvalue(k, n, only, tolerated) <= 0.025) == (low > tolerated)
    assert shift_stats.excess_drop_pvalue(k, n, only, 0.5) == 1.0
    # at the tolerance exactly, rejections at 5% happen at most 5% of the time
    rng = np.random.default_rng(1)
    n, rates = np.array([150, 50]), np.array([0.95, 0.95 - 0.1 / 0.75])  # drop = 0.75 * gap = 0.1
    rejected = sum(shift_stats.excess_drop_pvalue(rng.binomial(n, rates), n, only, 0.1) <= 0.05 for _ in range(200))
    assert rejected / 200 <= 0.05


def test_holm():
    adjusted = adjust_p_values(np.array([0.01, 0.04, 0.03, 0.5]), "holm")
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert adjust_p_values(np.array([]), "holm").size == 0


def test_principal_scores_of_rows_wider_than_tall_match_an_svd():
    # Images are wider than their sample is tall: the d x d route took minutes at 3x64x64.
    from redline.checks.robustness.shifts import principal_scores

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 500))
    scores, explained = principal_scores(x, 4)
    centred = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    assert np.allclose(np.abs(scores), np.abs(u[:, :4] * s[:4]), atol=1e-8)
    assert np.allclose(explained, s[:4] ** 2 / (s**2).sum())
