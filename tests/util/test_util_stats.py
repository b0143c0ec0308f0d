"""Exact small-sample statistics (util.stats) and the budget-decided verdict (util.undecided)."""
import numpy as np
import pytest

from redline.checks.evasion.undecided import inputs_to_decide, undecided_evasion
from redline.util import stats


def test_clopper_pearson_matches_known_values_and_covers_the_truth():
    assert stats.clopper_pearson(0, 20) == pytest.approx((0.0, 0.1684), abs=1e-4)
    low, high = stats.clopper_pearson(5, 100)
    assert low == pytest.approx(0.0164, abs=1e-4) and high == pytest.approx(0.1128, abs=1e-4)
    assert stats.clopper_pearson(0, 0) == (0.0, 1.0)
    # Coverage: over many binomial draws at p = 0.3, n = 25, the interval holds p at least 95% of the time.
    draws = np.random.default_rng(0).binomial(25, 0.3, size=400)
    covered = [stats.clopper_pearson(int(k), 25)[0] <= 0.3 <= stats.clopper_pearson(int(k), 25)[1] for k in draws]
    assert np.mean(covered) >= 0.95
    with pytest.raises(ValueError):
        stats.clopper_pearson(5, 3)


def test_with_intervals_adds_ci_for_named_rates_only():
    metrics = {"success_rate": 0.6, "clean_accuracy": 1.0, "median_l2": 0.4, "missing_rate": None}
    out = stats.with_intervals(metrics, {"success_rate": 5, "clean_accuracy": 20, "missing_rate": 10})
    assert out is metrics and set(out) == {"success_rate", "clean_accuracy", "median_l2", "missing_rate",
                                           "success_rate_ci", "clean_accuracy_ci"}
    low, high = out["success_rate_ci"]
    assert low < 0.2 and high > 0.9  # three of five says little
    assert out["clean_accuracy_ci"][1] == 1.0


def test_measurable_false_positive_rates():
    assert stats.negatives_needed(0.01) == 100 and stats.negatives_needed(0.001, false_positives=3) == 3000
    assert not stats.fpr_measurable(0.01, 25) and stats.fpr_measurable(0.01, 100)
    assert stats.smallest_measurable_fpr(25) == pytest.approx(0.04)


def test_rank_tail_counts_the_threshold_noise():
    # Two members above all of 20 non-members happens by chance about a quarter of the time.
    assert stats.rank_tail_pvalue(2, 0, 20, 20) == pytest.approx(19 / 78, rel=1e-6)
    # Under exchangeable scores, the test's false-alarm rate stays at or below alpha.
    rng = np.random.default_rng(1)
    alarms = 0
    for _ in range(300):
        order = rng.permutation(np.r_[np.ones(100, bool), np.zeros(100, bool)])  # members' ranks at random
        tp = int(np.argmax(np.cumsum(~order) > 1))  # rows above the second non-member
        hits = int(order[:tp].sum())
        alarms += stats.rank_tail_pvalue(hits, 1, 100, 100) <= 0.01
    assert alarms <= 0.02 * 300


def test_a_still_rising_attack_is_inconclusive_with_a_larger_budget():
    curve = {"queries": [10, 20, 40, 80, 100], "success_rate": [0.0, 0.05, 0.1, 0.2, 0.26]}
    reason = undecided_evasion(rate=0.26, n=19, threshold=0.3, budget=2000, per_input=100, curve=curve, reachable=1.0)
    assert "still improving" in reason and "4,000 queries" in reason
    # Flat at the end, the verdict stands; nothing beyond what was reachable is promised.
    flat = {"queries": [50, 100], "success_rate": [0.1, 0.1]}
    assert undecided_evasion(rate=0.1, n=64, threshold=0.3, budget=2000, per_input=30, curve=flat) == ""
    assert undecided_evasion(rate=0.26, n=19, threshold=0.3, budget=2000, per_input=100, curve=curve,
                             reachable=0.27) == ""


def test_too_few_inputs_is_inconclusive_only_when_the_budget_chose_them():
    reason = undecided_evasion(rate=0.2, n=5, threshold=0.3, budget=40, per_input=8, budget_limited=True)
    assert "only 5 inputs" in reason and "would decide" in reason
    assert undecided_evasion(rate=0.2, n=5, threshold=0.3, budget=40, per_input=8, budget_limited=False) == ""
    assert undecided_evasion(rate=0.0, n=40, threshold=0.3, budget=400, per_input=10, budget_limited=True) == ""
    need = inputs_to_decide(0.2, 0.3)
    assert stats.clopper_pearson(round(0.2 * need), need)[1] < 0.3 <= stats.clopper_pearson(round(0.2 * (need - 1)), need - 1)[1]


def test_trials_to_exceed_is_the_smallest_sample_that_separates_a_rate_from_its_baseline():
    n = stats.trials_to_exceed(0.3, 0.1)
    assert stats.clopper_pearson(int(0.3 * n), n)[0] > 0.1
    assert stats.clopper_pearson(int(0.3 * (n - 1)), n - 1)[0] <= 0.1
    assert stats.trials_to_exceed(0.1, 0.3) == 0  # no sample shows a lower rate to be higher
