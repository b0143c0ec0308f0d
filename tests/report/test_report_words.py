"""Words: plurals from one helper, no raw curve dumps, whole rationales, one-line usage errors, findable help."""
from __future__ import annotations

import json

import pytest
from report_samples import make_report

from redline.cli import main
from redline.findings import Finding, Status
from redline.report import render
from redline.triage.engine import rate
from redline.triage.engine import rate_evidence
from redline.util.wording import count, plural, shorten


def test_count_and_plural_agree_with_the_number_shown():
    assert count(1, "query") == "1 query" and count(2000, "query") == "2,000 queries"
    assert count(1.0, "query") == "1 query" and count(0, "input") == "0 inputs"
    assert plural("patch") == "patches" and plural("class", 1) == "class"
    assert shorten("Nearly every query answered", 15) == "Nearly every…"


def test_rule_templates_use_the_plural_helper():
    _, one = rate_evidence("FM01", {"success_rate": 0.9, "median_queries": 1})
    _, many = rate_evidence("FM01", {"success_rate": 0.9, "median_queries": 1500})
    assert "median of 1 query each" in one and "median of 1,500 queries each" in many


def test_a_long_summary_stays_whole_in_the_rationale():
    summary = "Nearly every query answered with a confidence above 0.99 " * 6
    f = Finding(id="a" * 16, mode="FM04", check="FM04.lira", title="t", status=Status.NOT_VULNERABLE, summary=summary)
    _, rationale = rate(f)
    assert summary.strip().rstrip(".") in rationale and "..." not in rationale


def test_curve_data_is_named_not_dumped(artifacts_dir):
    report = make_report(artifacts_dir)
    curve = {"epsilon": [0.01 * i for i in range(20)], "success_rate": [0.05 * i for i in range(20)]}
    report.findings[1].evidence["curve"] = curve
    for fmt in ("html", "md"):
        page = render(report, fmt)
        assert "plot data: 20 points of epsilon, success" in page.replace("\\_", "_")
        assert "0.95" not in page.split("plot data")[1][:400]
    assert "0.9500000000000001" in render(report, "json")  # report.json keeps every value


def test_usage_errors_are_one_line_with_a_pointer_to_help(capsys):
    for argv in (["scan", "zoo:x", "--budget", "0"], ["scan", "zoo:x", "--fail-on", "bad"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert stop.value.code == 2 and len(err) == 1
        assert err[0].startswith("redline: error: argument") and "redline scan --help" in err[0]


def test_help_example_is_one_unbroken_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "  redline scan zoo:mnist_cnn --select FM01 --out out/ --format json,html\n" in out


def test_modes_lists_the_static_scan_under_fm09(capsys):
    assert main(["modes", "--json"]) == 0
    records = {r["code"]: r for r in json.loads(capsys.readouterr().out)}
    assert "FM09.static_scan" in records["FM09"]["checks"]
