import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("statsmodels")

from redline_testkit import ArrayTarget

from redline import zoo
from redline.checks.base import CheckContext
from redline.checks.privacy.fm03_attribute_inference import AttributeInference
from redline.data.base import Dataset
from redline.defences.rounding import RoundedTarget
from redline.findings import Status


@pytest.fixture(scope="module")
def fair():
    return zoo.load_data_for("fair_logreg")


def counted(target):
    """Count every row the wrapped target answers, to check queries + evaluation_queries."""
    inner_predict = target._predict
    target.answered = 0

    def _predict(x):
        target.answered += len(x)
        return inner_predict(x)

    target._predict = _predict
    return target


def test_memorising_tree_leaks_the_attribute_of_its_training_records(fair, tmp_path):
    target = counted(zoo.load_target("fair_tree_overfit"))
    finding = AttributeInference(n_records=400)(target, fair, budget=4000, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    m = finding.metrics
    assert m["attack_accuracy"] >= m["baseline_accuracy"] + 0.08
    assert m["p_value"] < 0.01
    # Memorisation: members leak, held-out records do not beat the base rate.
    assert m["attack_accuracy_nonmembers"] < m["attack_accuracy_members"] - 0.08
    assert m["advantage_over_baseline"] == pytest.approx(m["attack_accuracy"] - m["baseline_accuracy"])
    assert finding.queries == 2 * 400 * 4 and finding.queries + finding.evaluation_queries == target.answered
    guesses = np.load(tmp_path / finding.evidence["examples"])
    assert np.isin(guesses["members_guess"], [1, 2, 3, 4]).all()
    assert all((tmp_path / p).exists() for p in finding.evidence["plots"])


@pytest.mark.parametrize("name", ["fair_logreg", "fair_tree", "fair_logreg_labels"])
def test_models_that_do_not_memorise_do_not_beat_the_base_rate(fair, name):
    finding = AttributeInference(n_records=400)(zoo.load_target(name), fair, budget=4000)
    assert finding.status is Status.NOT_VULNERABLE, finding.metrics
    assert finding.metrics["advantage_over_baseline"] < 0.05


def test_confidence_variant_needs_probabilities_and_finds_no_leak_without_the_label(fair):
    labels_only = AttributeInference(variant="confidence")(zoo.load_target("fair_logreg_labels"), fair, budget=4000)
    assert labels_only.status is Status.NOT_APPLICABLE and "probabilities" in labels_only.reason
    # Without the label even the memorising tree gives nothing away (rounded or not).
    for target in (zoo.load_target("fair_tree_overfit"), RoundedTarget(zoo.load_target("fair_tree_overfit"), 1)):
        finding = AttributeInference(variant="confidence", n_records=300)(target, fair, budget=4000)
        assert finding.status is Status.NOT_VULNERABLE


def test_budget_limits_the_records_attacked(fair):
    finding = AttributeInference(n_records=500)(zoo.load_target("fair_logreg"), fair, budget=80)
    assert finding.metrics["records_per_role"] == 10 and finding.queries == 80
    too_small = AttributeInference()(zoo.load_target("fair_logreg"), fair, budget=7)
    assert too_small.status is Status.NOT_APPLICABLE


def test_a_secret_the_label_reveals_is_no_leak_of_the_model():
    # The label is a function of the sensitive column, so knowing the label (as the MAP
    # attacker does) reveals it without asking the model: the imputation baseline, fitted on
    # the attacker's own rows, does as well as the attack, and the prior alone did not.
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(600, 3)).astype(np.float64)
    y = (x[:, 1] == 2).astype(int)
    data = Dataset("synthetic", x[:300], y[:300], x[300:], y[300:], feature_names=["a", "secret", "b"])
    weights = np.zeros((3, 2))
    weights[1] = [-8.0, 8.0]
    target = ArrayTarget(weights, np.array([12.0, -12.0]))
    finding = AttributeInference(sensitive_feature="secret", n_records=200)(target, data, budget=10_000)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    # Label 1 pins the value 2; label 0 leaves 0 or 1, so about 2/3 of the records are exact.
    assert finding.metrics["attack_accuracy"] > 0.6 and finding.metrics["candidates"] == 3
    assert finding.metrics["baseline"] == "imputation"
    assert finding.metrics["imputation_accuracy"] >= finding.metrics["attack_accuracy"] - 0.05


def test_an_attribute_another_feature_copies_is_read_without_the_model():
    rng = np.random.default_rng(1)
    secret = rng.integers(0, 2, 600).astype(np.float64)
    x = np.column_stack([secret, 1 - secret, rng.normal(size=600)])  # a one-hot pair: sex_m, sex_f
    y = (x[:, 2] + 0.8 * secret + 0.3 * rng.normal(size=600) > 0.4).astype(int)
    data = Dataset("onehot", x[:300], y[:300], x[300:450], y[300:450], x[450:], y[450:],
                   feature_names=["sex_m", "sex_f", "score"])
    from sklearn.linear_model import LogisticRegression

    from redline.targets import load_target

    target = load_target(LogisticRegression().fit(x[:300], y[:300]), data=data)
    finding = AttributeInference(sensitive_feature="sex_m", n_records=100)(target, data, budget=10_000)
    assert finding.status is Status.NOT_VULNERABLE, finding.summary
    assert finding.metrics["imputation_accuracy"] == 1.0


def test_bad_parameters_and_missing_sensitive_feature(fair):
    assert AttributeInference(variant="guess")(zoo.load_target("fair_logreg"), fair).status is Status.ERROR
    assert AttributeInference(sensitive_feature="income")(zoo.load_target("fair_logreg"), fair).status is Status.ERROR
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 3, 40)
    plain = Dataset("plain", x[:20], y[:20], x[20:], y[20:])
    finding = AttributeInference()(ArrayTarget(rng.normal(size=(5, 3)), np.zeros(3)), plain)
    assert finding.status is Status.NOT_APPLICABLE and "sensitive feature" in finding.reason
