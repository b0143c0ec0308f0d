"""FM06.reprogramming: a learned frame makes the MNIST CNN read another data set."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.fm06_reprogramming import (
    Reprogramming,
    fit_mapping,
    make_task,
    to_task,
)
from redline.findings import Status
from redline.targets.base import LabelOnlyTarget
from redline.targets.torch import TorchTarget


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
    f = Reprogramming()(*mnist, budget=8000, ctx=CheckContext(tmp_path))
    m = f.metrics
    assert f.status is Status.VULNERABLE, f.summary
    assert m["task_accuracy"] >= max(m["chance_accuracy"], m["unprogrammed_accuracy"]) + 0.15
    assert f.queries <= 8000 and m["access"] == "white_box"
    saved = np.load(tmp_path / f.evidence["examples"])
    assert saved["program"].shape == (1, 28, 28)


def test_a_model_that_ignores_its_input_cannot_be_reprogrammed(mnist):
    target, data = mnist

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.linspace(0, 1, 10))

        def forward(self, x):
            return self.bias.expand(len(x), -1) + 0 * x.flatten(1)[:, :1]

    dummy = TorchTarget(Constant(), input_spec=target.input_spec, n_classes=10)
    f = Reprogramming()(dummy, data, budget=3000)
    assert f.status is Status.NOT_VULNERABLE
    assert f.metrics["task_accuracy"] <= f.metrics["chance_accuracy"] + 0.05


def test_black_box_estimation_counts_its_queries(mnist):
    target, data = mnist

    class NoGradients(TorchTarget):
        pass

    black = NoGradients(target.module, input_spec=target.input_spec, n_classes=10)
    black.capabilities = type(black.capabilities)(outputs="probabilities", gradients=False)
    f = Reprogramming(directions=4, batch_size=16, n_train=200, n_test=200)(black, data, budget=6000)
    assert f.status in (Status.VULNERABLE, Status.NOT_VULNERABLE)
    assert f.metrics["access"] == "estimate" and f.metrics["program_parameters"] == 49
    assert 0 < f.queries <= 6000


def test_label_only_targets_are_out_of_reach(mnist):
    target, data = mnist
    f = Reprogramming()(LabelOnlyTarget(target), data)
    assert f.status is Status.NOT_APPLICABLE and "labels" in f.reason


def test_bad_parameters_are_errors(mnist):
    assert Reprogramming(task="chess")(*mnist).status is Status.ERROR
    assert Reprogramming(inner_size=26)(*mnist).status is Status.ERROR
