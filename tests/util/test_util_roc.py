import numpy as np
import pytest

from redline.checks.privacy import roc


def test_perfect_and_inverted_attacks():
    labels = np.r_[np.ones(50, bool), np.zeros(150, bool)]
    scores = np.r_[np.linspace(2, 3, 50), np.linspace(0, 1, 150)]
    m = roc.membership_metrics(scores, labels)
    assert m == {"auc": 1.0, "tpr_at_fpr_0.001": 1.0, "tpr_at_fpr_0.01": 1.0, "advantage": 1.0}
    inverted = roc.membership_metrics(-scores, labels)
    assert inverted["auc"] == 0.0 and inverted["tpr_at_fpr_0.01"] == 0.0 and inverted["advantage"] == 0.0


def test_ties_enter_together_so_a_constant_score_is_chance():
    labels = np.r_[np.ones(30, bool), np.zeros(70, bool)]
    fpr, tpr = roc.roc_curve(np.zeros(100), labels)
    assert fpr.tolist() == [0.0, 1.0] and tpr.tolist() == [0.0, 1.0]
    assert roc.auc(fpr, tpr) == 0.5 and roc.tpr_at_fpr(fpr, tpr, 0.01) == 0.0


def test_auc_matches_the_mann_whitney_statistic_and_tpr_respects_the_fpr_cap():
    rng = np.random.default_rng(0)
    labels = rng.random(500) < 0.4
    scores = np.round(rng.normal(size=500) + labels, 1)  # rounding makes ties
    pos, neg = scores[labels], scores[~labels]
    mann_whitney = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    fpr, tpr = roc.roc_curve(scores, labels)
    assert roc.auc(fpr, tpr) == pytest.approx(mann_whitney)
    for cap in (0.001, 0.01, 0.1):
        best = max(((pos >= t).mean() for t in np.unique(scores) if (neg >= t).mean() <= cap), default=0.0)
        assert roc.tpr_at_fpr(fpr, tpr, cap) == pytest.approx(best)


def test_bad_inputs_are_refused_and_thin_curve_keeps_ends():
    with pytest.raises(ValueError, match="both"):
        roc.roc_curve(np.arange(3.0), np.ones(3, bool))
    with pytest.raises(ValueError, match="finite"):
        roc.roc_curve(np.array([0.0, np.nan]), np.array([True, False]))
    rng = np.random.default_rng(1)
    fpr, tpr = roc.roc_curve(rng.normal(size=5000), rng.random(5000) < 0.5)
    f2, t2 = roc.thin_curve(fpr, tpr, points=100)
    assert len(f2) <= 102 and f2[0] == 0 and f2[-1] == 1 and t2[-1] == 1
    assert np.all(np.diff(f2) >= 0)
