"""Rounding: answers keep a few decimals."""
from __future__ import annotations

import numpy as np
import pytest

from redline.defences import DefendedTarget
from redline.defences.rounding import RoundedTarget, Rounding
from redline.errors import UsageError


class Watching(Rounding):
    def __init__(self, decimals):
        super().__init__(decimals)
        self.seen = []

    def observe(self, x, answer):
        self.seen.append((len(x), answer.copy()))


def test_rounding_keeps_the_stated_decimals_as_float64():
    out = Rounding(1).transform_output(np.zeros((1, 2)), np.array([[0.26, 0.74]], dtype=np.float32))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[0.3, 0.7]])
    assert Rounding(3).name == "round3" and Rounding(3).answers("probabilities") == "probabilities"


def test_rounded_target_answers_rounded_probabilities_and_observes_each_batch(linear_target):
    x = np.random.default_rng(2).normal(size=(6, 5))
    watching = Watching(2)
    answer = DefendedTarget(linear_target, [watching]).predict(x)
    np.testing.assert_array_equal(answer, np.round(linear_target._predict(x), 2))
    assert len(watching.seen) == 1 and np.array_equal(watching.seen[0][1], answer)
    rounded = RoundedTarget(linear_target, decimals=2)
    np.testing.assert_array_equal(rounded.predict(x), answer)
    assert rounded.spec == "test:linear+round2" and not rounded.capabilities.gradients


@pytest.mark.parametrize("decimals", [-1, 1.5, True, "2"])
def test_bad_decimals_are_refused_when_applied(linear_target, decimals):
    defence = Rounding(decimals)  # stored as given
    with pytest.raises(UsageError, match="decimals"):
        DefendedTarget(linear_target, [defence])
