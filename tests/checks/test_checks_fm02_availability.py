"""FM02.availability: optimised rows hurt a plain logistic regression; a sphere-sanitised
pipeline resists, and the gradient through the surrogate's optimum is exact."""
import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.training_time import fm02_availability as availability
from redline.data import load_data
from redline.defences.training.learners import SanitizedClassifier
from redline.findings import Status
from redline.targets import load_target

pytest.importorskip("sklearn")
torch = pytest.importorskip("torch")
from sklearn.linear_model import LogisticRegression

from redline.checks.training_time import softmax_surrogate as surrogate


@pytest.fixture(scope="module")
def data():
    return load_data("builtin:breast_cancer")


def _target(estimator, data):
    return load_target(estimator.fit(data.x_train, data.y_train), data=data)


def test_flags_a_plain_logistic_regression_and_the_sphere_defence_helps(data, tmp_path):
    target = _target(LogisticRegression(max_iter=1000), data)
    check = availability.GradientAvailabilityPoisoning(rates=(0.05, 0.1), defences=("sphere",))
    finding = check(target, data, seed=0, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    assert m["poison_rate"] == 0.1 and m["accuracy_drop"] >= 0.1
    assert m["poison_rows"] == 26  # 26 / (228 + 26) = 10%
    assert m["accuracy_drop_with_sphere"] < m["accuracy_drop"] / 2
    assert finding.queries == 0 and finding.evaluation_queries > 0
    poisons = np.load(tmp_path / finding.evidence["examples"])
    assert poisons["x_poison"].shape == (26, 30) and poisons["x_poison"].min() >= 0 and poisons["x_poison"].max() <= 1


def test_a_sphere_sanitised_pipeline_resists(data):
    target = _target(SanitizedClassifier(LogisticRegression(max_iter=1000)), data)
    finding = availability.GradientAvailabilityPoisoning(rates=(0.1,), defences=())(target, data, seed=0)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics


def test_implicit_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.uniform(size=(60, 4)))
    y = torch.from_numpy((x[:, 0] + x[:, 1] > 1).numpy().astype(np.int64))
    xp = torch.from_numpy(rng.uniform(size=(5, 4)))
    yp = torch.zeros(5, dtype=torch.int64)
    l2 = 0.05

    def objective(poison):
        theta = surrogate.fit_newton(torch, torch.zeros(5, 2, dtype=torch.float64), torch.cat([x, poison]),
                                     torch.cat([y, yp]), l2, iterations=50)
        return float(surrogate.expected_error(torch, theta, x, y)), theta

    _, theta = objective(xp)
    grad = surrogate.implicit_gradient(torch, theta, x, y, xp, yp, l2,
                                       lambda t: surrogate.expected_error(torch, t, x, y))
    bump = torch.zeros_like(xp)
    bump[2, 1] = 1e-5
    numeric = (objective(xp + bump)[0] - objective(xp - bump)[0]) / 2e-5
    assert float(grad[2, 1]) == pytest.approx(numeric, rel=1e-3, abs=1e-8)
