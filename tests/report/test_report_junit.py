"""report.junit.xml: parses, and its counts match the findings."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from report_samples import make_report

from redline.findings import Finding, Status
from redline.report import render


def parse(report) -> ET.Element:
    return ET.fromstring(render(report, "junit").encode("utf-8"))


def test_suite_counts_match_the_findings():
    root = parse(make_report())
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "redline"
    for element in (root, suite):
        assert element.get("tests") == "6"
        assert element.get("failures") == str(len(suite.findall("testcase/failure"))) == "2"
        assert element.get("errors") == str(len(suite.findall("testcase/error"))) == "1"
        # Not applicable and inconclusive are both skipped (neither is a pass).
        assert element.get("skipped") == str(len(suite.findall("testcase/skipped"))) == "2"
        assert float(element.get("time")) == sum(f.seconds for f in make_report().findings)
    assert suite.get("timestamp") == "2024-05-01T10:00:00"


def test_one_testcase_per_finding_with_the_right_outcome():
    report = make_report()
    cases = parse(report).findall("testsuite/testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        (f"redline.{f.mode}", f.check) for f in report.findings
    ]
    outcome = {c.get("name"): [child.tag for child in c if child.tag != "system-out"] for c in cases}
    assert outcome == {
        "FM04.lira": ["failure"],
        "FM01.pgd": ["failure"],
        "FM05.equation_solving": [],
        "FM03.attribute_inference": ["skipped"],
        "FM10.neural_cleanse": ["error"],
        "FM04.threshold": ["skipped"],
    }
    undecided = by_name_of(cases)["FM04.threshold"].find("skipped")
    assert undecided.get("message").startswith("inconclusive: 25 non-members cannot measure")
    by_name = {c.get("name"): c for c in cases}
    assert by_name["FM04.lira"].get("time") == "12.340"
    failure = by_name["FM04.lira"].find("failure")
    assert failure.get("type") == "Critical"
    assert failure.get("message").startswith("Critical: Training records are identifiable")
    assert "auc: 0.81" in failure.text and "<script>" in failure.text  # escaped in XML, intact after parsing
    assert (
        by_name["FM03.attribute_inference"].find("skipped").get("message").startswith("the target returns labels only")
    )
    error = by_name["FM10.neural_cleanse"].find("error")
    assert error.get("message").startswith("RuntimeError: boom")
    assert "Traceback (most recent call last)" in error.text
    assert "seed: 3" in by_name["FM04.lira"].find("system-out").text


def test_control_characters_never_break_the_xml():
    text = render(make_report(), "junit")
    assert "\x1b" not in text and "\x00" not in text
    ET.fromstring(text.encode("utf-8"))


def test_empty_scan_is_an_empty_passing_suite():
    report = make_report()
    report.findings = []
    suite = parse(report).find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == (
        "0",
        "0",
        "0",
        "0",
    )


def test_error_without_traceback_uses_the_reason():
    report = make_report()
    report.findings = [
        Finding(
            id="5" * 16,
            mode="FM02",
            check="FM02.label_flip",
            title="t",
            status=Status.ERROR,
            reason="endpoint timed out",
        )
    ]
    error = parse(report).find("testsuite/testcase/error")
    assert error.get("message") == error.text == "endpoint timed out"


def by_name_of(cases):
    return {c.get("name"): c for c in cases}
