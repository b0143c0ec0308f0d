"""FM04 at small record counts: a model that leaks nothing must not be called vulnerable.

The target below never saw the evaluated members or non-members (it is fitted on other
rows), so membership is pure chance for it; at 25 records a side every FM04 check must say
vulnerable in at most 5% of seeds, and must not pass the model either (a TPR at 1% FPR
cannot be measured on 25 non-members: the run is inconclusive or the AUC test decides).
"""
import dataclasses

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.checks.privacy.fm04_lira import LikelihoodRatioAttack
from redline.checks.privacy.fm04_membership import (
    LabelOnlyAttack,
    ShadowModelAttack,
    ThresholdAttack,
)
from redline.checks.privacy.fm04_rmia import RelativeMembershipInference
from redline.data.base import Dataset
from redline.defences.labels_only import LabelOnlyTarget
from redline.findings import Status
from redline.triage.engine import rate

SEEDS = 40
PER_SIDE = 25


def centroid_model(x, y, n_classes=3, spec="test:centroid"):
    """A nearest-class-mean linear classifier (closed form: instant, deterministic), with the
    same recipe as its training recipe so that reference and shadow models cost nothing."""
    means = np.stack([x[y == c].mean(0) if (y == c).any() else np.zeros(x.shape[1]) for c in range(n_classes)])
    target = ArrayTarget(2.0 * means.T, -(means**2).sum(1), spec=spec)
    target.capabilities = dataclasses.replace(target.capabilities, trainable=True)
    target.trainer = lambda xs, ys, seed: centroid_model(xs, ys, n_classes, spec)
    return target


def honest_problem(seed):
    rng = np.random.default_rng(1000 + seed)
    centres = rng.normal(scale=1.2, size=(3, 5))
    y = rng.integers(0, 3, size=700)
    x = (centres[y] + rng.normal(size=(700, 5))).astype(np.float32)
    # Members and non-members are both unseen by the target: it was fitted on rows 400+.
    data = Dataset("honest", x[:PER_SIDE], y[:PER_SIDE], x[PER_SIDE:2 * PER_SIDE], y[PER_SIDE:2 * PER_SIDE],
                   x[100:400], y[100:400], spec="test:honest")
    return data, centroid_model(x[400:], y[400:])


CHECKS = {
    "threshold": lambda: ThresholdAttack(),
    "threshold-per-class": lambda: ThresholdAttack(score="logit", per_class=True, n_calibration=200),
    "shadow": lambda: ShadowModelAttack(n_shadow=2, per_class=False),
    "lira": lambda: LikelihoodRatioAttack(n_reference=4),
    "rmia": lambda: RelativeMembershipInference(n_reference=2, n_population=100),
    "label_only": lambda: LabelOnlyAttack(queries_per_record=8, max_noise=0.2),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_a_non_leaking_model_is_rarely_called_vulnerable_at_25_records_a_side(name):
    verdicts = []
    for seed in range(SEEDS):
        data, target = honest_problem(seed)
        if name == "label_only":
            target = LabelOnlyTarget(target)
        finding = CHECKS[name]()(target, data, budget=5000, seed=seed)
        assert finding.status in (Status.VULNERABLE, Status.INCONCLUSIVE), (finding.status, finding.reason)
        if "matched class by class" in finding.reason:  # mixes apart at p < 0.05: too few left to judge
            verdicts.append(finding.status)
            continue
        assert finding.metrics["nonmembers"] == PER_SIDE
        # 25 non-members cannot measure 1% or 0.1% false positives: no such rate is claimed.
        assert finding.metrics["tpr_at_fpr_0.01"] is None and finding.metrics["tpr_at_fpr_0.001"] is None
        verdicts.append(finding.status)
    false_alarms = verdicts.count(Status.VULNERABLE)
    assert false_alarms <= 0.05 * SEEDS, f"{name}: vulnerable on {false_alarms} of {SEEDS} honest runs"


def test_an_inconclusive_run_says_what_would_decide_it_and_gets_no_severity():
    data, target = honest_problem(0)
    finding = ThresholdAttack()(target, data, budget=5000)
    assert finding.status is Status.INCONCLUSIVE
    assert "100 members and 100 non-members" in finding.reason and "budget of about 200" in finding.reason
    assert finding.metrics["smallest_measurable_fpr"] == pytest.approx(1 / PER_SIDE)
    severity, rationale = rate(finding)
    assert not severity and "could not decide" in rationale and "0.1%" not in rationale


def test_a_strong_leak_is_still_found_at_25_records_a_side_by_the_auc_test():
    rng = np.random.default_rng(5)
    centres = rng.normal(scale=1.2, size=(3, 5))
    y = rng.integers(0, 3, size=400)
    x = (centres[y] + rng.normal(size=(400, 5))).astype(np.float32)
    data = Dataset("leaky", x[:PER_SIDE], y[:PER_SIDE], x[PER_SIDE:50], y[PER_SIDE:50], x[100:], y[100:], spec="t")
    # Members answered with certainty, everyone else with a modest guess: a blatant leak.
    leaky = centroid_model(x[100:], y[100:])
    members = {tuple(r) for r in data.x_train.round(5)}
    base_predict = leaky._predict

    def predict(rows):
        p = base_predict(rows) * 0.5 + 0.5 / 3
        for i, r in enumerate(rows):
            if tuple(np.asarray(r).round(5)) in members:
                p[i] = 0.001
                p[i, data.y_train[[tuple(m) for m in data.x_train.round(5)].index(tuple(np.asarray(r).round(5)))]] = 0.998
        return p

    leaky._predict = predict
    finding = ThresholdAttack()(leaky, data, budget=5000)
    assert finding.status is Status.VULNERABLE and finding.metrics["auc_p_value"] <= 0.01, finding.summary
    assert finding.metrics["tpr_at_fpr_0.01"] is None
    severity, rationale = rate(finding)
    assert severity and "0.1% false-positive rate" not in rationale and "AUC" in rationale


def test_a_measurable_rate_carries_its_interval(memoriser_free=None):
    data, target = honest_problem(1)
    big = Dataset("honest", data.x_pool[:150], data.y_pool[:150], data.x_pool[150:], data.y_pool[150:],
                  data.x_pool, data.y_pool, spec="test:honest-big")
    finding = ThresholdAttack()(target, big, budget=5000)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    low, high = finding.metrics["tpr_at_fpr_0.01_ci"]
    assert 0 <= low <= finding.metrics["tpr_at_fpr_0.01"] <= high <= 1
    assert finding.metrics["tpr_at_fpr_0.001"] is None  # 150 non-members cannot measure 0.1%
