"""report.md: summary, findings table and sections, evidence links, all 17 coverage rows."""
from __future__ import annotations

import re

from report_samples import make_report

from redline.report import render
from redline.report.markdown import code, text
from redline.catalog import MODE_CODES
from redline.report.modes import mode_name


def test_summary_counts_statuses_and_severities():
    md = render(make_report(), "md")
    assert "# redline report: zoo:digits\\_overfit" in md
    assert "| Worst severity | **Critical** |" in md
    for label, n in (("Vulnerable", 2), ("Not vulnerable", 1), ("Not applicable", 1), ("Error", 1)):
        assert f"| {label} | {n} |" in md
    for label, n in (("Critical", 1), ("Important", 0), ("Moderate", 1), ("Low", 0)):
        assert f"| {label} | {n} |" in md
    assert "4 of 17 failure modes were tested" in md


def test_every_finding_has_a_table_row_and_a_section():
    report = make_report()
    md = render(report, "md")
    table = md.split("## Findings", 1)[1].split("<a id=", 1)[0]
    for f in report.findings:
        assert code(f.check) in table
        assert re.search(rf"### \d+\. {re.escape(text(f.check))}: {re.escape(text(f.title))}", md)
    # worst first: the Critical finding leads, the not-applicable one comes last
    rows = [line for line in table.splitlines() if line.startswith("| [")]
    assert "`FM04.lira`" in rows[0] and "`FM03.attribute_inference`" in rows[-1]


def test_sections_carry_metrics_rationale_reason_and_evidence_links():
    md = render(make_report(), "md")
    assert "| tpr\\_at\\_fpr\\_0.001 | 0.12 |" in md
    assert "| tpr\\_at\\_fpr\\_0.01 | NaN |" in md and "| advantage | inf |" in md
    assert "**Rationale.** Training records are identifiable" in md
    assert "**Reason.** the target returns labels only" in md
    assert "**Error.** RuntimeError: boom" in md
    assert "![artifacts/roc.png](<artifacts/roc.png>)" in md
    assert "[artifacts/FM04.lira.npz](<artifacts/FM04.lira.npz>)" in md
    assert "<details><summary>Traceback</summary>" in md


def test_coverage_table_lists_all_17_modes():
    report = make_report()
    md = render(report, "md")
    coverage = md.split("## Coverage of the failure modes", 1)[1]
    rows = [line for line in coverage.splitlines() if re.match(r"\| FM\d\d \|", line)]
    assert [row.split("|")[1].strip() for row in rows] == list(MODE_CODES)
    assert f"| FM02 | {text(mode_name('FM02'))} | Not covered |" in coverage
    assert "| FM03 | " in coverage and "Not applicable | `FM03.attribute_inference` |" in coverage


def test_hostile_text_cannot_inject_html_or_markdown():
    report = make_report()
    report.findings[0].title = "x | y [click](javascript:alert(1)) <img src=x onerror=alert(1)>"
    report.findings[0].check = "FM04.a`b"
    md = render(report, "md")
    assert "<script>" not in md and "<img src=x" not in md
    assert "&lt;script&gt;" in md
    assert "x \\| y \\[click\\](javascript:alert(1))" in md
    assert "``FM04.a`b``" in md
    report.target["spec"] = "zoo:a|b"
    assert "| Target | `zoo:a\\|b` |" in render(report, "md")  # the pipe cannot split the table cell
    assert "\x1b" not in md and "\x00" not in md


def test_no_findings_still_renders_coverage():
    report = make_report()
    report.findings = []
    md = render(report, "md")
    assert "No checks ran." in md
    assert len(re.findall(r"^\| FM\d\d \|", md, flags=re.M)) == len(MODE_CODES)


def test_an_inconclusive_finding_is_marked_and_says_why():
    md = render(make_report(), "md")
    row = next(line for line in md.splitlines() if "`FM04.threshold`" in line and line.startswith("|"))
    assert "**Inconclusive**" in row and "could not decide: 25 non-members" in row
    assert "**Why inconclusive.** 25 non-members cannot measure" in md
