"""FM11.fuzz and NaN as a missing value: a model whose scikit-learn tags allow NaN
(HistGradientBoosting, a Pipeline starting with an imputer) is not blamed for answering NaN
in auto mode, NaN cases are then judged as valid input (ok / bad_answer), infinities stay
invalid, models that refuse NaN still reject it cleanly, and the decision is reported."""
from __future__ import annotations

import json

import numpy as np
import pytest

from redline.checks.base import CheckContext
from redline.checks.supply_chain.fm11_fuzz import CaseCatalogue, InputFuzzing
from redline.data.base import Dataset
from redline.findings import Status
from redline.targets import InputSpec
from redline.targets.callable import CallableTarget

pytest.importorskip("sklearn")

D = 4
SPEC = InputSpec(shape=(D,), lower=0.0, upper=1.0)
VALUES = ["nan", "inf", "neg_inf"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(200, D)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] > 0.65).astype(int)
    return Dataset("unit", x[:100], y[:100], x[100:], y[100:], spec="test:unit")


def fuzz(**params) -> InputFuzzing:
    return InputFuzzing(**{"timeout": 5.0, "oversized_rows": 20, **params})


def sklearn_target(estimator, data):
    from redline.targets.sklearn import SklearnTarget

    return SklearnTarget(estimator.fit(data.x_train, data.y_train), input_spec=SPEC)


def by_kind(tmp_path, finding) -> dict[str, set[str]]:
    cases = json.loads((tmp_path / finding.evidence["cases"]).read_text())["cases"]
    out: dict[str, set[str]] = {}
    for case in cases:
        out.setdefault(case["kind"], set()).add(case["outcome"])
    return out


