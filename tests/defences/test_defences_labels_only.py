"""Labels only: the answer is the predicted class, nothing more."""
from __future__ import annotations

import numpy as np

from redline.defences import DefendedTarget
from redline.defences.labels_only import LabelOnlyTarget, LabelsOnly


class Watching(LabelsOnly):
    def __init__(self):
        self.seen = []

    def observe(self, x, answer):
        self.seen.append((len(x), answer.copy()))


def test_scores_become_their_argmax_and_labels_pass_unchanged():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    np.testing.assert_array_equal(LabelsOnly().transform_output(np.zeros((2, 4)), scores), [1, 0])
    labels = np.array([2, 0])
    assert LabelsOnly().transform_output(np.zeros((2, 4)), labels) is labels
    x = np.ones((2, 4))
    assert LabelsOnly().transform_input(x) is x
    assert LabelsOnly().answers("probabilities") == "labels"


def test_label_only_target_answers_the_inner_argmax_and_observes_each_batch(linear_target):
    x = np.random.default_rng(1).normal(size=(9, 5))
    watching = Watching()
    defended = DefendedTarget(linear_target, [watching])
    defended.max_batch = 5
    answer = defended.predict(x)
    np.testing.assert_array_equal(answer, linear_target._predict(x).argmax(1))
    assert [n for n, _ in watching.seen] == [5, 4]
    np.testing.assert_array_equal(np.concatenate([a for _, a in watching.seen]), answer)
    wrapped = LabelOnlyTarget(linear_target)
    np.testing.assert_array_equal(wrapped.predict(x), answer)
    assert wrapped.spec == "test:linear+labels" and wrapped.capabilities.outputs == "labels"
