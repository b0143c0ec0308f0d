import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.privacy.fm03_reconstruction import ClassReconstruction
from redline.defences.labels_only import LabelOnlyTarget
from redline.defences.rounding import RoundedTarget
from redline.findings import Status


@pytest.fixture(scope="module")
def digits():
    return zoo.load_data_for("digits_mlp_overfit")


@pytest.fixture
def model():
    target = zoo.load_target("digits_mlp_overfit")
    target.answered = 0
    inner_predict, inner_logits = target._predict, target._torch_logits

    def _predict(x):
        target.answered += len(x)
        return inner_predict(x)

    def _logits(x):
        target.answered += int(x.shape[0])
        return inner_logits(x)

    target._predict, target._torch_logits = _predict, _logits
    return target


def black_box(target):
    target.capabilities = dataclasses.replace(target.capabilities, gradients=False)
    return target


def test_white_box_reconstructions_show_their_class(model, digits, tmp_path):
    finding = ClassReconstruction(steps=60)(model, digits, budget=5000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["gradients"] == "exact" and m["steps"] == 60
    assert m["reconstruction_eval_accuracy"] >= 0.8 and m["attack_accuracy"] == m["reconstruction_eval_accuracy"]
    assert m["baseline_accuracy"] <= 0.1 + 1e-9
    # Each reconstruction resembles its own class mean more than the other classes' means.
    assert m["reconstruction_ssim"] > m["reconstruction_ssim_other_classes"] + 0.1
    assert finding.queries == 600 and finding.queries + finding.evaluation_queries == model.answered
    saved = np.load(tmp_path / finding.evidence["examples"])
    assert saved["reconstructions"].shape == (10, 1, 8, 8)
    assert saved["reconstructions"].min() >= 0 and saved["reconstructions"].max() <= 1
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


def test_black_box_gradient_estimates_also_reconstruct_within_budget(model, digits):
    finding = ClassReconstruction(classes=(0, 1, 3, 6, 7), steps=40, samples=8)(black_box(model), digits, budget=2400)
    assert finding.status is Status.VULNERABLE
    assert finding.metrics["gradients"] == "estimated" and finding.metrics["steps"] == 30  # 2400 // (5 classes * 16 probes)
    assert finding.queries <= 2400 and finding.queries + finding.evaluation_queries == model.answered
    assert finding.metrics["reconstruction_eval_accuracy"] >= 0.8


def test_coarsely_rounded_probabilities_stall_the_estimates(digits):
    target = RoundedTarget(zoo.load_target("digits_mlp_overfit"), decimals=0)
    finding = ClassReconstruction(steps=40)(target, digits, budget=8000)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["reconstruction_eval_accuracy"] < 0.5


def test_labels_only_is_out_of_scope_and_bad_parameters_are_errors(model, digits):
    labels = ClassReconstruction()(LabelOnlyTarget(model), digits)
    assert labels.status is Status.NOT_APPLICABLE
    assert ClassReconstruction(gradients="magic")(model, digits).status is Status.ERROR
    assert ClassReconstruction(classes=(12,))(model, digits).status is Status.ERROR
    exact = ClassReconstruction(gradients="exact")(black_box(model), digits)
    assert exact.status is Status.NOT_APPLICABLE
    assert ClassReconstruction()(model, digits, budget=5).status is Status.NOT_APPLICABLE


def _digit_images(scale=1.0, classes=10):
    from sklearn.datasets import load_digits

    from redline.data.base import Dataset

    d = load_digits()
    keep = d.target < classes
    x, y = d.images[keep][:, None].astype(np.float64) / 16.0 * scale, d.target[keep]
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[: len(x) * 2 // 3], order[len(x) * 2 // 3:]
    return Dataset("digits", x[train], y[train], x[test], y[test], modality="image", spec="test:digits")


def test_the_step_follows_the_input_range():
    # One model fed pixels in [0, 255] (weights rescaled, same answers): a raw step of 0.01
    # barely moved the images and the check said not_vulnerable.
    from sklearn.linear_model import LogisticRegression

    from redline.targets import load_target

    data = _digit_images(255.0)
    model = LogisticRegression(C=10, max_iter=2000).fit(data.x_train.reshape(len(data.x_train), -1) / 255.0,
                                                       data.y_train)
    model.coef_ = model.coef_ / 255.0
    finding = ClassReconstruction(steps=60)(load_target(model, data=data), data, budget=20_000)
    assert finding.status is Status.VULNERABLE, finding.summary


def test_too_few_classes_to_beat_chance_are_inconclusive():
    from sklearn.linear_model import LogisticRegression

    from redline.targets import load_target

    data = _digit_images(classes=3)
    model = LogisticRegression(C=10, max_iter=2000).fit(data.x_train.reshape(len(data.x_train), -1), data.y_train)
    finding = ClassReconstruction(steps=20)(load_target(model, data=data), data, budget=5_000)
    assert finding.status is Status.INCONCLUSIVE and "chance" in finding.reason


def test_reconstructions_the_target_does_not_recognise_do_not_count():
    # A heavily regularised logistic regression answers its 'reconstructions' at 0.10 (uniform)
    # while the check's linear evaluator, reading the same gradient direction, placed 8 of 10.
    from sklearn.linear_model import LogisticRegression

    from redline.targets import load_target

    data = _digit_images()
    model = LogisticRegression(C=1e-4, max_iter=2000).fit(data.x_train.reshape(len(data.x_train), -1), data.y_train)
    finding = ClassReconstruction(steps=60)(load_target(model, data=data), data, budget=20_000)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert finding.metrics["reconstruction_target_confidence"] < 0.5
