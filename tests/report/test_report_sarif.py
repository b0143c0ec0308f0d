"""report.sarif: the SARIF 2.1.0 structure code-scanning services require."""
from __future__ import annotations

import json
import re

import pytest
from report_samples import make_report

from redline.findings import Status
from redline.report import render
from redline.report.sarif import FINGERPRINT_KEY, level_for, to_sarif
from redline.severity import Severity

_LEVELS = {"none", "note", "warning", "error"}
_KINDS = {"notApplicable", "pass", "fail", "review", "open", "informational"}


@pytest.fixture
def log():
    return json.loads(render(make_report(), "sarif"))


def test_top_level_and_driver(log):
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "redline" and driver["version"] == "0.1.0"


def test_one_rule_per_check_with_unique_ids(log):
    report = make_report()
    rules = log["runs"][0]["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))
    assert ids == [f.check for f in report.findings]
    for rule, f in zip(rules, report.findings, strict=True):
        assert rule["shortDescription"]["text"] == f.title
        assert re.fullmatch(r"[A-Za-z0-9]+", rule["name"])
        assert rule["properties"]["mode"] == f.mode
        tags = rule["properties"]["tags"]
        assert f.mode in tags and "security" in tags and len(tags) == len(set(tags))
        assert rule["fullDescription"]["text"]
        assert rule["defaultConfiguration"]["level"] in _LEVELS
    assert rules[0]["properties"]["security-severity"] == "9.5"  # the Critical membership finding
    assert "security-severity" not in rules[2]["properties"]  # a passing check


def test_results_for_vulnerable_and_error_findings_only(log):
    report = make_report()
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    results = run["results"]
    expected = [f for f in report.findings if f.status in (Status.VULNERABLE, Status.ERROR, Status.INCONCLUSIVE)]
    assert [r["ruleId"] for r in results] == [f.check for f in expected]
    for result, f in zip(results, expected, strict=True):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
        assert result["partialFingerprints"] == {FINGERPRINT_KEY: f.id}
        assert result["kind"] in _KINDS and result["level"] in _LEVELS
        # SARIF: any kind other than "fail" must have level "none"
        assert result["kind"] == "fail" or result["level"] == "none"
        location = result["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uri"] == "zoo/digits_overfit"
        assert location["region"]["startLine"] == 1
    lira, pgd, error, undecided = results
    assert (undecided["kind"], undecided["level"]) == ("open", "none")  # SARIF: could not tell pass from fail
    assert "inconclusive (25 non-members cannot measure" in undecided["message"]["text"]
    assert (lira["kind"], lira["level"]) == ("fail", "error")
    assert (pgd["kind"], pgd["level"]) == ("fail", "warning")
    assert (error["kind"], error["level"]) == ("review", "none")
    assert "Critical" in lira["message"]["text"] and "auc=0.81" in lira["message"]["text"]
    assert lira["properties"]["metrics"]["auc"] == 0.81
    assert lira["properties"]["metrics"]["advantage"] is None  # inf is not JSON


def test_errors_also_mark_the_invocation(log):
    invocation = log["runs"][0]["invocations"][0]
    assert invocation["executionSuccessful"] is False
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and note["associatedRule"]["id"] == "FM10.neural_cleanse"
    assert note["message"]["text"].startswith("FM10.neural_cleanse did not complete")
    assert invocation["startTimeUtc"] == "2024-05-01T10:00:00Z"
    assert invocation["endTimeUtc"] == "2024-05-01T10:01:05Z"


def test_clean_scan_is_a_successful_invocation_without_results():
    report = make_report()
    report.findings = [f for f in report.findings if f.status is Status.NOT_VULNERABLE]
    log = to_sarif(report)
    run = log["runs"][0]
    assert run["results"] == [] and run["invocations"][0]["executionSuccessful"] is True
    assert len(run["tool"]["driver"]["rules"]) == 1
    assert run["properties"]["coverage"]["FM17"] == "not_covered"


@pytest.mark.parametrize(
    ("severity", "level"),
    [
        (Severity.CRITICAL, "error"),
        (Severity.IMPORTANT, "error"),
        (Severity.MODERATE, "warning"),
        (Severity.LOW, "note"),
        (Severity.NONE, "note"),
    ],
)
def test_levels_follow_the_bug_bar(severity, level):
    assert level_for(severity) == level


@pytest.mark.parametrize(
    ("spec", "uri", "shown"),
    [
        ("onnx:models/net.onnx", "models/net.onnx", "onnx:models/net.onnx"),
        ("sklearn:/srv/m 1.skops", "file:///srv/m%201.skops", "sklearn:/srv/m 1.skops"),
        (
            "https://user:pw@api.example.com:8443/v1/predict?key=s3cret",
            "api.example.com_8443/v1/predict",
            "https://api.example.com:8443/v1/predict",
        ),
        ("python:pkg.mod:fn", "python/pkg.mod%3Afn", "python:pkg.mod:fn"),
    ],
)
def test_locations_are_paths_without_foreign_schemes_or_secrets(spec, uri, shown):
    report = make_report()
    report.target["spec"] = spec
    text = render(report, "sarif")
    location = json.loads(text)["runs"][0]["results"][0]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"] == uri
    assert location["message"]["text"] == f"target {shown}"
    assert "s3cret" not in json.dumps(location) and "user:pw" not in json.dumps(location)


def test_driver_version_defaults_to_this_package():
    import redline

    report = make_report()
    report.tool = {}
    assert to_sarif(report)["runs"][0]["tool"]["driver"]["version"] == redline.__version__
