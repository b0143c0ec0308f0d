"""A stolen copy learns from answers that are scores, not probabilities: values beyond
float32 (an endpoint answering [-1e308, 1e308]) had overflowed to inf, made the loss NaN and
the copy's fidelity 0.0, so a constant model was reported not_vulnerable (exit 0)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("torch")

import redline  # noqa: E402
from redline.targets.base import InputSpec  # noqa: E402
from redline.targets.callable import CallableTarget  # noqa: E402
from redline.util.surrogates import build_surrogate, fit_surrogate, surrogate_proba  # noqa: E402


def test_scores_beyond_float32_train_a_copy_that_gives_the_same_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    answers = np.tile([[-1e308, 1e308]], (64, 1))
    answers[::2] = [1e308, -1e308]  # half the rows answer class 0
    module = build_surrogate((5,), 2, "tabular", x, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow in a cast
        fit_surrogate(module, x, answers, epochs=60, seed=0)
    proba = surrogate_proba(module, x)
    assert np.isfinite(proba).all()
    assert np.mean(proba.argmax(axis=1) == answers.argmax(axis=1)) > 0.9


def test_probability_rows_are_learnt_as_given():
    x = np.random.default_rng(1).normal(size=(32, 3)).astype(np.float32)
    answers = np.tile([[0.2, 0.8]], (32, 1))
    module = build_surrogate((3,), 2, "tabular", x, seed=0)
    fit_surrogate(module, x, answers, epochs=200, lr=0.01, seed=0)
    assert np.allclose(surrogate_proba(module, x).mean(axis=0), [0.2, 0.8], atol=0.05)  # soft labels kept, not sharpened


def test_fm05_copies_a_constant_model_answering_huge_scores_with_fidelity_one():
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    target = CallableTarget(lambda v: np.tile([[-1e308, 1e308]], (len(v), 1)),
                            input_spec=InputSpec.from_data(x.astype(np.float32)), n_classes=2, spec="python:const")
    data = dict(x_train=x[:200], y_train=y[:200], x_test=x[200:400], y_test=y[200:400], x_pool=x[400:], y_pool=y[400:])
    finding = redline.scan(target, data, select="FM05.learning", budget=50).findings[0]
    assert finding.metrics["fidelity"] == 1.0
    assert finding.status.value == "inconclusive"  # a constant model: agreement cannot show copying (README)
