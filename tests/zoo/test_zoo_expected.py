"""Zoo expectations: every entry says what a scan should find; the demo shows it beside what was found."""
from __future__ import annotations

import json

import pytest

from redline import zoo
from redline.checks import all_checks
from redline.findings import Finding, Status
from redline.zoo.expected import compare, expect, finding_note


def _f(check, status):
    return Finding(id="0" * 16, mode=check[:4], check=check, title=check, status=Status(status))


def test_every_entry_states_expectations_the_demo_can_meet():
    checks = set(all_checks())
    for name in zoo.names():
        entry = zoo.entry(name)
        assert entry.expected, f"{name} states no expected verdict"
        for e in entry.expected:
            # The demo scans an entry's own modes, so each expectation must be one of them.
            assert e.selector.split(".")[0] in entry.modes, (name, e.selector)
            assert "." not in e.selector or e.selector in checks, (name, e.selector)
        if entry.twin and entry.control == "negative":  # a hardened twin says which defence should hold
            assert any(e.kind == "hardened" for e in entry.expected), name


def test_compare_marks_agreement_and_differences():
    expectations = (
        expect("FM07.eot_patch", "vulnerable", "honest"),
        expect("FM07", "not_vulnerable", "hardened"),
        expect("FM04", "not_vulnerable", "hardened"),
    )
    findings = [_f("FM07.eot_patch", "vulnerable"), _f("FM07.eot_perturbation", "not_vulnerable"),
                _f("FM04.lira", "not_vulnerable"), _f("FM04.rmia", "vulnerable"), _f("FM11.fuzz", "vulnerable")]
    result = {c.expectation.selector: c for c in compare(expectations, findings)}
    assert result["FM07.eot_patch"].agrees and result["FM07"].agrees  # the patch does not count for its mode
    assert not result["FM04"].agrees and result["FM04"].found == "vulnerable"
    assert finding_note(expectations, findings[0]) == ("expected: honest known weakness", True)
    assert finding_note(expectations, findings[3]) == (
        "differs: expected not vulnerable (hardened: defence holds)", False)
    assert finding_note(expectations, findings[4]) == ("no expectation stated", None)
    assert compare((expect("FM10", "vulnerable", "planted"),), [])[0].found == "not run"
    with pytest.raises(ValueError):
        expect("FM04", "maybe", "planted")


@pytest.mark.timeout(600)
def test_demo_index_shows_expected_beside_found(tmp_path):
    from redline.demo import run_demo

    index = run_demo(tmp_path, names=["fair_logreg_labels"], progress=False, budget=500, full=True)
    page = index.read_text()
    assert "expected vs found" in page
    assert "FM05.learning: expected <b>vulnerable</b> (honest known weakness)" in page
    summary = json.loads((tmp_path / "summary.json").read_text())
    expected = {c["selector"]: c for c in summary[0]["expected"]}
    assert set(expected) == {"FM05.equation_solving", "FM05.learning", "FM03"}
    for c in expected.values():
        assert ("&#10003;" in page) if c["agrees"] else ("&#10007; differs" in page)
    # A red badge on this negative control is explained, not bare.
    if any(f["status"] == "vulnerable" for f in summary[0]["findings"]):
        assert "(expected: honest known weakness)" in page or "differs: expected" in page
