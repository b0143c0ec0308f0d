"""FM06.reprogramming: a learned frame makes the MNIST CNN count squares, with its gradients
(white box) or from its probabilities alone (black box, zeroth-order); reading digits is the
CNN's own task and is not claimed as reprogramming."""
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
    task_overlap,
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


class _Gated(torch.nn.Module):
    """A model with a second, hidden function that a crafted frame switches on.

    Its frame dark (any ordinary input), it answers class 0. Its frame bright, it reads the
    10x10 centre of the image as a digit (enlarged to MNIST's 20 pixels, through the zoo CNN)
    and answers under a permutation that moves every class: no index means its digit, and
    neither a blank frame nor the digits shown as they are switch it on. Reprogramming in
    miniature, and a positive control that does not rest on a task the model already does.
    """

    PERMUTATION = (3, 7, 0, 9, 1, 8, 2, 5, 4, 6)

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn
        self.register_buffer("index", torch.tensor(self.PERMUTATION))

    def forward(self, x):
        frame = x.clone()
        frame[:, :, 9:19, 9:19] = 0
        on = torch.sigmoid(40 * (frame.flatten(1).sum(1) / (28 * 28 - 100) - 0.5))[:, None]
        centre = torch.nn.functional.interpolate(x[:, :, 9:19, 9:19], size=(20, 20), mode="bilinear",
                                                 align_corners=False)
        logits = self.cnn(torch.nn.functional.pad(centre, (4, 4, 4, 4)))
        permuted = torch.empty_like(logits)
        permuted[:, self.index] = logits
        off = torch.full_like(logits, -5.0)
        off[:, 0] = 5.0
        return on * permuted + (1 - on) * off


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


def test_white_box_reprogramming_flags_the_cnn_on_a_foreign_task(mnist, tmp_path):
    # Counting squares is no digit classifier's task. The zoo CNN gains 0.12-0.15 over the
    # blank frame on it (3,000-20,000 queries), under the default 0.15: the test asks for 0.1.
    f = Reprogramming(task="squares", min_gain=0.1)(*mnist, budget=3000, ctx=CheckContext(tmp_path))
    m = f.metrics
    assert f.status is Status.VULNERABLE, f.summary
    assert m["task"] == "squares" and m["task_overlap"] is False
    baseline = max(m["chance_accuracy"], m["unprogrammed_accuracy"], m["native_accuracy"])
    assert m["task_accuracy"] >= baseline + 0.1 and m["program_gain"] == pytest.approx(m["task_accuracy"] - baseline)
    assert f.queries <= 3000 and m["access"] == "white_box"
    saved = np.load(tmp_path / f.evidence["examples"])
    assert saved["program"].shape == (1, 28, 28)


def test_digits_are_a_digit_classifiers_own_task(mnist):
    # The red team's finding: task=digits (then the default) flagged every honest digit
    # classifier Important, with a learned mapping that sent 8 of 10 digits to themselves.
    f = Reprogramming(task="digits")(*mnist, budget=3000)
    m = f.metrics
    assert f.status is not Status.VULNERABLE, f.summary
    assert m["task_overlap"] is True and m["identity_mapping_share"] >= 0.5 and m["identity_mapping_p_value"] < 0.01
    # Unaided, digits drawn 20 pixels tall are read as their own class most of the time.
    assert m["native_identity_accuracy"] >= 0.4 and m["native_size"] == 20
    assert m["native_accuracy"] >= m["unprogrammed_accuracy"]
    assert "model's own" in f.summary and "map to the target class of the same index" in f.summary


def test_a_program_on_the_models_own_task_is_inconclusive_not_vulnerable(mnist, monkeypatch):
    # Were the unaided digits read no better than chance, the program would beat every
    # baseline; the identity mapping still names the overlap, and nothing is claimed.
    unaided = {"accuracy": 0.0, "identity_correct": 0, "identity_size": 14}
    monkeypatch.setattr(Reprogramming, "_native", staticmethod(lambda *args: unaided))
    f = Reprogramming(task="digits")(*mnist, budget=3000)
    m = f.metrics
    assert m["program_gain"] >= 0.15 and m["p_value"] < 0.01
    assert f.status is Status.INCONCLUSIVE, f.summary
    assert "model's own task" in f.reason and "same index" in f.reason and "task=squares" in f.reason


def test_the_default_task_cannot_be_a_digit_classifiers_own(mnist):
    import torch.nn as nn

    from redline.targets.base import InputSpec

    assert Reprogramming()._task(mnist[0]) == "squares"
    small = TorchTarget(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
                        input_spec=InputSpec(shape=(1, 8, 8), dtype="float32", lower=0.0, upper=1.0), n_classes=10)
    assert Reprogramming()._task(small) == "digits"  # 8x8 images have no room to count squares
    f = Reprogramming(n_train=100, n_test=100)(*mnist, budget=1500)
    assert f.metrics["task"] == "squares" and f.status is not Status.VULNERABLE, f.summary


def test_the_overlap_test_counts_own_index_classes_against_chance():
    ten = np.arange(10)
    own = task_overlap(ten, 10, {"native": 30, "unprogrammed": 30}, 300, 0.12, 0.15)
    assert own["overlap"] and own["identity_mapping_share"] == 1.0 and own["identity_mapping_p_value"] < 1e-9
    shuffled = np.array([3, 7, 0, 9, 1, 8, 2, 5, 4, 6])  # no class on its own index
    foreign = task_overlap(shuffled, 10, {"native": 36, "unprogrammed": 40}, 300, 0.12, 0.15)
    assert not foreign["overlap"] and foreign["identity_mapping_share"] == 0.0 and foreign["reason"] == ""
    # Four of ten on their own index is p = 0.013 for a blind mapping: not yet; five is.
    assert not task_overlap(np.r_[0, 1, 2, 3, shuffled[4:]], 10, {}, 300, 0.12, 0.15)["overlap"]
    assert task_overlap(np.r_[0, 1, 2, 3, 4, 9, 8, 5, 7, 6], 10, {}, 300, 0.12, 0.15)["overlap"]
    # Unaided identity reading far above chance counts on its own.
    read = task_overlap(shuffled, 10, {"native": 150, "unprogrammed": 30}, 300, 0.12, 0.15)
    assert read["overlap"] and "50%" in read["reason"] and read["native_identity_accuracy"] == 0.5


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
    # The zoo CNN's gains on the digits task (0.14-0.23 over the blank frame at 10k queries)
    # were its own task, and squares stay near chance with 16 program parameters; the gated
    # model's hidden function is a task nothing but a program reaches.
    target, data = mnist
    counting = counting_torch_target_class()
    black = counting(_Gated(target.module).eval(), input_spec=target.input_spec, n_classes=10)
    black.capabilities = type(black.capabilities)(outputs="probabilities", gradients=False)
    counting.answered = 0
    f = Reprogramming(task="digits")(black, data, budget=10_000)
    m = f.metrics
    assert m["access"] == "estimate" and m["program_parameters"] == 16
    assert f.status is Status.VULNERABLE, f.summary
    assert m["task_overlap"] is False and m["identity_mapping_share"] <= 0.2
    assert m["task_accuracy"] >= max(m["chance_accuracy"], m["unprogrammed_accuracy"], m["native_accuracy"]) + 0.15
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
