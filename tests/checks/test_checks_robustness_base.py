"""The accuracy-under-transformation base (checks/robustness/base.py), through a small check
defined here: Gaussian noise at growing severities on a scikit-learn digits model lowers
accuracy step by step; the identity transformation changes nothing; queries, RNG and
verdicts follow the base's contract. No check id is registered for it."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression

from redline.checks import all_checks
from redline.checks.base import CheckContext
from redline.checks.robustness.base import TRANSFORMATION_METRICS, AccuracyUnderTransformation, paired_drop
from redline.data import load_data
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets import load_target

SIGMAS = (0.1, 0.3, 0.6, 1.2)  # noise standard deviation per severity, as a share of the pixel range


class NoiseCheck(AccuracyUnderTransformation):
    id = "TEST.noise"
    mode = "FM16"
    title = "Accuracy under Gaussian noise (test subclass)"
    accuracy_metric = "corruption_accuracy"
    metrics = (*TRANSFORMATION_METRICS, "corruption_accuracy")

    def __init__(self, n_inputs: int = 200, tolerated_drop: float = 0.05, identity_only: bool = False):
        self.n_inputs = n_inputs
        self.tolerated_drop = tolerated_drop
        self.identity_only = identity_only

    def transformations(self, target, data):
        span = target.input_spec.upper - target.input_spec.lower

        def noise(sigma):
            return lambda x, rng: x + rng.normal(0.0, sigma * span, size=x.shape)

        if self.identity_only:
            return {"identity": {1: lambda x, rng: x}}
        return {"gaussian_noise": {i + 1: noise(s) for i, s in enumerate(SIGMAS)}}


@pytest.fixture(scope="module")
def digits():
    return load_data("builtin:digits")


@pytest.fixture(scope="module")
def target(digits):
    x = digits.x_train.reshape(len(digits.x_train), -1)
    model = LogisticRegression(max_iter=2000).fit(x, digits.y_train)
    return load_target(model, data=digits)


def test_accuracy_falls_as_noise_grows_and_the_drop_is_flagged(target, digits, tmp_path):
    finding = NoiseCheck()(target, digits, budget=2000, seed=0, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE, finding.reason
    m = finding.metrics
    curve = m["corruption_accuracy"]["gaussian_noise"]
    assert len(curve) == len(SIGMAS)
    assert all(a >= b for a, b in zip(curve, curve[1:])), curve  # monotone in severity on this model
    assert m["clean_accuracy"] > 0.85 and curve[-1] < m["clean_accuracy"] - 0.3
    assert m["worst_transformation"] == f"gaussian_noise/{len(SIGMAS)}"
    low, high = m["worst_accuracy_drop_ci"]
    assert low <= m["worst_accuracy_drop"] <= high and low > 0.05
    assert m["accuracy_drop"] == pytest.approx(m["clean_accuracy"] - m["mean_transformed_accuracy"])
    # Clean answers are evaluation queries; every transformed input is one attack query.
    assert finding.evaluation_queries == 200 and finding.queries == 200 * len(SIGMAS)
    rows = (tmp_path / finding.evidence["table_file"]).read_text().splitlines()
    assert rows[0].startswith("family,severity,accuracy") and len(rows) == 1 + len(SIGMAS)
    assert [r["severity"] for r in finding.evidence["table"]] == [1, 2, 3, 4]


def test_identity_transformation_drops_nothing_and_passes(target, digits):
    finding = NoiseCheck(n_inputs=400, identity_only=True)(target, digits, budget=2000, seed=0)
    m = finding.metrics
    assert m["worst_accuracy_drop"] == 0.0 and m["corruption_accuracy"]["identity"] == [m["clean_accuracy"]]
    assert m["worst_accuracy_drop_ci"][1] < 0.05
    assert finding.status is Status.NOT_VULNERABLE, finding.reason


def test_too_few_inputs_for_the_tolerance_is_inconclusive(target, digits):
    # 20 unchanged inputs cannot rule out a 5% drop (the 97.5% exact bound on 0 of 20 is 20%).
    finding = NoiseCheck(n_inputs=20, identity_only=True)(target, digits, budget=2000, seed=0)
    assert finding.status is Status.INCONCLUSIVE
    assert "more inputs" in finding.reason


def test_same_seed_same_numbers_and_the_budget_limits_the_inputs(target, digits):
    a = NoiseCheck(n_inputs=100)(target, digits, budget=2000, seed=3)
    b = NoiseCheck(n_inputs=100)(target, digits, budget=2000, seed=3)
    assert a.metrics == b.metrics
    small = NoiseCheck(n_inputs=100)(target, digits, budget=40, seed=3)  # 10 inputs x 4 severities
    assert small.metrics["evaluated_inputs"] == 10 and small.queries == 40
    none = NoiseCheck()(target, digits, budget=3, seed=3)
    assert none.status is Status.NOT_APPLICABLE and "budget of 3" in none.reason


def test_transformed_inputs_are_clipped_to_the_input_range_before_sending():
    from redline_testkit import ArrayTarget

    class Saturate(NoiseCheck):
        def transformations(self, target, data):
            return {"overexposed": {1: lambda x, rng: x + 100.0}}

    class Recording(ArrayTarget):
        def _predict(self, x):
            self.largest = max(getattr(self, "largest", -np.inf), float(np.max(x)))
            return super()._predict(x)

    rng = np.random.default_rng(0)
    target = Recording(rng.normal(size=(3, 2)), np.zeros(2))
    x = rng.uniform(-1, 1, size=(50, 3)).astype(np.float32)
    data = Dataset(name="blobs", x_test=x, y_test=target.predict_labels(x), modality="tabular")
    finding = Saturate(n_inputs=50)(target, data, budget=100, seed=0)
    assert finding.metrics["transformations"] == 1
    assert target.largest == target.input_spec.upper  # 100 above the range arrived as the upper bound


def test_bad_parameters_are_one_line_errors(target, digits):
    from redline.errors import UsageError

    with pytest.raises(UsageError, match="tolerated_drop"):
        NoiseCheck(tolerated_drop=1.5).validate_params()


def test_paired_drop_interval_is_exact_and_shrinks_with_more_inputs():
    from redline.util.stats import clopper_pearson

    clean = np.array([True] * 8 + [False] * 2)
    changed = np.array([False] * 4 + [True] * 4 + [True, False])  # 4 turned wrong, 1 turned right
    drop, (low, high) = paired_drop(clean, changed)
    assert drop == pytest.approx((4 - 1) / 10)
    assert low == pytest.approx(clopper_pearson(4, 10, 0.975)[0] - clopper_pearson(1, 10, 0.975)[1])
    assert high == pytest.approx(clopper_pearson(4, 10, 0.975)[1] - clopper_pearson(1, 10, 0.975)[0])
    # The same shares on ten times the inputs: the same drop, a narrower interval.
    drop10, (low10, high10) = paired_drop(np.tile(clean, 10), np.tile(changed, 10))
    assert drop10 == pytest.approx(drop) and low < low10 < drop < high10 < high


def test_the_test_subclass_is_not_a_registered_check():
    assert "TEST.noise" not in all_checks()
