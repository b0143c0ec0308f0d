"""Each zoo model: its documented accuracy, its planted weakness (or its absence), determinism."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from redline import zoo
from redline.targets.base import Target


def _accuracy(target, x, y):
    return float(np.mean(target.predict_labels(x) == y))


def _mean_loss(target, x, y):
    p = target.predict(x)
    return float(np.mean(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))


def _gaps(target, data):
    accuracy_gap = _accuracy(target, data.x_train, data.y_train) - _accuracy(target, data.x_test, data.y_test)
    loss_gap = _mean_loss(target, data.x_test, data.y_test) - _mean_loss(target, data.x_train, data.y_train)
    return accuracy_gap, loss_gap


def test_mnist_cnn_is_accurate_and_white_box(built_zoo):
    target = built_zoo.targets["mnist_cnn"]
    data = zoo.load_data_for("mnist_cnn")
    assert _accuracy(target, data.x_test, data.y_test) >= 0.95
    assert target.capabilities.gradients and target.capabilities.outputs == "probabilities"
    x = torch.from_numpy(data.x_test[:4]).requires_grad_()
    target.logits(x).sum().backward()  # gradients reach the input
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_overfit_mlp_memorises_and_its_twin_does_not(built_zoo):
    data = zoo.load_data_for("digits_mlp_overfit")
    overfit_acc_gap, overfit_loss_gap = _gaps(built_zoo.targets["digits_mlp_overfit"], data)
    twin_acc_gap, twin_loss_gap = _gaps(built_zoo.targets["digits_mlp_regularized"], data)
    assert _accuracy(built_zoo.targets["digits_mlp_overfit"], data.x_train, data.y_train) == 1.0
    assert _accuracy(built_zoo.targets["digits_mlp_overfit"], data.x_test, data.y_test) >= 0.94
    assert _accuracy(built_zoo.targets["digits_mlp_regularized"], data.x_test, data.y_test) >= 0.85
    assert overfit_acc_gap >= 0.03 and abs(twin_acc_gap) <= 0.015
    assert overfit_acc_gap - twin_acc_gap >= 0.02
    assert overfit_loss_gap >= 0.1 and twin_loss_gap <= 0.03


def test_fair_models_beat_the_majority_class(built_zoo):
    data = zoo.load_data_for("fair_logreg")
    majority = max(np.mean(data.y_test), 1 - np.mean(data.y_test))
    for name in ("fair_logreg", "fair_tree"):
        assert _accuracy(built_zoo.targets[name], data.x_test, data.y_test) >= majority + 0.02, name


def test_fair_tree_has_moderate_depth(built_zoo):
    tree = built_zoo.targets["fair_tree"].estimator
    assert tree.get_depth() == 5 and 16 <= tree.get_n_leaves() <= 32


def test_fair_logreg_is_plain_linear_on_raw_features(built_zoo):
    target = built_zoo.targets["fair_logreg"]
    data = zoo.load_data_for("fair_logreg")
    model = target.estimator
    z = data.x_test.astype(np.float64) @ model.coef_[0] + model.intercept_[0]
    assert np.allclose(target.predict(data.x_test)[:, 1], 1 / (1 + np.exp(-z)), atol=1e-6)


def test_labels_twin_answers_the_same_model_with_labels_only(built_zoo):
    data = zoo.load_data_for("fair_logreg_labels")
    full, labels_only = built_zoo.targets["fair_logreg"], built_zoo.targets["fair_logreg_labels"]
    assert labels_only.capabilities.outputs == "labels" and not labels_only.capabilities.gradients
    answer = labels_only.predict(data.x_test)
    assert answer.ndim == 1 and np.array_equal(answer, full.predict(data.x_test).argmax(axis=1))
    retrained = labels_only.retrain(data.x_pool, data.y_pool, seed=0)
    assert retrained.capabilities.outputs == "labels"


def test_fair_targets_know_the_allowed_survey_codes(built_zoo):
    spec = built_zoo.targets["fair_tree"].input_spec
    data = zoo.load_data_for("fair_tree")
    religious = data.meta["sensitive_index"]
    allowed = dict(spec.constraints.categorical)
    assert allowed[religious] == (1.0, 2.0, 3.0, 4.0)
    assert (spec.lower, spec.upper) == (0.0, 42.0)


@pytest.mark.parametrize("name", ["mnist_cnn", "digits_mlp_overfit", "digits_mlp_regularized", "fair_logreg", "fair_tree"])
def test_training_is_deterministic(built_zoo, name):
    target = built_zoo.targets[name]
    data = zoo.load_data_for(name)
    rows = 300 if name == "mnist_cnn" else len(data.x_train)  # the CNN recipe on a subset keeps this quick
    first = target.retrain(data.x_train[:rows], data.y_train[:rows], seed=0)
    second = target.retrain(data.x_train[:rows], data.y_train[:rows], seed=0)
    assert isinstance(first, Target) and first.input_spec == target.input_spec
    assert np.array_equal(first.predict(data.x_test), second.predict(data.x_test))


def test_the_recipe_rebuilds_the_zoo_model_exactly(built_zoo):
    target = built_zoo.targets["digits_mlp_regularized"]
    data = zoo.load_data_for("digits_mlp_regularized")
    rebuilt = target.retrain(data.x_train, data.y_train, seed=zoo.entry("digits_mlp_regularized").seed)
    assert np.array_equal(rebuilt.predict(data.x_test), target.predict(data.x_test))


def test_seeds_change_torch_models(built_zoo):
    data = zoo.load_data_for("digits_mlp_regularized")
    target = built_zoo.targets["digits_mlp_regularized"]
    a = target.retrain(data.x_train, data.y_train, seed=1)
    b = target.retrain(data.x_train, data.y_train, seed=2)
    assert not np.array_equal(a.predict(data.x_test), b.predict(data.x_test))


def test_training_leaves_torch_global_state_alone(built_zoo):
    data = zoo.load_data_for("digits_mlp_overfit")
    torch.manual_seed(1234)
    state = torch.get_rng_state()
    flag = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    built_zoo.targets["digits_mlp_regularized"].retrain(data.x_train[:50], data.y_train[:50], seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.are_deterministic_algorithms_enabled() == flag
    assert torch.get_num_threads() == threads


def test_retraining_checks_its_inputs(built_zoo):
    from redline.errors import TargetError

    target = built_zoo.targets["fair_logreg"]
    with pytest.raises(TargetError, match="rows shaped"):
        target.retrain(np.zeros((10, 3)), np.zeros(10, dtype=int))
    with pytest.raises(TargetError, match="class indices"):
        target.retrain(np.zeros((10, 8)), np.full(10, 5))
    with pytest.raises(TargetError, match="as many labels as rows"):
        target.retrain(np.zeros((10, 8)), np.zeros(9, dtype=int))
