"""FM02.feedback_loop: a retraining loop on users' data lets 10% of users flip chosen inputs
of a plain logistic regression; a loss-sanitised pipeline resists at that share."""
import pytest

from redline.checks.base import CheckContext
from redline.checks.training_time.fm02_feedback_loop import FeedbackLoopPoisoning
from redline.data import load_data
from redline.defences.training.learners import SanitizedClassifier
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression



@pytest.fixture(scope="module")
def data():
    return load_data("builtin:breast_cancer")


def _target(estimator, data):
    return load_target(estimator.fit(data.x_train, data.y_train), data=data)


def test_flags_a_plain_logistic_regression(data, tmp_path):
    target = _target(LogisticRegression(max_iter=1000), data)
    finding = FeedbackLoopPoisoning(fractions=(0.02, 0.1))(target, data, seed=0, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    assert m["target_success_rate"] >= 0.5 and 1 <= m["rounds_to_flip"] <= 10
    assert 0 < m["poison_rate"] < 0.1 and m["attacker_fraction"] == 0.1
    assert finding.evidence["curve"]["attacker_fraction"] == [0.02, 0.1]
    assert finding.queries == 12  # the candidate inputs the attacker looked at


def test_a_loss_sanitised_pipeline_resists(data):
    sanitised = SanitizedClassifier(LogisticRegression(max_iter=1000), method="loss", drop_fraction=0.1)
    finding = FeedbackLoopPoisoning(fractions=(0.1,))(_target(sanitised, data), data, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["rounds_to_flip"] is None


def test_bad_parameters_end_as_errors(data):
    target = _target(LogisticRegression(max_iter=1000), data)
    assert FeedbackLoopPoisoning(rounds=0)(target, data).status is Status.ERROR
    assert FeedbackLoopPoisoning(fractions=(1.5,))(target, data).status is Status.ERROR


def test_inputs_that_flip_without_any_attacker_are_not_put_down_to_the_attack(data):
    # A recipe whose answer depends on how much it was trained on, not on what: every chosen
    # input changes class as the data grows, with or without attackers.
    import numpy as np

    from redline.targets.base import InputSpec
    from redline.targets.callable import CallableTarget

    spec = InputSpec(shape=tuple(data.x_train.shape[1:]), dtype="float64",
                     lower=float(data.x_train.min()), upper=float(data.x_train.max()))

    def drifting(n_rows, seed=0):
        cls = int(n_rows > len(data.x_train))  # class 0 until the first retraining round adds rows
        target = CallableTarget(lambda v: np.tile(np.eye(2)[cls] * 0.8 + 0.1, (len(v), 1)), input_spec=spec,
                                n_classes=2, trainer=lambda xs, ys, s: drifting(len(xs), s))
        return target

    finding = FeedbackLoopPoisoning(fractions=(0.1,), n_targets=4)(drifting(len(data.x_train)), data, seed=0)
    assert finding.status is not Status.VULNERABLE, finding.summary
    assert finding.metrics["baseline_success_rate"] >= finding.metrics["target_success_rate"] - 1e-9
