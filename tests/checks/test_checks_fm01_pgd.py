import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline_testkit import counting_torch_target_class, train_two_class_net, two_blobs

from redline.checks.base import CheckContext
from redline.checks.evasion.fm01_pgd import ProjectedGradientDescent
from redline.data.base import Dataset
from redline.defences.labels_only import LabelOnlyTarget
from redline.findings import Status
from redline.targets.base import FeatureConstraints, InputSpec

Counting = counting_torch_target_class()


@pytest.fixture(scope="module")
def blobs():
    x, y = two_blobs(800)
    return Dataset("blobs", x[:400], y[:400], x[400:], y[400:])


@pytest.fixture(scope="module")
def model(blobs):
    return train_two_class_net(blobs.x_train, blobs.y_train)


def target(model, constraints=None):
    Counting.answered = 0
    return Counting(model, input_spec=InputSpec(shape=(10,), lower=0.0, upper=1.0,
                                                constraints=constraints or FeatureConstraints()), n_classes=2)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 1.0)])
def test_large_perturbations_evade_and_stay_within_budget_and_ball(model, blobs, tmp_path, norm, eps):
    t = target(model)
    finding = ProjectedGradientDescent(norm=norm, epsilon=eps, n_inputs=40)(t, blobs, budget=3000,
                                                                          ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["success_rate"] > 0.9 and m["clean_accuracy"] >= 0.75
    assert m["robust_accuracy"] == pytest.approx(m["clean_accuracy"] * (1 - m["success_rate"]))
    assert 0 < finding.queries <= 3000
    assert finding.queries + finding.evaluation_queries == Counting.answered
    ex = np.load(tmp_path / finding.evidence["examples"])
    delta = (ex["x_adv"] - ex["x"]).reshape(len(ex["x"]), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    assert size.max() <= eps + 1e-5
    assert ex["x_adv"].min() >= 0 and ex["x_adv"].max() <= 1
    assert len(finding.evidence["curve"]["epsilon"]) == 4
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


def test_tiny_perturbations_do_not_evade(model, blobs):
    finding = ProjectedGradientDescent(epsilon=0.005, n_inputs=40)(target(model), blobs, budget=3000)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["success_rate"] < 0.3


def test_feature_constraints_are_respected(model, blobs, tmp_path):
    fc = FeatureConstraints(immutable=tuple(range(5)))
    finding = ProjectedGradientDescent(epsilon=0.3, n_inputs=20)(target(model, fc), blobs, budget=2000,
                                                                ctx=CheckContext(tmp_path))
    ex = np.load(tmp_path / finding.evidence["examples"])
    np.testing.assert_array_equal(ex["x_adv"][:, :5], ex["x"][:, :5])


def test_small_budget_shrinks_the_attack_instead_of_overspending(model, blobs):
    finding = ProjectedGradientDescent(epsilon=0.3, n_inputs=40, steps=10)(target(model), blobs, budget=30)
    assert finding.status in (Status.VULNERABLE, Status.INCONCLUSIVE)
    assert finding.queries <= 30


def test_a_budget_that_attacks_two_inputs_cannot_pass_the_model(model, blobs):
    """At epsilon 0.005 the model is robust (previous test), but a budget that attacks only two
    inputs cannot show it: 0 of 2 is compatible with an 84% success rate. Inconclusive, with
    what would decide, never a pass."""
    finding = ProjectedGradientDescent(epsilon=0.005, n_inputs=40, steps=10)(target(model), blobs, budget=30)
    assert finding.metrics["attacked_inputs"] == 2 and finding.metrics["success_rate_ci"][1] > 0.3
    assert finding.status is Status.INCONCLUSIVE and "budget let only 2 inputs" in finding.reason, finding.reason


def test_without_gradients_the_check_does_not_apply(model, blobs):
    finding = ProjectedGradientDescent()(LabelOnlyTarget(target(model)), blobs)
    assert finding.status is Status.NOT_APPLICABLE and "gradients" in finding.reason


def test_bad_parameters_are_reported_as_errors(model, blobs):
    finding = ProjectedGradientDescent(norm="l7")(target(model), blobs)
    assert finding.status is Status.ERROR and "norm" in finding.reason


class _Round(torch.nn.Module):
    """A squeezing front end: rounds each feature to 0 or 1 (zero gradient)."""

    def forward(self, x):
        return torch.round(x)


def test_masking_layers_are_found_and_nothing_else(model, blobs):
    from redline.checks.evasion.bpda import masking_layers

    squeezed = torch.nn.Sequential(_Round(), model)
    assert masking_layers(target(squeezed), blobs.x_test[:4]) == ["0"]
    assert masking_layers(target(model), blobs.x_test[:4]) == []


def test_bpda_breaks_through_input_squeezing_that_stalls_plain_pgd():
    """The zoo's squeezed CNN (1-bit pixels) stalls plain PGD with zero gradients; with the
    identity backward pass (BPDA) the same budget breaks it, judged on the deployed model."""
    from redline import zoo

    t, d = zoo.load_target("mnist_cnn_squeezed"), zoo.load_data_for("mnist_cnn_squeezed")

    def run(bpda):
        return ProjectedGradientDescent(epsilon=0.4, n_inputs=16, steps=20, curve_points=1, bpda=bpda)(
            t, d, budget=2000, seed=0)

    plain, through = run(False), run(True)
    assert plain.metrics["success_rate"] == 0.0 and plain.metrics["bpda_layers"] == []
    assert through.metrics["success_rate"] >= 0.15 and through.metrics["bpda_layers"] == ["0"]
    assert "BPDA" in through.summary
