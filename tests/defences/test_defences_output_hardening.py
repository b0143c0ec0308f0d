"""top_k and noise: less is given away, the label stays, and repeated queries cannot average the noise."""
from __future__ import annotations

import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.defences import DefendedTarget
from redline.defences.output_hardening import ConfidenceNoise, TopK
from redline.errors import UsageError


def model(k=4, outputs="probabilities"):
    rng = np.random.default_rng(3)
    return ArrayTarget(rng.normal(size=(5, k)), rng.normal(size=k), outputs=outputs)


X = np.random.default_rng(4).normal(size=(200, 5))


def test_top_k_keeps_the_k_largest_and_renormalises_or_not():
    t = model()
    p = t._predict(X)
    out = DefendedTarget(t, [TopK(k=2)]).predict(X)
    assert ((out > 0).sum(axis=1) == 2).all()
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    np.testing.assert_array_equal(out.argmax(1), p.argmax(1))
    kept = np.sort(p, axis=1)[:, -2:]
    np.testing.assert_allclose(np.sort(out, axis=1)[:, -2:], kept / kept.sum(1, keepdims=True), rtol=1e-5)
    raw = DefendedTarget(t, [TopK(k=2, renormalise=False)]).predict(X)
    np.testing.assert_allclose(np.sort(raw, axis=1)[:, -2:], kept, rtol=1e-5)
    assert (raw.sum(axis=1) < 1).all()
    ties = TopK(k=1)
    ties.check(t)
    np.testing.assert_array_equal(ties.transform_output(X[:1], np.array([[0.4, 0.4, 0.2, 0.0]])), [[1, 0, 0, 0]])


def test_noise_keeps_every_label_changes_values_and_repeats_exactly():
    t = model()
    p = t._predict(X)
    defended = DefendedTarget(t, [ConfidenceNoise(scale=0.5, seed=7)])
    a, b = defended.predict(X), defended.predict(X)
    np.testing.assert_array_equal(a.argmax(1), p.argmax(1))
    np.testing.assert_allclose(a.sum(1), 1.0)
    assert np.abs(a - p).max() > 0.05  # the values moved
    np.testing.assert_array_equal(a, b)  # the same input, the same answer: nothing to average away
    repeats = np.stack([defended.predict(X[:1]) for _ in range(50)])
    assert (repeats == a[:1]).all()  # fifty asks, one answer: their mean is the noisy answer itself
    other = DefendedTarget(t, [ConfidenceNoise(scale=0.5, seed=8)]).predict(X)
    assert not np.array_equal(other, a)  # the seed is part of the key
    nudged = defended.predict(X + 1e-6)
    assert not np.array_equal(nudged, a)  # new input, new noise (the documented limit)


def test_noise_that_would_change_the_top_class_is_swapped_back():
    n = ConfidenceNoise(scale=5.0, seed=1)
    n.check(model())
    p = np.tile([[0.3, 0.29, 0.21, 0.2]], (300, 1))
    x = np.random.default_rng(0).normal(size=(300, 5))
    out = n.transform_output(x, p)
    assert (out.argmax(1) == 0).all() and len(np.unique(out[:, 1])) > 1


@pytest.mark.parametrize("defence, match", [
    (TopK(k=0), "k must"), (TopK(k=4), "change nothing"), (TopK(k=1, renormalise="yes"), "renormalise"),
    (ConfidenceNoise(scale=0), "scale"), (ConfidenceNoise(seed=-1), "seed"),
])
def test_bad_settings(defence, match):
    with pytest.raises(UsageError, match=match):
        defence.check(model())


def test_labels_only_targets_have_nothing_to_harden():
    for defence in (TopK(k=1), ConfidenceNoise()):
        with pytest.raises(UsageError, match="labels only"):
            defence.check(model(outputs="labels"))
