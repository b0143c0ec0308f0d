"""FM01 on tables in raw feature units: a per-feature epsilon (a fraction of each column's
range), white-box attacks that move every column in proportion to its range, and a robust
model that passes next to its fragile twin."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
sklearn = pytest.importorskip("sklearn")

from sklearn.linear_model import LogisticRegression

from redline.checks.evasion.fm01_decision import DecisionAttack
from redline.checks.evasion.fm01_min_norm import FastMinimumNorm
from redline.checks.evasion.fm01_pgd import ProjectedGradientDescent
from redline.checks.evasion.fm01_square import SquareAttack
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets.resolve import load_target


@pytest.fixture(scope="module")
def raw_breast_cancer():
    """scikit-learn's breast cancer table as measured: columns from 0.05 to 4000 wide."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    x, y = bunch.data[order].astype(np.float32), bunch.target[order]
    return Dataset("breast_cancer_raw", x[:400], y[:400], x[400:], y[400:])


@pytest.fixture(scope="module")
def raw_logreg(raw_breast_cancer):
    d = raw_breast_cancer
    model = LogisticRegression(max_iter=10_000).fit(d.x_train, d.y_train)
    target = load_target(model, data=d)
    assert target.capabilities.gradients  # the white-box mirror
    return target


def test_the_input_spec_keeps_each_columns_range(raw_logreg, raw_breast_cancer):
    spec = raw_logreg.input_spec
    lo, hi = spec.feature_bounds()
    rows = np.concatenate([raw_breast_cancer.x_train, raw_breast_cancer.x_test])
    np.testing.assert_allclose(lo, rows.min(0), rtol=1e-6)
    np.testing.assert_allclose(hi, rows.max(0), rtol=1e-6)
    assert (hi - lo).max() / (hi - lo).min() > 1e4


def test_pgd_success_rises_with_epsilon(raw_logreg, raw_breast_cancer):
    rates = [ProjectedGradientDescent(epsilon=eps, n_inputs=48, curve_points=1)(
        raw_logreg, raw_breast_cancer, budget=3000, seed=0).metrics["success_rate"] for eps in (0.01, 0.03, 0.1)]
    assert rates[0] <= rates[1] <= rates[2], rates
    assert rates[2] >= 0.9 and rates[0] < rates[2]


@pytest.mark.parametrize("eps", [None, 0.02, 0.05])
def test_white_box_pgd_is_at_least_as_strong_as_black_box_square(raw_logreg, raw_breast_cancer, eps):
    """Same inputs (seed), same epsilon, same budget: gradients must not lose to guessing."""
    kw = {"epsilon": eps, "n_inputs": 48}
    pgd = ProjectedGradientDescent(curve_points=1, **kw)(raw_logreg, raw_breast_cancer, budget=3000, seed=1)
    square = SquareAttack(**kw)(raw_logreg, raw_breast_cancer, budget=3000, seed=1)
    assert pgd.metrics["epsilon"] == square.metrics["epsilon"]
    assert pgd.metrics["success_rate"] >= square.metrics["success_rate"], (pgd.summary, square.summary)
    mn = FastMinimumNorm(norm="linf", **kw)(raw_logreg, raw_breast_cancer, budget=3000, seed=1)
    assert mn.metrics["success_rate"] >= square.metrics["success_rate"] - 0.05, (mn.summary, square.summary)


def test_findings_state_the_per_feature_epsilon(raw_logreg, raw_breast_cancer, tmp_path):
    from redline.checks.base import CheckContext

    f = ProjectedGradientDescent(epsilon=0.05, n_inputs=16, curve_points=1)(
        raw_logreg, raw_breast_cancer, budget=1000, seed=0, ctx=CheckContext(tmp_path))
    lo, hi = raw_logreg.input_spec.feature_bounds()
    m = f.metrics
    assert m["epsilon"] == 0.05 and m["epsilon_units"] == "fraction of each feature's range"
    assert m["epsilon_abs_max"] == pytest.approx(0.05 * (hi - lo).max(), rel=1e-6)
    assert m["epsilon_abs_min"] == pytest.approx(0.05 * (hi - lo).min(), rel=1e-6)
    np.testing.assert_allclose(f.evidence["epsilon_per_feature"], 0.05 * (hi - lo), rtol=1e-6)
    assert "of each feature's range" in f.summary
    ex = np.load(tmp_path / f.evidence["examples"])
    moved = np.abs(ex["x_adv"].astype(np.float64) - ex["x"]) / (hi - lo)
    assert moved.max() <= 0.05 + 1e-4  # no column moved by more than its own epsilon
    assert (ex["x_adv"] >= lo - 1e-3).all() and (ex["x_adv"] <= hi + 1e-3).all()


# -- a robust model and its fragile twin --------------------------------------------------------

_WIDTHS = np.geomspace(0.05, 4000.0, 20)  # the weak columns, in raw units


