"""The "What the defences buy" section: shown only when a scan compared, every value escaped."""
from __future__ import annotations

from redline.report import defences as section
from redline.report.model import Report


def report(defences=None):
    return Report(target={"spec": "zoo:x+labels"}, data={"spec": ""}, started_at="2026-01-01T00:00:00Z",
                  finished_at="2026-01-01T00:00:01Z", findings=[], coverage={}, defences=defences)


SECTION = {
    "policy": "guard<b>.yaml", "defences": ["validate", "labels"], "baseline": {"spec": "zoo:x"},
    "defended": {"spec": "zoo:x+labels"},
    "checks": [{
        "check": "FM05.learning", "mode": "FM05", "metric": "fidelity", "effect": "refused",
        "bare": {"status": "vulnerable", "severity": "Important", "value": 0.99, "queries": 300},
        "defended": {"status": "error", "severity": "None", "value": None, "queries": 0, "refusals": 4,
                     "reason": "<script>alert(1)</script>"},
    }],
}


def test_no_section_without_a_comparison():
    assert section.markdown(report()) == [] and section.html(report()) == ""


def test_the_section_in_markdown_and_html_escapes_what_it_shows():
    md = "\n".join(section.markdown(report(SECTION)))
    assert "## What the defences buy" in md and "vulnerable (Important)" in md and "0 (4 refused)" in md
    assert "refused: the defences refused" in md and "<b>" not in md
    page = section.html(report(SECTION))
    assert 'id="defences"' in page and "guard&lt;b&gt;.yaml" in page and "<b>.yaml" not in page
    assert "0.99" in page and "validate, labels" in page
    assert "error: &lt;script&gt;" in page and "<script>" not in page and "&lt;script&gt;" in md


def test_resume_command_keeps_the_policy():
    import argparse

    from redline.pipeline.commands import resume_command

    args = argparse.Namespace(target="zoo:x", out="o", data=None, select="FM05", budget=None, context=None,
                              target_config=None, defend="guard.yaml", seed=0, format="json")
    assert "--defend guard.yaml" in resume_command(args)
