"""FM17.operating_conditions: the operating_conditions schema, coverage by test rows and by
earlier findings, what the check runs itself, and its controls on the fair survey."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from redline_testkit import ArrayTarget

from redline.checks import CheckContext
from redline.checks.robustness.conditions import (
    from_document,
    load_conditions_file,
    parse_operating_conditions,
)
from redline.checks.robustness.fm17_operating_conditions import (
    OperatingConditionsCoverage,
)
from redline.data.base import Dataset
from redline.errors import UsageError
from redline.findings import Finding, Status

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fair-survey.system.yaml"


# -- the schema ---------------------------------------------------------------------------------

@pytest.mark.parametrize("section, message", [
    ({"featurs": []}, "operating_conditions: unknown key 'featurs'"),
    ({"features": [{"feature": "age", "rnage": [1, 2]}]}, r"operating_conditions.features\[0\]: unknown key 'rnage'"),
    ({"features": [{"feature": "age"}]}, r"features\[0\] needs exactly one of 'range' or 'categories'"),
    ({"features": [{"feature": "age", "range": [5, 1]}]}, r"features\[0\].range must have low < high"),
    ({"features": [{"feature": "age", "categories": [1], "bands": 2}]}, r"features\[0\].bands applies to a range"),
    ({"features": [{"range": [0, 1]}]}, r"features\[0\] needs a 'feature'"),
    ({"features": {"feature": "age"}}, "operating_conditions.features must be a list"),
    ({"populations": [{"name": "p", "where": {"age": {"between": [1, 2]}}}]},
     r"populations\[0\].where.age: unknown key 'between'"),
    ({"populations": [{"where": {"age": 3}}]}, r"populations\[0\] needs a 'name'"),
    ({"populations": [{"name": "p", "where": {"age": 3}, "min_share": 0}]}, r"populations\[0\].min_share must be in"),
    ({"sensors": [{"corruption": "fogg"}]}, r"sensors\[0\].corruption must name an FM16 corruption family"),
    ({"sensors": [{"corruption": "fog", "severity": 6}]}, r"sensors\[0\].severity must be 1..5"),
    ({"drift": [{"feature": 0, "shift": 1, "scale": 2}]}, r"drift\[0\] needs exactly one of 'shift' or 'scale'"),
    ({"drift": [{"feature": 0, "scale": -1}]}, r"drift\[0\].scale must be positive"),
    ({"class_priors": {"a": 0.5, "b": 0.2}}, "class_priors must give two or more classes whose shares add up to 1"),
    ({"min_rows": 0}, "operating_conditions.min_rows must be a whole number of at least 1"),
    ({}, "declares no condition"),
    ({"sensors": [{"corruption": "fog", "name": "x"}, {"corruption": "snow", "name": "x"}]}, "'x' is used twice"),
])
def test_schema_errors_are_one_line_and_name_the_key(section, message):
    with pytest.raises(UsageError, match=message) as info:
        parse_operating_conditions(section)
    assert "\n" not in str(info.value)


def test_a_full_section_parses_with_defaults():
    c = from_document(yaml.safe_load(EXAMPLE.read_text()), "example")
    assert c.min_rows == 30 and c.total == 7 and dict(c.class_priors) == {"no_affair": 0.68, "affair": 0.32}
    age = c.features[0]
    assert (age.name, age.low, age.high, age.bands) == ("age range", 17.5, 42.0, 4)
    assert [s.corruption for s in c.sensors] == ["missing_values", "scale_error"]
    assert c.sensors[1].severity == 1 and c.drift[0].shift == 5.0
    assert from_document({"name": "no section"}) is None


def test_the_system_schema_accepts_the_section_and_the_threat_model_reads_the_example():
    from redline.threatmodel.system import load_system

    assert load_system(EXAMPLE).name == "Survey follow-up screening"
    bad = yaml.safe_load(EXAMPLE.read_text())
    bad["operating_conditions"]["sensors"][0]["severity"] = 9
    with pytest.raises(UsageError, match="operating_conditions.sensors"):
        load_system(bad)


def test_a_conditions_file_may_hold_the_section_alone(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features:\n  - {feature: 0, categories: [0, 1]}\n")
    assert load_conditions_file(path).total == 1
    with pytest.raises(UsageError, match="not found"):
        load_conditions_file(tmp_path / "missing.yaml")


# -- coverage logic on a small table ----------------------------------------------------------------

@pytest.fixture
def table():
    """Three features: x0 uniform in [0, 1], x1 in {0, 1, 2} (value 2 rare), x2 uniform; the
    class is x2 > 0.5, so a linear model is right except near the boundary."""
    rng = np.random.default_rng(3)
    n = 400
    x = np.stack([rng.uniform(0, 1, n), rng.choice([0, 1, 2], size=n, p=[0.48, 0.48, 0.04]),
                  rng.uniform(0, 1, n)], axis=1).astype(np.float32)
    y = (x[:, 2] > 0.5).astype(int)
    data = Dataset("table", x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:],
                   feature_names=["x0", "x1", "x2"], spec="test:table")
    target = ArrayTarget(np.array([[0.0, 0.0], [0.0, 0.0], [-10.0, 10.0]]), np.array([5.0, -5.0]))
    return target, data


def _run(target, data, section, earlier=(), **params):
    conditions = parse_operating_conditions(section, "test")
    check = OperatingConditionsCoverage(**params)
    return check(target, data, seed=0, ctx=CheckContext(operating_conditions=conditions, earlier=earlier))


def test_ranges_categories_and_populations_are_covered_by_enough_rows(table):
    target, data = table
    f = _run(target, data, {"min_rows": 30, "features": [
        {"feature": "x0", "range": [0, 1], "bands": 4},          # about 50 rows per band: covered
        {"feature": "x0", "range": [0, 2], "bands": 4, "name": "wide x0"},  # [1, 2] bands empty
        {"feature": "x1", "categories": [0, 1, 2]},             # value 2 has about 8 rows
    ], "populations": [
        {"name": "low x0", "where": {"x0": {"range": [0, 0.5]}}},
        {"name": "rare x1", "where": {"x1": 2, "x0": {"range": [0, 1]}}},
    ]})
    assert f.status is Status.VULNERABLE
    m = f.metrics
    assert m["conditions_total"] == 5 and m["conditions_covered"] == 2
    untested = {e["condition"]: e for e in m["untested"]}
    assert set(untested) == {"wide x0", "x1 categories", "rare x1"}
    assert "2 bands of 4 with fewer than 30 test rows" in untested["wide x0"]["reason"]
    rare = int((data.x_test[:, 1] == 2).sum())
    assert untested["rare x1"]["rows"] == rare < 30 and "accuracy_ci" in untested["rare x1"]
    assert f"2 ({rare})" in untested["x1 categories"]["reason"]
    assert m["covered_by"] == {"test data": 2}


def test_sensor_and_drift_conditions_are_run_here_or_read_from_earlier_findings(table):
    target, data = table
    section = {"min_rows": 30, "sensors": [{"corruption": "gaussian_noise", "severity": 5, "name": "noisy"}],
               "drift": [{"feature": "x2", "shift": 0.3, "name": "x2 drifts up"}]}
    f = _run(target, data, section, n_inputs=100)
    assert f.status is Status.NOT_VULNERABLE, f.summary
    entries = {e["condition"]: e for e in f.evidence["conditions"]}
    assert entries["noisy"]["covered_by"].startswith("FM17.operating_conditions (run here")
    # Shifting x2 up by 0.3 moves rows across the 0.5 boundary without changing their labels.
    drift = entries["x2 drifts up"]
    assert drift["rows"] == 100 and drift["accuracy_drop"] > 0.2 and drift["accuracy_drop_ci"][0] > 0.1
    assert f.queries == 200  # 100 corrupted and 100 shifted rows; the clean pass is evaluation
    assert f.evaluation_queries == len(data.x_test)

    fm16 = Finding(id="1" * 16, mode="FM16", check="FM16.corruption", title="", status=Status.VULNERABLE,
                   params={"severities": [1, 3, 5]}, metrics={"corrupted_accuracy": {"gaussian_noise": [0.9, 0.8, 0.6]}})
    # An FM14 band of x2 whose population's mean of x2 is 0.4 higher: it tested the drift of 0.3.
    band = {"name": "band:'x2':high", "kind": "feature band", "accuracy": 0.97, "drop": 0.0, "feature_index": 2,
            "feature_mean_shift": 0.4}
    fm14 = Finding(id="2" * 16, mode="FM14", check="FM14.shift_sensitivity", title="", status=Status.NOT_VULNERABLE,
                   metrics={"shifts": [band]})
    f = _run(target, data, section, earlier=(fm16, fm14))
    entries = {e["condition"]: e for e in f.evidence["conditions"]}
    assert entries["noisy"]["covered_by"] == "FM16.corruption (accuracy 60%)"
    assert entries["x2 drifts up"]["covered_by"].startswith("FM14.shift_sensitivity")
    assert f.queries == 0 and f.metrics["covered_by"] == {"FM16.corruption": 1, "FM14.shift_sensitivity": 1}


def test_too_few_rows_or_no_labels_leave_runnable_conditions_untested(table):
    target, data = table
    section = {"min_rows": 50, "sensors": [{"corruption": "rounding", "name": "coarse"}]}
    f = _run(target, data, section, n_inputs=20)
    (entry,) = f.metrics["untested"]
    assert entry["reason"] == "measured here on 20 rows only, fewer than 50" and entry["rows"] == 20
    unlabelled = Dataset("u", x_test=data.x_test, feature_names=data.feature_names, spec="test:u")
    f = _run(target, unlabelled, section)
    assert "no labels" in f.metrics["untested"][0]["reason"] and f.queries == 0
    f = _run(target, data, {"sensors": [{"corruption": "fog"}]})
    assert "fog is not a corruption of tabular inputs" in f.metrics["untested"][0]["reason"]


def test_without_conditions_it_is_not_applicable_and_a_bad_feature_is_a_one_line_error(table):
    target, data = table
    f = OperatingConditionsCoverage()(target, data)
    assert f.status is Status.NOT_APPLICABLE and f.reason.startswith("no operating_conditions in the context")
    f = _run(target, data, {"features": [{"feature": "age", "range": [0, 1]}]})
    assert f.status is Status.ERROR and "has no feature 'age' (has: x0, x1, x2)" in f.reason
    assert f.evaluation_queries == 0


# -- controls: the fair survey with examples/fair-survey.system.yaml -------------------------------

@pytest.fixture(scope="module")
def fair():
    from sklearn.linear_model import LogisticRegression

    from redline.data import load_data
    from redline.targets import load_target

    data = load_data("builtin:fair")
    model = LogisticRegression(max_iter=500).fit(data.x_train, data.y_train)
    return load_target(model, data=data), data


def _young_only(data):
    """The positive control: a test set drawn from one slice, respondents aged 27 or less."""
    keep = data.x_test[:, data.feature_names.index("age")] <= 27
    return Dataset("fair-young", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test[keep],
                   y_test=data.y_test[keep], feature_names=data.feature_names, class_names=data.class_names,
                   spec="test:fair-young")


def test_controls_stratified_test_set_covers_the_example_and_one_slice_does_not(fair):
    from redline import scan

    target, data = fair
    params = {"FM17.operating_conditions": {"n_inputs": 100}}
    negative = scan(target, data, select="FM17.operating_conditions", context=str(EXAMPLE), params=params)
    (f,) = negative.findings
    assert f.status is Status.NOT_VULNERABLE, f.summary
    assert f.metrics["conditions_covered"] == f.metrics["conditions_total"] == 7

    positive = scan(target, _young_only(data), select="FM17.operating_conditions", context=str(EXAMPLE),
                    params=params)
    (f,) = positive.findings
    assert f.status is Status.VULNERABLE and f.severity is not None
    untested = {e["condition"]: e for e in f.metrics["untested"]}
    assert set(untested) == {"age range", "long marriages"}
    assert "2 bands of 4 with fewer than 30 test rows: [29.75, 35.875) (0)" in untested["age range"]["reason"]
    assert "untested: age range" in f.summary


def test_cli_run_with_context_and_a_bad_section(tmp_path, capsys):
    from redline.cli import main

    out = tmp_path / "out"
    code = main(["scan", "zoo:fair_logreg", "--data", "builtin:fair", "--context", str(EXAMPLE), "--select",
                 "FM17.operating_conditions", "--set", "FM17.operating_conditions.n_inputs=60", "--out", str(out),
                 "--format", "json", "--no-progress", "--fail-on", "never"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    (f,) = report["findings"]
    assert f["status"] == "not_vulnerable" and f["metrics"]["conditions_total"] == 7
    assert report["coverage"]["FM17"] == "tested"

    bad = yaml.safe_load(EXAMPLE.read_text())
    bad["operating_conditions"]["features"][0]["bnads"] = 3
    path = tmp_path / "bad.system.yaml"
    path.write_text(yaml.safe_dump(bad))
    capsys.readouterr()
    code = main(["scan", "zoo:fair_logreg", "--context", str(path), "--select", "FM17", "--out", str(tmp_path / "o2"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "operating_conditions.features[0]: unknown key 'bnads'" in err and "\n" not in err
    assert not (tmp_path / "o2" / "report.json").exists()  # refused before any work


def test_conditions_parameter_works_without_a_context(tmp_path, table):
    from redline import scan

    target, data = table
    path = tmp_path / "conditions.yaml"
    path.write_text("operating_conditions:\n  features:\n    - {feature: x1, categories: [0, 1]}\n")
    (f,) = scan(target, data, select="FM17.operating_conditions",
                params={"FM17.operating_conditions": {"conditions": str(path)}}).findings
    assert f.status is Status.NOT_VULNERABLE and f.metrics["conditions_total"] == 1


def test_resume_refuses_a_changed_section_and_mixed_keys_are_fine(tmp_path, table):
    from redline import scan

    target, data = table
    section = {"populations": [{"name": "p", "where": {0: {"range": [0, 0.5]}, "x1": {"in": [0, 1]}}}]}
    out = tmp_path / "out"
    (f,) = scan(target, data, select="FM17.operating_conditions", context={"operating_conditions": section},
                out=out, formats=["json"]).findings
    assert f.status is Status.NOT_VULNERABLE and f.metrics["conditions_total"] == 1
    section["populations"][0]["where"][0]["range"] = [0, 0.1]
    with pytest.raises(UsageError, match="belongs to a scan with other arguments"):
        scan(target, data, select="FM17.operating_conditions", context={"operating_conditions": section},
             out=out, resume=True)


def test_a_bad_conditions_file_is_refused_at_plan_time(tmp_path):
    from redline.checks.params import instantiate, normalise_params
    from redline.checks.robustness.fm17_test_adequacy import TestAdequacy

    bad = tmp_path / "bad.yaml"
    bad.write_text("sensors:\n  - {corruption: fog, severity: 7}\n")
    for cls in (OperatingConditionsCoverage, TestAdequacy):
        for path, message in ((bad, r"sensors\[0\].severity must be 1..5"), (tmp_path / "none.yaml", "not found")):
            params = normalise_params({cls.id: {"conditions": str(path)}})[cls.id]
            with pytest.raises(UsageError, match=message) as info:
                instantiate(cls, params)
            assert str(info.value).startswith(cls.id) and "\n" not in str(info.value)


def test_replay_reads_the_conditions_of_the_context_file_again(tmp_path):
    from redline import scan
    from redline.pipeline.replay import replay

    out = tmp_path / "out"
    params = {"FM17.operating_conditions": {"n_inputs": 40}}
    report = scan("zoo:fair_logreg", "builtin:fair", select="FM17.operating_conditions", context=str(EXAMPLE),
                  params=params, out=out, formats=["json"])
    (f,) = report.findings
    assert f.evidence["conditions_file"] == str(EXAMPLE)
    again = replay(out / "report.json", f.id)
    assert again.recorded_status == again.replayed_status == "not_vulnerable"


def test_zoo_controls_declare_their_conditions_with_their_data():
    """The zoo's FM17 controls need no --context: their data names the survey's conditions."""
    from redline import scan

    negative = scan("zoo:fair_logreg_declared", select="FM17.operating_conditions",
                    params={"FM17.operating_conditions": {"n_inputs": 60}})
    (f,) = negative.findings
    assert f.status is Status.NOT_VULNERABLE and f.metrics["conditions_covered"] == 7, f.summary
    positive = scan("zoo:fair_logreg_young_test", select="FM17.operating_conditions",
                    params={"FM17.operating_conditions": {"n_inputs": 60}})
    (f,) = positive.findings
    assert f.status is Status.VULNERABLE, f.summary
    assert {e["condition"] for e in f.metrics["untested"]} == {"age range", "long marriages"}
    # Data that declares no conditions, and no --context: nothing to judge.
    plain = scan("zoo:fair_logreg", "builtin:fair", select="FM17.operating_conditions")
    assert plain.findings[0].status is Status.NOT_APPLICABLE
