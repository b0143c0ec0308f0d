"""One rating path (issue 13): FM09 static-scan and ``redline deps`` findings are rated by
triage, with the same severities as before the move.

``rating_before.json`` holds what ``rating_cases`` gave with the code before FM09 and the
dependency audit were rated by triage rules (generated once, at commit 9adefd2).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "filescan"))  # filescan_asm, the pickle assembler
sys.path.insert(0, str(HERE))

import rating_cases

BEFORE = json.loads((HERE / "rating_before.json").read_text())


def test_every_dependency_vulnerability_and_audit_keeps_its_severity():
    now = rating_cases.deps_severities()
    before = {k: v for k, v in BEFORE.items() if k.startswith("deps")}
    assert set(now) == set(before)
    changed = {k: (before[k], now[k]) for k in before if before[k] != now[k]}
    assert not changed, f"{len(changed)} of {len(before)} deps ratings changed: {dict(list(changed.items())[:5])}"
    assert len(before) > 400  # the sweep, not a handful


def test_every_fm09_finding_keeps_its_severity_and_rationale(tmp_path):
    now = rating_cases.fm09_ratings(tmp_path)
    before = {k: v for k, v in BEFORE.items() if k.startswith("fm09")}
    assert now == before


def test_dependency_ratings_come_from_the_triage_rules(monkeypatch):
    """Each vulnerability and the audit's finding go through triage: a rule book whose FM11
    rules are changed changes their severities (deps keeps no severity table of its own)."""
    from redline.deps import OsvDatabase, audit, to_findings
    from redline.severity import Severity
    from redline.triage import engine
    from redline.triage.rules import load_rules

    book = load_rules()
    records = [{"id": "GHSA-x", "summary": "Slow parsing",
                "severity": [{"type": "CVSS_V3", "score": rating_cases.CVSS["9.8"]}],
                "affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1.0"]}]}]
    (vuln,) = audit({"x": "1.0"}, OsvDatabase(records))
    assert vuln.severity is Severity.CRITICAL and "9.8 on CVSS" in vuln.rationale
    (finding,) = to_findings([vuln])
    assert finding.severity is Severity.CRITICAL and finding.rationale.startswith("The dependency audit found 1 critical")
    assert finding.metrics["advisories_critical"] == 1 and "GHSA-x" in finding.summary

    import dataclasses

    fm11 = book.modes["FM11"]
    lowered = tuple(dataclasses.replace(r, severity=Severity.LOW) for r in fm11.rules)
    patched = dataclasses.replace(book, modes={**book.modes, "FM11": dataclasses.replace(fm11, rules=lowered)})
    monkeypatch.setattr(engine, "load_rules", lambda: patched)
    (vuln,) = audit({"x": "1.0"}, OsvDatabase(records))
    (finding,) = to_findings([vuln])
    assert vuln.severity is Severity.LOW and finding.severity is Severity.LOW


def test_the_audit_finding_is_rated_in_its_deployment():
    """The audit's finding takes the FM11 context modifiers, like any finding; the single
    vulnerability is rated on its advisory alone."""
    from redline.deps import OsvDatabase, audit, to_findings
    from redline.severity import Severity
    from redline.triage import DeploymentContext

    records = [{"id": "GHSA-y", "severity": [{"type": "CVSS_V3", "score": rating_cases.CVSS["7.5"]}],
                "affected": [{"package": {"ecosystem": "PyPI", "name": "y"}, "versions": ["1.0"]}]}]
    (vuln,) = audit({"y": "1.0"}, OsvDatabase(records))
    assert vuln.severity is Severity.IMPORTANT
    (open_,) = to_findings([vuln])
    (internal,) = to_findings([vuln], context=DeploymentContext(internet_exposed=False))
    assert open_.severity is Severity.IMPORTANT
    assert internal.severity is Severity.MODERATE and "only from inside" in internal.rationale


def test_the_static_scan_finding_is_rated_by_triage_when_it_is_made(tmp_path, monkeypatch):
    """The scan rates the FM09 finding with the triage rules before it is logged, as it does a
    check's finding: the event log (what a resumed scan reads back) holds the rated finding,
    and its rationale is the one the FM09 rule gives."""
    import dataclasses

    from redline.pipeline.runner import ScanRequest, run_scan
    from redline.triage import engine
    from redline.triage.expr import compile_template
    from redline.triage.rules import RULE_NAMES, load_rules

    book = load_rules()
    fm09 = book.modes["FM09"]
    marked = dataclasses.replace(fm09.default, evidence=compile_template("Marked FM09 rule ({issues:.0f} issues)", RULE_NAMES))
    patched = dataclasses.replace(book, modes={**book.modes, "FM09": dataclasses.replace(fm09, default=marked)})
    monkeypatch.setattr(engine, "load_rules", lambda: patched)

    path = rating_cases._write_model_files(tmp_path)["os_system"]
    report = run_scan(ScanRequest(target=str(path), select="FM09"), out_dir=tmp_path / "out", formats=["json"])
    events = [json.loads(line) for line in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    (logged,) = [e["finding"] for e in events if e.get("event") == "check_finished"]
    assert logged["check"] == "FM09.static_scan" and logged["severity"] == "Critical"
    assert logged["rationale"].startswith("Marked FM09 rule (") and logged["rationale"].endswith("rated Critical.")
    (finding,) = report.findings
    assert finding.rationale == logged["rationale"]


@pytest.mark.parametrize("producer", ["redline.filescan.findings", "redline.deps.auditor"])
def test_producers_outside_the_registry_declare_their_metrics(producer):
    import importlib

    from redline.triage.vocabulary import PRODUCERS, declarations

    module = importlib.import_module(producer)
    assert producer in PRODUCERS
    assert set(module.METRICS) <= set(declarations()[module.MODE])
