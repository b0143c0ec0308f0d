"""report.junit.xml: one test case per check, for CI systems that read JUnit results.

vulnerable -> ``<failure type=SEVERITY>``, error -> ``<error>``, not_applicable ->
``<skipped>``, inconclusive -> ``<skipped>`` whose message starts "inconclusive:" and gives
the reason (never a pass), not_vulnerable -> a passing test case.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC
from pathlib import Path
from typing import Any

from ..findings import Finding, Status
from ..util.safe_text import terminal_text
from .formatting import format_value, parse_time, status_counts, tool_identity
from .model import Report

# XML 1.0 forbids most control characters (ANSI colour codes in a traceback, NUL bytes from
# a hostile endpoint); ElementTree would write them verbatim and break every parser.
_XML_ILLEGAL = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any) -> str:
    """Text legal in XML 1.0, with control and bidi characters shown as visible escapes."""
    return _XML_ILLEGAL.sub("", terminal_text(value))


def render(report: Report, base_dir: Path | None = None) -> str:
    counts = status_counts(report.findings)
    total_time = sum(float(f.seconds) for f in report.findings)
    attrs = {
        "name": "redline",
        "tests": str(len(report.findings)),
        "failures": str(counts[Status.VULNERABLE]),
        "errors": str(counts[Status.ERROR]),
        "skipped": str(counts[Status.NOT_APPLICABLE] + counts[Status.INCONCLUSIVE]),
        "time": f"{total_time:.3f}",
    }
    root = ET.Element("testsuites", attrs)
    suite = ET.SubElement(root, "testsuite", attrs)
    stamp = parse_time(report.started_at)
    if stamp is not None:
        if stamp.tzinfo is not None:  # JUnit timestamps carry no offset: give UTC
            stamp = stamp.astimezone(UTC).replace(tzinfo=None)
        suite.set("timestamp", stamp.isoformat(timespec="seconds"))
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", report.target.get("spec", "")),
        ("data", report.data.get("spec") or ""),
        ("tool", " ".join(tool_identity(report.tool))),
        ("worst_severity", report.worst_severity.label),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": xml_text(value)})
    for f in report.findings:
        _testcase(suite, f)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _testcase(suite: ET.Element, f: Finding) -> None:
    case = ET.SubElement(
        suite,
        "testcase",
        {"classname": f"redline.{xml_text(f.mode)}", "name": xml_text(f.check), "time": f"{float(f.seconds):.3f}"},
    )
    if f.status is Status.VULNERABLE:
        message = f"{f.severity.label}: {f.rationale or f.title}"
        failure = ET.SubElement(case, "failure", {"message": xml_text(message), "type": f.severity.label})
        failure.text = xml_text(_details(f))
    elif f.status is Status.ERROR:
        error = ET.SubElement(case, "error", {"message": xml_text(f.reason or "the check failed"), "type": "error"})
        error.text = xml_text(f.evidence.get("traceback") or f.reason)
    elif f.status is Status.NOT_APPLICABLE:
        ET.SubElement(case, "skipped", {"message": xml_text(f.reason or "not applicable")})
    elif f.status is Status.INCONCLUSIVE:
        skipped = ET.SubElement(case, "skipped", {"message": xml_text(f"inconclusive: {f.reason or 'could not decide'}")})
        skipped.text = xml_text(_details(f))
    out = ET.SubElement(case, "system-out")
    out.text = xml_text(_run_facts(f))


def _details(f: Finding) -> str:
    lines = [f"{f.check}: {f.title}", f"severity: {f.severity.label}"]
    if f.rationale:
        lines.append(f"rationale: {f.rationale}")
    if f.summary:
        lines.append(f"summary: {f.summary}")
    if f.metrics:
        lines.append("metrics:")
        lines += [f"  {k}: {format_value(v, 300)}" for k, v in f.metrics.items()]
    return "\n".join(lines)


def _run_facts(f: Finding) -> str:
    params = ", ".join(f"{k}={format_value(v, 80)}" for k, v in f.params.items()) or "none"
    return (
        f"id: {f.id}\nstatus: {f.status.value}\nseed: {f.seed}\nqueries: {f.queries}\n"
        f"evaluation_queries: {f.evaluation_queries}\nparams: {params}"
    )
