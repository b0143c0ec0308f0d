"""FM06.reprogramming: a learned frame makes the MNIST CNN read another data set, with its
gradients (white box) or from its probabilities alone (black box, zeroth-order)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline_testkit import counting_torch_target_class

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.evasion.fm06_reprogramming import (
    Reprogramming,
    fit_mapping,
    make_task,
    to_task,
)
from redline.checks.evasion.zeroth_order import (
    sphere_directions,
    sphere_gradient,
    sphere_probes,
)
from redline.findings import Status
from redline.targets.torch import TorchTarget


class _Constant(torch.nn.Module):
    """Answers the same probabilities whatever the input: nothing to reprogram."""

    def __init__(self):
        super().__init__()
        self.bias = torch.nn.Parameter(torch.linspace(0, 1, 10))

    def forward(self, x):
        return self.bias.expand(len(x), -1) + 0 * x.flatten(1)[:, :1]


@pytest.fixture(scope="module")
def mnist():
    return zoo.load_target("mnist_cnn"), zoo.load_data_for("mnist_cnn")


def test_squares_task_draws_as_many_squares_as_its_label_says():
    x, y = make_task("squares", 50, 12, 5, np.random.default_rng(0))
    assert x.shape == (50, 12, 12) and set(np.unique(y)) <= set(range(5))
    assert np.array_equal(x.reshape(50, -1).sum(axis=1), (y + 1) * 9)  # 3x3 squares


def test_label_mapping_recovers_a_permutation():
    rng = np.random.default_rng(1)
    task = rng.integers(0, 4, 200)
    perm = np.array([7, 2, 9, 0])
    answers = perm[task]
    answers[:10] = 5  # some noise
    mapping = fit_mapping(answers, task, 4, 10)
    assert np.array_equal(mapping, perm)
    assert np.mean(to_task(answers, mapping) == task) >= 0.95


def test_white_box_reprogramming_flags_the_cnn(mnist, tmp_path):
    f = Reprogramming()(*mnist, budget=3000, ctx=CheckContext(tmp_path))
    m = f.metrics
    assert f.status is Status.VULNERABLE, f.summary
    assert m["task_accuracy"] >= max(m["chance_accuracy"], m["unprogrammed_accuracy"]) + 0.15
    assert f.queries <= 3000 and m["access"] == "white_box"
    saved = np.load(tmp_path / f.evidence["examples"])
    assert saved["program"].shape == (1, 28, 28)


def test_a_model_that_ignores_its_input_cannot_be_reprogrammed(mnist):
    target, data = mnist
    dummy = TorchTarget(_Constant(), input_spec=target.input_spec, n_classes=10)
    f = Reprogramming()(dummy, data, budget=3000)
    assert f.status is Status.NOT_VULNERABLE
    assert f.metrics["task_accuracy"] <= f.metrics["chance_accuracy"] + 0.05


def test_sphere_gradient_estimates_point_along_the_true_gradient():
    rng = np.random.default_rng(0)
    a = np.linspace(1.0, 3.0, 16)
    theta = rng.standard_normal(16)

    def loss(points):
        return 0.5 * (a * points**2).sum(axis=1)

    u = sphere_directions(400, 16, rng)
    grad = sphere_gradient(loss(sphere_probes(theta, u, 1e-3)), u, 1e-3)
    true = a * theta
    assert grad @ true / (np.linalg.norm(grad) * np.linalg.norm(true)) > 0.9
    assert 0.7 < np.linalg.norm(grad) / np.linalg.norm(true) < 1.3  # the d / q scaling keeps the size right
    with pytest.raises(ValueError, match="loss values"):
        sphere_gradient(np.zeros(3), u, 1e-3)


def test_black_box_reprogramming_beats_chance_with_probabilities_only(mnist):
    target, data = mnist
    counting = counting_torch_target_class()
    black = counting(target.module, input_spec=target.input_spec, n_classes=10)
    black.capabilities = type(black.capabilities)(outputs="probabilities", gradients=False)
    counting.answered = 0
    # At 10k queries the black-box program gains 0.14-0.23 over the blank frame depending on
    # the build and seed (benchmarks/bench_fm06_reprogramming.py), so the test asks for a
    # 10-point gain, over 4 standard errors above the blank frame on 300 task inputs.
    f = Reprogramming(min_gain=0.1)(black, data, budget=10_000)
    m = f.metrics
    assert m["access"] == "estimate" and m["program_parameters"] == 16
    assert f.status is Status.VULNERABLE, f.summary
    assert m["task_accuracy"] >= max(m["chance_accuracy"], m["unprogrammed_accuracy"]) + 0.1
    assert m["p_value"] < 1e-6
    # Every row the model answered is on the ledger, and the attack stayed within its budget.
    assert 9_000 < f.queries <= 10_000
    assert f.queries + f.evaluation_queries == counting.answered
    assert f"{f.queries} queries" in f.summary


def test_black_box_reprogramming_passes_a_model_that_ignores_its_input(mnist):
    target, data = mnist
    dummy = TorchTarget(_Constant(), input_spec=target.input_spec, n_classes=10)
    f = Reprogramming(access="estimate")(dummy, data, budget=4000)
    assert f.metrics["access"] == "estimate"
    assert f.status is Status.NOT_VULNERABLE
    assert f.metrics["task_accuracy"] <= f.metrics["chance_accuracy"] + 0.05


def test_black_box_runs_replay_from_their_seed(mnist):
    small = Reprogramming(access="estimate", n_train=100, n_test=100)
    first, again = (small(*mnist, budget=2000, seed=3) for _ in range(2))
    other = small(*mnist, budget=2000, seed=4)
    assert first.metrics == again.metrics and first.queries == again.queries
    assert other.metrics["mapping"] != first.metrics["mapping"] or other.metrics["task_accuracy"] != first.metrics["task_accuracy"]


def test_label_only_targets_are_out_of_reach():
    labels_only = zoo.load_target("mnist_cnn_labels")
    f = Reprogramming()(labels_only, zoo.load_data_for("mnist_cnn_labels"))
    assert f.status is Status.NOT_APPLICABLE and "labels" in f.reason
    assert f.queries == 0


def test_bad_parameters_are_errors(mnist):
    assert Reprogramming(task="chess")(*mnist).status is Status.ERROR
    assert Reprogramming(inner_size=26)(*mnist).status is Status.ERROR
    bad = Reprogramming(access="estimate", smoothing=0)(*mnist)
    assert bad.status is Status.ERROR and "smoothing" in bad.reason


def test_the_task_image_fits_the_target_or_the_reason_says_what_would():
    import torch.nn as nn

    from redline.targets.base import InputSpec
    from redline.targets.torch import TorchTarget

    def target(side):
        torch.manual_seed(0)
        module = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 10))
        return TorchTarget(module, input_spec=InputSpec(shape=(1, side, side), dtype="float32", lower=0.0, upper=1.0),
                           n_classes=10)

    # 8x8 images: the default size shrinks to what fits (it used to be an error).
    small = Reprogramming(steps=2)(target(8), None, budget=1200)
    assert small.status in (Status.VULNERABLE, Status.NOT_VULNERABLE), small.reason
    # Counting 5 squares needs a 12-pixel task image: one line that says so, not a traceback.
    squares = Reprogramming(task="squares", inner_size=10)(target(16), None, budget=1200)
    assert squares.status is Status.ERROR and "use at least 12" in squares.reason
    assert "Traceback" not in squares.reason
    assert Reprogramming(task="squares", steps=2)(target(16), None, budget=1200).status is not Status.ERROR
    assert Reprogramming()(target(4), None, budget=1200).status is Status.NOT_APPLICABLE
    assert Reprogramming(inner_size="big")(target(16), None, budget=1200).status is Status.ERROR
