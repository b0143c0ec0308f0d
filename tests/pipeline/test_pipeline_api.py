import json

import pytest

import redline
from redline.errors import TargetError, UsageError
from redline.findings import Status
from redline.report.validate import validate_report


def test_scan_of_an_in_memory_estimator_finds_the_stealable_model(logreg_problem, tmp_path):
    model, data = logreg_problem
    report = redline.scan(model, data, select="FM01,FM05", budget=2000, out=tmp_path, formats="json,html,md,sarif,junit")
    by_check = {f.check: f for f in report.findings}
    stolen = by_check["FM05.equation_solving"]
    assert stolen.status is Status.VULNERABLE and stolen.queries == 7
    assert stolen.metrics["max_abs_param_error"] < 1e-4
    assert stolen.severity >= redline.Severity.IMPORTANT and stolen.rationale
    assert (tmp_path / "artifacts/FM05.equation_solving.onnx").exists()
    assert by_check["FM01.pgd"].status in (Status.VULNERABLE, Status.NOT_VULNERABLE)
    assert report.coverage["FM05"] == "tested" and report.coverage["FM17"] == "not_covered"
    assert report.worst_severity == max(f.severity for f in report.findings)
    for name in ("report.json", "report.html", "report.md", "report.sarif", "report.junit.xml", "events.jsonl"):
        assert (tmp_path / name).exists(), name
    validate_report(json.loads((tmp_path / "report.json").read_text()))
    assert "FM05.equation_solving" in report.summary()


def test_not_vulnerable_and_not_applicable_findings_get_no_severity(logreg_problem):
    from redline.defences.labels_only import LabelOnlyTarget
    from redline.targets.base import InputSpec
    from redline.targets.sklearn import SklearnTarget

    model, data = logreg_problem
    target = LabelOnlyTarget(SklearnTarget(model, input_spec=InputSpec(shape=(6,))))
    report = redline.scan(target, data, select="FM05.equation_solving")
    (finding,) = report.findings
    assert finding.status is Status.NOT_APPLICABLE and finding.severity is redline.Severity.NONE
    assert report.coverage["FM05"] == "not_applicable"


def test_context_changes_the_severity(logreg_problem, tmp_path):
    model, data = logreg_problem
    internal = tmp_path / "internal.yaml"
    internal.write_text("internet_exposed: false\nauthenticated: true\nrate_limited: true\n"
                        "data_sensitivity: internal\n")
    exposed = redline.scan(model, data, select="FM05.equation_solving").findings[0]
    quiet = redline.scan(model, data, select="FM05.equation_solving", context=str(internal)).findings[0]
    assert quiet.severity <= exposed.severity
    assert quiet.rationale != exposed.rationale


def test_bad_arguments_raise_one_line_errors(logreg_problem, tmp_path):
    model, data = logreg_problem
    with pytest.raises(UsageError):
        redline.scan(model, data, select="FM42")
    with pytest.raises(UsageError):
        redline.scan(model, data, context=str(tmp_path / "missing.yaml"))
    with pytest.raises(TargetError, match="nope.onnx"):
        redline.scan(str(tmp_path / "nope.onnx"), data)