def _twins_data(n=1200, seed=0):
    """Column 0 separates the classes with a wide gap (a quarter of its 1000-wide range on
    each side of the middle); columns 1-20, 0.05 to 4000 wide, each carry a weak, overlapping
    hint of the class. Together the weak columns predict the class well too."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    strong = np.where(y == 1, rng.uniform(750, 1000, n), rng.uniform(0, 250, n))
    weak = np.where(y[:, None] == 1, rng.uniform(0.3, 1.0, (n, 20)), rng.uniform(0.0, 0.7, (n, 20))) * _WIDTHS
    x = np.column_stack([strong, weak]).astype(np.float32)
    half = n // 2
    return Dataset("twins", x[:half], y[:half], x[half:], y[half:])


def _fit_on(data, columns):
    """A logistic regression on full rows whose weights are zero outside ``columns``: fitted
    on those columns (standardised), then written back in raw units."""
    x, y = data.x_train.astype(np.float64), data.y_train
    scale = x[:, columns].std(axis=0)
    part = LogisticRegression(C=10.0, max_iter=10_000).fit(x[:, columns] / scale, y)
    model = LogisticRegression(max_iter=10_000).fit(x, y)  # a fitted estimator of the right width
    coef = np.zeros((1, x.shape[1]))
    coef[0, columns] = part.coef_[0] / scale
    model.coef_, model.intercept_ = coef, part.intercept_.copy()
    return model


@pytest.fixture(scope="module")
def twins():
    data = _twins_data()
    robust = load_target(_fit_on(data, [0]), data=data)
    fragile = load_target(_fit_on(data, list(range(1, 21))), data=data)
    for t in (robust, fragile):
        assert (t.predict_labels(data.x_test) == data.y_test).mean() > 0.9
    return data, robust, fragile


@pytest.mark.parametrize("check", [ProjectedGradientDescent(n_inputs=48), SquareAttack(n_inputs=48),
                                   FastMinimumNorm(norm="linf", n_inputs=48)], ids=lambda c: c.id)
def test_the_robust_model_passes_and_its_fragile_twin_does_not(twins, check):
    """At the default epsilon (0.2 of each column's range) no column-0 change reaches the
    robust model's boundary (a quarter of the range away), while nudging all weak columns
    together flips the fragile one. One absolute epsilon for all columns (0.2 of the widest,
    800) would also have 'broken' the robust model by rewriting column 0."""
    data, robust, fragile = twins
    passed = check(robust, data, budget=4000, seed=0)
    flagged = check(fragile, data, budget=4000, seed=0)
    assert passed.status is Status.NOT_VULNERABLE and passed.metrics["success_rate"] == 0.0, passed.summary
    assert flagged.status is Status.VULNERABLE and flagged.metrics["success_rate"] >= 0.5, flagged.summary


def test_default_l2_and_labels_only_agree_on_the_robust_model(twins):
    data, robust, _ = twins
    for check in (FastMinimumNorm(n_inputs=32), DecisionAttack(n_inputs=16)):
        finding = check(robust, data, budget=3000, seed=0)
        assert finding.metrics["epsilon"] == pytest.approx(0.2)  # tables: L2 default = the L-inf one
        assert finding.status is Status.NOT_VULNERABLE, finding.summary


def test_pgd_reaches_a_category_one_step_away():
    """Category spacing 0.19 of the range, epsilon 0.2: each PGD step (0.025) is far shorter
    than half the spacing, so snapping the iterate every step would return it to where it
    started; the straight-through iterate accumulates the steps and reaches the category."""
    from redline.targets.base import FeatureConstraints, InputSpec
    from redline.targets.torch import TorchTarget

    net = torch.nn.Linear(2, 2)
    with torch.no_grad():  # class 1 once feature 0 passes 0.1; feature 1 does not matter
        net.weight.copy_(torch.tensor([[0.0, 0.0], [20.0, 0.0]]))
        net.bias.copy_(torch.tensor([0.0, -2.0]))
    spec = InputSpec((2,), lower=0.0, upper=1.0, feature_lower=(0.0, 0.0), feature_upper=(1.0, 1.0),
                     constraints=FeatureConstraints(categorical=((0, (0.0, 0.19, 0.6, 1.0)),)))
    target = TorchTarget(net, input_spec=spec, n_classes=2)
    x = np.column_stack([np.zeros(40), np.linspace(0, 1, 40)]).astype(np.float32)
    data = Dataset("cat", x, np.zeros(40, int), x, np.zeros(40, int))
    finding = ProjectedGradientDescent(epsilon=0.2, n_inputs=40, curve_points=1)(target, data, budget=2000, seed=0)
    assert finding.metrics["success_rate"] >= 0.9, finding.summary
    ex_ok = finding.metrics["median_linf"]
    assert ex_ok == pytest.approx(0.19, abs=1e-5)  # exactly one category step, inside the ball
