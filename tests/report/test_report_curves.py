"""Evidence curves agree with the headline metrics they illustrate."""
from __future__ import annotations

import numpy as np
import pytest

from redline.checks import get_check
from redline.checks.base import CheckContext
from redline.checks.evasion.attack_trace import AttackTrace, success_vs_size
from redline.targets.base import InputSpec
from redline.targets.callable import CallableTarget


def test_float32_sizes_at_epsilon_count_as_within_it():
    trace = AttackTrace(3)
    sizes = np.array([0.2, 0.2, 0.2], dtype=np.float32).astype(np.float64) + np.array([2e-8, 0, np.inf])
    trace.record(np.array([5, 5, 5]), sizes)
    assert trace.success_vs_queries(0.2)["success_rate"][-1] == pytest.approx(2 / 3)
    assert success_vs_size(sizes, np.array([0.1, 0.2]))["success_rate"] == [0.0, pytest.approx(2 / 3)]
    assert list(trace.queries_to_reach(0.2)) == [5, 5, -1]


def _image_target():
    rng = np.random.default_rng(1)
    w = rng.normal(size=(2, 64)).astype(np.float32)

    def model(x):
        z = x.reshape(len(x), -1) @ w.T * 3
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    return CallableTarget(model, input_spec=InputSpec(shape=(1, 8, 8)), n_classes=2, spec="python:linear-image"), model


@pytest.mark.timeout(120)
def test_square_curves_end_at_the_headline_success_rate(tmp_path):
    target, model = _image_target()
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, size=(120, 1, 8, 8)).astype(np.float32)
    y = model(x).argmax(axis=1)
    data = dict(x_train=x[:60], y_train=y[:60], x_test=x[60:], y_test=y[60:])
    from redline.data import as_dataset

    finding = get_check("FM01.square")(norm="linf", epsilon=0.2)(
        target, as_dataset(data), budget=3000, seed=0, ctx=CheckContext(tmp_path))
    headline = finding.metrics["success_rate"]
    assert headline > 0.3, finding.summary  # the test needs an attack that works
    by_queries = finding.evidence["curve_queries"]["success_rate"]
    by_size = finding.evidence["curve"]
    assert by_queries[-1] == pytest.approx(headline, abs=1e-9)
    at_eps = [r for e, r in zip(by_size["epsilon"], by_size["success_rate"]) if e == pytest.approx(0.2)]
    assert at_eps and at_eps[-1] == pytest.approx(headline, abs=1e-9)
