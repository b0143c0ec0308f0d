import numpy as np
import pytest

torch = pytest.importorskip("torch")

from redline_testkit import (
    bright_top_tiles,
    counting_torch_target_class,
    train_two_class_net,
    two_blobs,
)

from redline.checks.base import CheckContext
from redline.checks.fm01_square import SquareAttack, bump, margin_loss, window_fraction
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets.base import FeatureConstraints, InputSpec, LabelOnlyTarget

Counting = counting_torch_target_class()



@pytest.fixture(scope="module")
def blobs():
    x, y = two_blobs(800, binary_tail=True)  # three binary (integer) features
    return Dataset("blobs", x[:400], y[:400], x[400:], y[400:])


@pytest.fixture(scope="module")
def images():
    x, y = bright_top_tiles(600)
    return Dataset("tiles", x[:300], y[:300], x[300:], y[300:], modality="image")


@pytest.fixture(scope="module")
def model(blobs):
    return train_two_class_net(blobs.x_train, blobs.y_train)


@pytest.fixture(scope="module")
def image_model(images):
    return train_two_class_net(images.x_train, images.y_train)


def target(model, shape=(10,), constraints=None):
    Counting.answered = 0
    spec = InputSpec(shape=shape, lower=0.0, upper=1.0, constraints=constraints or FeatureConstraints())
    return Counting(model, input_spec=spec, n_classes=2)


def _sizes(ex, norm):
    delta = (ex["x_adv"] - ex["x"]).reshape(len(ex["x"]), -1)
    return np.abs(delta).max(1) if norm == "linf" else np.linalg.norm(delta, axis=1)


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 1.0)])
def test_undefended_model_is_flagged_within_budget_ball_and_bounds(model, blobs, tmp_path, norm, eps):
    t = target(model)
    finding = SquareAttack(norm=norm, epsilon=eps, n_inputs=30)(t, blobs, budget=3000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["success_rate"] > 0.8 and m["clean_accuracy"] >= 0.75
    assert m["robust_accuracy"] == pytest.approx(m["clean_accuracy"] * (1 - m["success_rate"]))
    assert 0 < finding.queries <= 3000
    assert finding.queries + finding.evaluation_queries == Counting.answered
    ex = np.load(tmp_path / finding.evidence["examples"])
    assert ex["queries"].max() <= m["queries_per_input"] == 3000 // m["attacked_inputs"]
    assert _sizes(ex, norm).max() <= eps + 1e-5
    assert ex["x_adv"].min() >= 0 and ex["x_adv"].max() <= 1
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


@pytest.mark.parametrize("norm,eps", [("linf", 0.3), ("l2", 2.0)])
def test_square_windows_on_images(image_model, images, tmp_path, norm, eps):
    t = target(image_model, shape=(1, 8, 8))
    finding = SquareAttack(norm=norm, epsilon=eps, n_inputs=20)(t, images, budget=2000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    assert finding.queries <= 2000 and finding.queries + finding.evaluation_queries == Counting.answered
    ex = np.load(tmp_path / finding.evidence["examples"])
    assert _sizes(ex, norm).max() <= eps + 1e-5
    assert any(p.endswith("examples.png") for p in finding.evidence["plots"])
    curve = finding.evidence["curve_queries"]
    assert curve["success_rate"] == sorted(curve["success_rate"])  # success can only grow with queries


def test_robust_control_is_not_flagged(model, blobs):
    # Epsilon far below the model's margin on almost every input: the decision cannot change.
    finding = SquareAttack(epsilon=0.005, n_inputs=30)(target(model), blobs, budget=3000)
    assert finding.status is Status.NOT_VULNERABLE
    assert finding.metrics["success_rate"] < 0.3
    assert finding.queries <= 3000


def test_labels_only_target_is_not_applicable(model, blobs):
    finding = SquareAttack()(LabelOnlyTarget(target(model)), blobs)
    assert finding.status is Status.NOT_APPLICABLE and "probabilities" in finding.reason


def test_feature_constraints_are_respected(model, blobs, tmp_path):
    fc = FeatureConstraints(immutable=(0, 1, 2), integer=(7, 8, 9))
    finding = SquareAttack(epsilon=0.6, n_inputs=20)(target(model, constraints=fc), blobs, budget=2000,
                                                      ctx=CheckContext(tmp_path))
    ex = np.load(tmp_path / finding.evidence["examples"])
    np.testing.assert_array_equal(ex["x_adv"][:, :3], ex["x"][:, :3])
    np.testing.assert_array_equal(ex["x_adv"][:, 7:], np.round(ex["x_adv"][:, 7:]))
    assert _sizes(ex, "linf").max() <= 0.6 + 1e-5
    assert finding.metrics["success_rate"] > 0  # the free features still suffice for some inputs


def test_same_seed_same_result(model, blobs, tmp_path):
    runs = []
    for sub in ("a", "b"):
        f = SquareAttack(epsilon=0.2, n_inputs=20)(target(model), blobs, budget=1000, seed=3,
                                                   ctx=CheckContext(tmp_path / sub))
        runs.append((f.metrics, f.queries, np.load(tmp_path / sub / f.evidence["examples"])["x_adv"]))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    np.testing.assert_array_equal(runs[0][2], runs[1][2])


def test_tiny_budget_attacks_fewer_inputs_instead_of_overspending(model, blobs):
    finding = SquareAttack(epsilon=0.3, n_inputs=40)(target(model), blobs, budget=7)
    assert finding.queries <= 7 and finding.metrics["attacked_inputs"] == 7


def test_bad_parameters_are_reported_as_errors(model, blobs):
    finding = SquareAttack(norm="l7")(target(model), blobs)
    assert finding.status is Status.ERROR and "norm" in finding.reason


def test_building_blocks():
    assert window_fraction(0.8, 0, 1000) == 0.8
    assert window_fraction(0.8, 999, 1000) == pytest.approx(0.8 / 16)  # the 10,000-query schedule, cut short
    assert window_fraction(0.8, 19_999, 20_000) == pytest.approx(0.8 / 512)
    probs = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
    np.testing.assert_allclose(margin_loss(probs, np.array([0, 0])), [np.log(0.7 / 0.2), np.log(0.2 / 0.5)])
    b = bump(5, np.random.default_rng(0))
    assert b.shape == (5, 5) and np.linalg.norm(b) == pytest.approx(1.0)
    halves = (b[:2], b[2:]) if (b[:2] > 0).all() else (b[:, :2], b[:, 2:])  # randomly transposed
    assert (halves[0] > 0).all() and (halves[1] < 0).all()
