"""FM01.transfer: surrogate-crafted examples replayed against the zoo's MNIST CNN and its twins."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline_testkit import counting_torch_target_class

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.evasion.fm01_transfer import TransferAttack
from redline.defences.labels_only import LabelOnlyTarget
from redline.findings import Status
from redline.zoo.hardened import SqueezedCnnRecipe

FAST = {"n_inputs": 40, "surrogate_epochs": 6}


@pytest.fixture(scope="module")
def mnist():
    return zoo.load_target("mnist_cnn"), zoo.load_data_for("mnist_cnn")


Counting = counting_torch_target_class()


def counting(module, like):
    Counting.answered = 0
    return Counting(module, input_spec=like.input_spec, n_classes=like.n_classes)


@pytest.fixture(scope="module")
def plain(mnist):
    target, data = mnist
    return TransferAttack(**FAST)(counting(target.module, target), data, budget=1000)


def test_undefended_cnn_is_fooled_by_transfer_within_budget(mnist, plain, tmp_path):
    m = plain.metrics
    assert plain.status is Status.VULNERABLE, plain.summary
    assert m["success_rate"] >= 0.4 and m["surrogate_agreement"] >= 0.85
    assert m["labelling_queries"] + m["replay_queries"] == plain.queries <= 1000
    assert plain.queries + plain.evaluation_queries == Counting.answered
    assert m["median_linf"] <= m["epsilon"] + 1e-5
    assert m["robust_accuracy"] == pytest.approx(m["clean_accuracy"] * (1 - m["success_rate"]))


def test_examples_stay_in_the_ball_and_range(mnist, tmp_path):
    target, data = mnist
    finding = TransferAttack(epsilon=0.2, **FAST)(target, data, budget=800, ctx=CheckContext(tmp_path))
    ex = np.load(tmp_path / finding.evidence["examples"])
    assert np.abs(ex["x_adv"] - ex["x"]).max() <= 0.2 + 1e-5
    assert ex["x_adv"].min() >= 0 and ex["x_adv"].max() <= 1


def test_labels_only_do_not_stop_a_transfer_attack(mnist, plain):
    target, data = mnist
    finding = TransferAttack(**FAST)(LabelOnlyTarget(target), data, budget=1000)
    assert finding.status is Status.VULNERABLE
    assert abs(finding.metrics["success_rate"] - plain.metrics["success_rate"]) <= 0.15


def test_bit_depth_squeezing_blunts_small_linf_transfer(mnist, plain):
    target, data = mnist
    squeezed = SqueezedCnnRecipe(n_classes=10).build((1, 28, 28))
    squeezed[1].load_state_dict(target.module.state_dict())
    finding = TransferAttack(**FAST)(counting(squeezed.eval(), target), data, budget=1000)
    assert finding.metrics["success_rate"] <= plain.metrics["success_rate"] / 2
    assert finding.status is Status.NOT_VULNERABLE


def test_a_tiny_budget_is_not_applicable_and_bad_parameters_are_errors(mnist):
    target, data = mnist
    assert TransferAttack(**FAST)(target, data, budget=10).status is Status.NOT_APPLICABLE
    bad = TransferAttack(epsilon=-1)(target, data, budget=500)
    assert bad.status is Status.ERROR and "epsilon" in bad.reason
    bad = TransferAttack(architectures=("resnet",))(target, data, budget=500)
    assert bad.status is Status.ERROR and "architecture" in bad.reason


@pytest.mark.slow
def test_adversarially_trained_twin_resists_transfer(plain):
    finding = TransferAttack(**FAST)(zoo.load_target("mnist_cnn_robust"), zoo.load_data_for("mnist_cnn_robust"),
                                     budget=1000)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["success_rate"] < plain.metrics["success_rate"] / 2


def _subset(data, n_test, pool):
    from redline.data.base import Dataset

    return Dataset("mnist-small", data.x_train, data.y_train, data.x_test[:n_test], data.y_test[:n_test],
                   pool[0] if pool else None, pool[1] if pool else None, modality="image")


def test_surrogate_agreement_is_measured_on_rows_the_surrogate_never_saw(mnist):
    """Every test row is attacked here (40 rows, n_inputs 40): agreement comes from pool rows
    the labelling budget did not reach. It used to read 0.0 (an empty held-out set)."""
    target, data = mnist
    small = _subset(data, 40, (data.x_pool[:900], data.y_pool[:900]))
    finding = TransferAttack(**FAST)(target, small, budget=600)
    m = finding.metrics
    assert m["labelling_queries"] <= 600 and m["surrogate_agreement_rows"] == 900 - m["labelling_queries"]
    assert m["surrogate_agreement"] >= 0.8 and m["surrogate_success_rate"] > 0.5
    assert "held-out rows" in finding.summary


def test_without_unseen_rows_agreement_is_not_reported_as_zero(mnist):
    """No pool: the surrogate is labelled on the test rows, which are also all attacked."""
    target, data = mnist
    small = _subset(data, 60, None)
    finding = TransferAttack(**{**FAST, "n_inputs": 60})(target, small, budget=2000)
    assert finding.metrics["surrogate_agreement"] is None and finding.metrics["surrogate_agreement_rows"] == 0
    assert "agreement not measured" in finding.summary
