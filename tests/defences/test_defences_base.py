"""DefendedTarget: a model behind defences is a Target that charges each row once."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import Defence, DefendedTarget
from redline.defences.labels_only import LabelOnlyTarget, LabelsOnly
from redline.defences.rounding import Rounding
from redline.errors import BudgetExceeded, TargetError, UsageError
from redline.targets.base import QueryLedger, Target


class Tagging(Defence):
    """Adds ``shift`` to inputs and ``bump`` to answers, and logs every hook in ``log``."""

    def __init__(self, tag, log, shift=0.0, bump=0.0):
        self.name, self.log, self.shift, self.bump = tag, log, shift, bump

    def transform_input(self, x):
        self.log.append((self.name, "in", x.copy()))
        return x + self.shift

    def transform_output(self, x, scores):
        self.log.append((self.name, "out", x.copy()))
        return scores + self.bump

    def observe(self, x, answer):
        self.log.append((self.name, "observe", len(x), answer.copy()))


def assert_target_contract(target: Target, x: np.ndarray) -> None:
    """What every check relies on from a target, whatever is behind it."""
    assert isinstance(target.spec, str) and target.spec
    n, k = len(x), target.n_classes
    target.ledger = QueryLedger()
    out = target.predict(x)
    if target.capabilities.outputs == "probabilities":
        assert out.shape == (n, k)
    else:
        assert out.shape == (n,) and set(np.unique(out)) <= set(range(k))
    assert np.array_equal(target.predict_labels(x), out.argmax(1) if out.ndim == 2 else out)
    assert target.ledger.attack == 2 * n and target.ledger.evaluation == 0
    with target.ledger.evaluating():
        target.predict(x[:3])
    assert target.ledger.evaluation == 3
    assert target.predict(x[:0]).shape[0] == 0
    with pytest.raises(TargetError):
        target.predict(x[0])  # one row without a batch axis
    target.ledger = QueryLedger(budget=n + n // 2)
    target.predict(x)
    with pytest.raises(BudgetExceeded):
        target.predict(x)
    assert target.ledger.attack == n  # refused before the model answered
    if target.trainer is not None:
        twin = target.retrain(x, out.argmax(1) if out.ndim == 2 else out, 0)
        assert isinstance(twin, Target) and twin.capabilities == target.capabilities


def test_a_defended_target_passes_the_target_contract(linear_target):
    x = np.random.default_rng(0).normal(size=(20, 5))
    assert_target_contract(DefendedTarget(linear_target, [Rounding(2)]), x)
    assert_target_contract(DefendedTarget(linear_target, [Rounding(2), LabelsOnly()]), x)
    assert_target_contract(DefendedTarget(linear_target, []), x)


def test_queries_are_charged_once_to_the_defended_target_only(linear_target):
    defended = DefendedTarget(linear_target, [LabelsOnly()])
    x = np.zeros((7, 5))
    defended.predict(x)
    assert (defended.ledger.attack, linear_target.ledger.total) == (7, 0)
    assert linear_target.answered == 7


def test_requests_pass_defences_outside_in_and_answers_inside_out(linear_target):
    log: list = []
    inner, outer = Tagging("inner", log, shift=1.0, bump=10.0), Tagging("outer", log, shift=2.0, bump=100.0)
    defended = DefendedTarget(linear_target, [inner, outer])
    x = np.zeros((2, 5))
    out = defended.predict(x)
    assert [entry[:2] for entry in log] == [
        ("outer", "in"), ("inner", "in"), ("inner", "out"), ("inner", "observe"), ("outer", "out"), ("outer", "observe"),
    ]
    np.testing.assert_array_equal(log[0][2], x)  # each defence sees the batch as it received it
    np.testing.assert_array_equal(log[1][2], x + 2.0)
    np.testing.assert_array_equal(log[2][2], x + 2.0)
    np.testing.assert_array_equal(log[4][2], x)
    np.testing.assert_allclose(out, linear_target._predict(x + 3.0) + 110.0)
    np.testing.assert_allclose(log[-1][3], out)  # the outermost observes what the client gets
    nested = DefendedTarget(DefendedTarget(linear_target, [Tagging("i", [], 1.0, 10.0)]), [Tagging("o", [], 2.0, 100.0)])
    np.testing.assert_allclose(nested.predict(x), out)
    assert defended.spec == "test:linear+inner+outer" == nested.spec.replace("+i+o", "+inner+outer")


def test_observe_runs_once_per_answered_batch_and_not_for_refused_ones(linear_target):
    log: list = []
    defended = DefendedTarget(linear_target, [Tagging("t", log)])
    defended.max_batch = 4
    defended.predict(np.zeros((10, 5)))
    assert [entry[2] for entry in log if entry[1] == "observe"] == [4, 4, 2]
    log.clear()
    defended.ledger = QueryLedger(budget=3)
    with pytest.raises(BudgetExceeded):
        defended.predict(np.zeros((10, 5)))
    assert log == []


def test_a_defence_refuses_a_batch_by_raising_and_nothing_is_charged(linear_target):
    class Refuse(Defence):
        name = "refuse"

        def transform_input(self, x):
            raise TargetError("input rejected")

    defended = DefendedTarget(linear_target, [Refuse()])
    with pytest.raises(TargetError, match="rejected"):
        defended.predict(np.zeros((2, 5)))
    assert defended.ledger.total == 0 and linear_target.answered == 0


def test_capabilities_spec_and_retraining(linear_target):
    linear_target.capabilities = linear_target.capabilities.__class__(outputs="probabilities", gradients=True)
    linear_target.trainer = lambda x, y, s: ArrayTarget(np.ones((5, 3)), np.zeros(3), spec="test:retrained")
    defended = LabelOnlyTarget(linear_target)
    assert defended.capabilities.outputs == "labels" and not defended.capabilities.gradients
    assert defended.spec == "test:linear+labels" and defended.wrapped() is linear_target
    twin = defended.retrain(np.zeros((4, 5)), np.zeros(4, dtype=int))
    assert isinstance(twin, LabelOnlyTarget) and twin.spec == "test:retrained+labels"
    assert twin.defences == defended.defences and twin.ledger is not defended.ledger
    assert DefendedTarget(linear_target, [Rounding(1)]).capabilities.outputs == "probabilities"


def test_bad_defences_are_usage_errors(linear_target):
    with pytest.raises(UsageError, match="not a defence"):
        DefendedTarget(linear_target, [lambda x: x])
    with pytest.raises(UsageError, match="Target"):
        DefendedTarget(object(), [LabelsOnly()])
    with pytest.raises(UsageError, match="decimals"):
        DefendedTarget(linear_target, [Rounding(-1)])


def test_the_defences_package_stays_light_and_below_checks():
    code = (
        "import sys, redline.defences, redline.defences.labels_only, redline.defences.rounding,"
        " redline.defences.squeezing, redline.defences.training, redline.defences.training.sanitisers;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'sklearn')"
        " or m.startswith(('redline.checks', 'redline.zoo', 'redline.pipeline'))];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
