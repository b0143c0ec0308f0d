"""Every scan-report writer with hostile strings in every free-text field: nothing escapes its context."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from redline.findings import Finding, Status
from redline.report import Report
from redline.report.writers import render
from redline.severity import Severity

NASTY = "`` `x` | <img src=x onerror=alert(1)> ]]> </failure> \x1b[2J \u202eevil \x00 [link](javascript:alert(2))"


def hostile_report() -> Report:
    finding = Finding(
        id="0123456789abcdef",
        mode="FM05",
        check="FM05.learning",
        title="Learning-based extraction",
        status=Status.ERROR,
        severity=Severity.NONE,
        reason=f"http://h/?apikey=REDACTED: no valid answer; last error: HTTP 500: {NASTY}",
        evidence={"note": NASTY, "retried_rows": 4},
        params={"p": NASTY},
    )
    vulnerable = Finding(
        id="fedcba9876543210",
        mode="FM04",
        check="FM04.lira",
        title="Likelihood-ratio membership inference",
        status=Status.VULNERABLE,
        severity=Severity.IMPORTANT,
        rationale=NASTY,
        summary=NASTY,
        metrics={"auc": 0.9},
    )
    return Report(
        target={"spec": f"http://h/{NASTY}", "capabilities": None},
        data={"spec": NASTY},
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:01+00:00",
        findings=[finding, vulnerable],
        coverage={},
    )


def test_markdown_renders_no_html_and_no_raw_controls():
    markdown_it = pytest.importorskip("markdown_it")
    text = render(hostile_report(), "md")
    assert "\x1b" not in text and "\u202e" not in text and "\x00" not in text
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(text)
    assert "<img" not in html and 'href="javascript:' not in html


def test_junit_is_well_formed_and_keeps_the_text_visible():
    text = render(hostile_report(), "junit")
    root = ET.fromstring(text.split("\n", 1)[1])
    messages = [e.get("message") for e in root.iter() if e.get("message")]
    assert any("<img src=x onerror=alert(1)> ]]> </failure>" in m for m in messages)
    assert "\u202e" not in text and "\\u202e" in text and "\\x1b[2J" in text


def test_sarif_is_json_that_round_trips_the_text():
    doc = json.loads(render(hostile_report(), "sarif"))
    assert doc["version"] == "2.1.0"
    messages = [r["message"]["text"] for r in doc["runs"][0]["results"]]
    assert any("onerror" in m and "\\u202eevil" in m for m in messages)
    assert not any("\u202e" in m or "\x1b" in m for m in messages)
