"""FM01.min_norm: smallest perturbation per input, L2 and L-inf."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline_testkit import counting_torch_target_class, train_two_class_net, two_blobs

from redline.checks.base import CheckContext
from redline.checks.evasion.fm01_min_norm import FastMinimumNorm
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
def test_finds_small_perturbations_and_reports_them_per_input(model, blobs, tmp_path, norm, eps):
    finding = FastMinimumNorm(norm=norm, epsilon=eps, n_inputs=40, steps=60)(
        target(model), blobs, budget=5000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["found_rate"] == 1.0 and m["success_rate"] > 0.9
    assert finding.queries + finding.evaluation_queries == Counting.answered
    ex = np.load(tmp_path / finding.evidence["examples"])
    delta = (ex["x_adv"] - ex["x"]).reshape(len(ex["x"]), -1)
    size = np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)
    # The reported minimal norms are the norms of the saved examples, and those are errors.
    np.testing.assert_allclose(size, ex["min_norm"], rtol=1e-4, atol=1e-6)
    assert np.all(ex["y_adv"] != ex["y"])
    assert ex["x_adv"].min() >= 0 and ex["x_adv"].max() <= 1
    assert len(finding.evidence["min_norms"]) == len(ex["x"])
    assert m["median_min_norm"] == pytest.approx(float(np.median(ex["min_norm"])))
    # The robustness curve is monotone and reaches every input by twice epsilon.
    rates = finding.evidence["curve"]["success_rate"]
    assert rates == sorted(rates)
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_minimal_norms_are_smaller_than_what_pgd_needs(model, blobs, norm):
    """The minimum-norm search must beat a fixed-budget attack's perturbation sizes: PGD at a
    radius just below FMN's median fails on most inputs FMN breaks there."""
    fmn = FastMinimumNorm(norm=norm, n_inputs=40, steps=80)(target(model), blobs, budget=10_000)
    med = fmn.metrics["median_min_norm"]
    below = ProjectedGradientDescent(norm=norm, epsilon=0.8 * med, n_inputs=40, steps=40, restarts=2,
                                     curve_points=1)(target(model), blobs, budget=10_000)
    # FMN breaks half the inputs at `med`; 20% less budget should leave PGD well under half.
    assert below.metrics["success_rate"] < 0.45


def test_negative_control_epsilon_below_the_minimal_norms_passes(model, blobs):
    finding = FastMinimumNorm(norm="l2", epsilon=0.01, n_inputs=40, steps=40)(target(model), blobs, budget=5000)
    assert finding.status is Status.NOT_VULNERABLE
    # The attack still measured how far away the boundary is.
    assert finding.metrics["found_rate"] > 0.9 and finding.metrics["median_min_norm"] > 0.01


def test_feature_constraints_are_respected(model, blobs, tmp_path):
    fc = FeatureConstraints(immutable=tuple(range(5)))
    finding = FastMinimumNorm(norm="l2", n_inputs=20, steps=40)(target(model, fc), blobs, budget=2000,
                                                                ctx=CheckContext(tmp_path))
    ex = np.load(tmp_path / finding.evidence["examples"])
    np.testing.assert_array_equal(ex["x_adv"][:, :5], ex["x"][:, :5])
    assert finding.metrics["found_rate"] > 0.5


def test_budget_is_never_exceeded(model, blobs):
    t = target(model)
    finding = FastMinimumNorm(steps=50, n_inputs=40)(t, blobs, budget=120)
    assert finding.queries <= 120
    assert finding.metrics["attacked_inputs"] == 2


def test_labels_only_target_is_not_applicable(model, blobs):
    finding = FastMinimumNorm()(LabelOnlyTarget(target(model)), blobs, budget=1000)
    assert finding.status is Status.NOT_APPLICABLE


def test_bad_parameters_are_errors_not_tracebacks(model, blobs):
    finding = FastMinimumNorm(norm="l1")(target(model), blobs, budget=1000)
    assert finding.status is Status.ERROR and "norm" in finding.reason
    assert FastMinimumNorm(gamma=0.2).get_params()["gamma"] == 0.2


@pytest.mark.parametrize("name,norm", [("mnist_cnn", "linf")])
def test_adversarially_trained_twin_needs_larger_perturbations(name, norm):
    from redline import zoo

    def run(entry):
        return FastMinimumNorm(norm=norm, n_inputs=8, steps=30)(zoo.load_target(entry), zoo.load_data_for(entry),
                                                                 budget=1000, seed=0)

    plain, robust = run(name), run(f"{name}_robust")
    assert plain.status is Status.VULNERABLE and robust.status is Status.NOT_VULNERABLE
    assert robust.metrics["median_min_norm"] > 1.4 * plain.metrics["median_min_norm"]