def test_hist_gradient_boosting_answering_nan_is_not_accepted_invalid_in_auto_mode(data, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    target = sklearn_target(HistGradientBoostingClassifier(max_iter=20), data)
    finding = fuzz(include=VALUES)(target, data, budget=500, ctx=CheckContext(tmp_path))
    # Before: every NaN case was accepted_invalid (CVSS 3.7) though NaN is a missing value to this model.
    outcomes = by_kind(tmp_path, finding)
    assert outcomes["nan"] == {"ok"}  # NaN in one feature, in every feature, in a second row
    # Infinities stay invalid: HistGradientBoosting answers them too, and that is still a finding.
    assert outcomes["inf"] == outcomes["neg_inf"] == {"accepted_invalid"}
    assert finding.metrics["nan_inputs"] == "missing" and finding.metrics["ok"] == 3
    assert finding.metrics["accepted_invalid"] == 6 and finding.status is Status.VULNERABLE
    only_nan = fuzz(include="nan")(target, data, budget=500)
    assert only_nan.status is Status.NOT_VULNERABLE, only_nan.evidence.get("failures")
    assert finding.evidence["nan_inputs"] == (
        "nan_inputs=auto: the scikit-learn tags of HistGradientBoostingClassifier say allow_nan=True")
    assert "NaN was sent as a missing value" in finding.summary


def test_nan_inputs_invalid_judges_nan_as_before(data, tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    target = sklearn_target(HistGradientBoostingClassifier(max_iter=20), data)
    finding = fuzz(include="nan", nan_inputs="invalid")(target, data, budget=500, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    assert by_kind(tmp_path, finding)["nan"] == {"accepted_invalid"}
    assert finding.metrics["nan_inputs"] == "invalid" and finding.evidence["nan_inputs"] == "nan_inputs=invalid"
    assert finding.metrics["max_cvss"] == 3.7


def test_a_pipeline_is_judged_by_the_step_that_settles_nan(data, tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # An imputer in front: NaN is a missing value, filled in and answered.
    imputed = sklearn_target(make_pipeline(SimpleImputer(), LogisticRegression()), data)
    finding = fuzz(include=VALUES)(imputed, data, budget=500, ctx=CheckContext(tmp_path))
    assert finding.status is Status.NOT_VULNERABLE, finding.evidence.get("failures")
    assert by_kind(tmp_path, finding)["nan"] == {"ok"}
    assert finding.metrics["nan_inputs"] == "missing"
    assert "SimpleImputer, a step of the Pipeline fills in missing values" in finding.evidence["nan_inputs"]
    # A scaler lets NaN through to a model that refuses it: a clean refusal of a valid input, no finding.
    scaled = sklearn_target(make_pipeline(StandardScaler(), LogisticRegression()), data)
    finding = fuzz(include="nan")(scaled, data, budget=500)
    assert finding.status is Status.NOT_VULNERABLE and finding.metrics["rejected"] == finding.metrics["cases"]
    # ... and NaN is not called a missing value there: the logistic regression behind the scaler refuses it.
    assert finding.metrics["nan_inputs"] == "invalid"
    assert "LogisticRegression, a step of the Pipeline say allow_nan=False" in finding.evidence["nan_inputs"]
    # No NaN handling at the door: NaN is invalid input, as before.
    plain = make_pipeline("passthrough", LogisticRegression())
    finding = fuzz(include="nan")(sklearn_target(plain, data), data, budget=500)
    assert finding.metrics["nan_inputs"] == "invalid"
    assert "tags of LogisticRegression say allow_nan=False" in finding.evidence["nan_inputs"]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["logreg", "mlp"])
def test_models_that_refuse_nan_still_reject_it_cleanly(data, tmp_path, kind):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    estimator = LogisticRegression() if kind == "logreg" else MLPClassifier((8,), max_iter=300, random_state=0)
    finding = fuzz(include=VALUES)(sklearn_target(estimator, data), data, budget=500, ctx=CheckContext(tmp_path))
    assert finding.status is Status.NOT_VULNERABLE
    assert by_kind(tmp_path, finding)["nan"] == {"rejected"}
    assert finding.metrics["nan_inputs"] == "invalid"
    assert finding.evidence["nan_inputs"].endswith(f"{type(estimator).__name__} say allow_nan=False")


def test_without_a_scikit_learn_estimator_auto_treats_nan_as_invalid(tmp_path):
    def answers_anything(x):
        p = 1 / (1 + np.exp(-np.nan_to_num(np.asarray(x, dtype=np.float64)).sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    target = CallableTarget(answers_anything, input_spec=SPEC, n_classes=2)
    finding = fuzz(include="nan")(target, None, budget=500, ctx=CheckContext(tmp_path))
    assert by_kind(tmp_path, finding)["nan"] == {"accepted_invalid"}
    assert finding.metrics["nan_inputs"] == "invalid"
    assert "exposes no scikit-learn estimator" in finding.evidence["nan_inputs"]
    # Told that NaN means missing: the same answers are ok, and infinities are still invalid.
    finding = fuzz(include=VALUES, nan_inputs="missing")(target, None, budget=500, ctx=CheckContext(tmp_path))
    outcomes = by_kind(tmp_path, finding)
    assert outcomes["nan"] == {"ok"} and outcomes["inf"] == outcomes["neg_inf"] == {"accepted_invalid"}
    assert finding.metrics["nan_inputs"] == "missing" and finding.evidence["nan_inputs"] == "nan_inputs=missing"


def test_a_malformed_answer_to_nan_as_missing_is_a_bad_answer(tmp_path):
    def nan_in_nan_out(x):
        with np.errstate(all="ignore"):
            p = 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64).sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    target = CallableTarget(nan_in_nan_out, input_spec=SPEC, n_classes=2)
    finding = fuzz(include="nan", nan_inputs="missing")(target, None, budget=500, ctx=CheckContext(tmp_path))
    assert finding.status is Status.VULNERABLE
    assert by_kind(tmp_path, finding)["nan"] == {"bad_answer"}
    assert finding.metrics["max_cvss"] == 5.3


def test_the_catalogue_marks_nan_cases_valid_only_when_nan_is_missing():
    def nan_cases(nan_valid):
        catalogue = CaseCatalogue(SPEC, np.full(D, 0.5), np.random.default_rng(0), oversized_rows=5,
                                  body_bytes=1000, nan_valid=nan_valid)
        return catalogue.build("nan"), catalogue.build("inf")

    nan, inf = nan_cases(False)
    assert not any(c.valid for c in nan + inf)
    nan, inf = nan_cases(True)
    assert all(c.valid and c.expected_rows == len(c.array) for c in nan) and not any(c.valid for c in inf)


def test_nan_inputs_is_stored_as_given_and_validated():
    from redline.errors import UsageError

    assert InputFuzzing().nan_inputs == "auto"
    assert InputFuzzing(nan_inputs="Missing").nan_inputs == "Missing"
    assert "nan_inputs" in InputFuzzing.param_docs
    with pytest.raises(UsageError, match="nan_inputs must be one of auto, invalid, missing"):
        InputFuzzing(nan_inputs="Missing").validate_params()
    target = CallableTarget(lambda x: x, input_spec=SPEC, n_classes=2)
    finding = InputFuzzing(nan_inputs="sometimes")(target, None)
    assert finding.status is Status.ERROR and "nan_inputs must be one of" in finding.reason
    assert finding.queries == 0


def test_the_zoo_fuzzing_control_is_still_flagged():
    """The demo tour's FM11 row (fair_logreg, a logistic regression): NaN stays invalid and
    out-of-range values are still accepted."""
    from redline import zoo

    finding = InputFuzzing(cases_per_kind=1)(zoo.load_target("fair_logreg"), zoo.load_data_for("fair_logreg"))
    assert finding.status is Status.VULNERABLE, finding.summary
    assert finding.metrics["nan_inputs"] == "invalid" and finding.metrics["accepted_invalid"] >= 1
