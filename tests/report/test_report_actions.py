"""The action list and remediation in every report format, the assumed context, the incomplete banner."""
from __future__ import annotations

import json

import pytest
from report_samples import make_report

from redline.findings import Status
from redline.report import render, validate_report
from redline.report.formatting import action_items, format_value
from redline.triage.context import DeploymentContext, assume_for_target
from redline.triage.remediation import remediate

RETEST = {"target": "zoo:digits_overfit", "data": None, "context": None, "target_config": None, "seed": 0,
          "budgets": {}}


@pytest.fixture
def acted(artifacts_dir):
    report = make_report(artifacts_dir)
    ctx = assume_for_target(None, remote=False)
    for f in report.findings:
        remediate(f, ctx, RETEST)
    report.context, report.context_assumed = ctx.to_dict(), list(ctx.assumed)
    return report


def test_json_carries_remediation_and_validates(acted):
    doc = acted.to_dict()
    validate_report(doc)
    by_check = {f["check"]: f for f in doc["findings"]}
    assert "AUC 0.81" in by_check["FM04.lira"]["remediation"]
    assert all(f["remediation"] == "" for f in doc["findings"] if f["status"] != "vulnerable")
    assert doc["complete"] is True and doc["pending_checks"] == []


def test_html_puts_the_action_list_first(acted):
    html = render(acted, "html")
    assert html.index('id="actions"') < html.index('class="cards"') < html.index('id="details"')
    section = html[html.index('id="actions"'):html.index("</section>", html.index('id="actions"'))]
    vulnerable = action_items(acted.findings)
    assert section.count("<li") == len(vulnerable) == len(acted.by_status(Status.VULNERABLE))
    positions = [section.index(f.check) for f in vulnerable]
    assert positions == sorted(positions)  # Critical LiRA before the Moderate PGD finding
    assert "redline scan zoo:digits_overfit --select FM04.lira --seed 3" in section
    assert html.count('class="remedy"') == len(vulnerable)
    assert "Assumed (not stated)" in html and "not internet-exposed" in html
    assert "<script" not in section  # the rationale's hostile text stays escaped


def test_markdown_puts_the_action_list_first(acted):
    md = render(acted, "md")
    assert md.index("## What to do first") < md.index("## Summary")
    actions = md[md.index("## What to do first"):md.index("## Summary")]
    assert actions.startswith("## What to do first\n\n1. **Critical** [FM04.lira](#finding-1)")
    assert "Re-test: `redline scan zoo:digits_overfit --select FM04.lira --seed 3" in actions
    assert md.count("**Remediation.**") == len(action_items(acted.findings))


def test_sarif_rules_carry_help_and_results_the_remediation(acted):
    log = json.loads(render(acted, "sarif"))
    run = log["runs"][0]
    rules = {r["id"]: r for r in run["rules"]} if "rules" in run else {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    lira = rules["FM04.lira"]["help"]
    assert isinstance(lira["text"], str) and "AUC 0.81" in lira["text"] and "Re-test after the fix" in lira["text"]
    assert lira["markdown"].startswith("- ")
    # A rule without a vulnerable finding still says what protects against its mode (the catalog's list).
    for rule in rules.values():
        assert set(rule.get("help", {"text": ""})) <= {"text", "markdown"}
    result = next(r for r in run["results"] if r["ruleId"] == "FM04.lira")
    assert "AUC 0.81" in result["properties"]["remediation"]
    assert "What to do:" in result["message"]["text"]


def test_interrupted_report_shows_a_banner_everywhere(acted):
    acted.complete, acted.pending_checks = False, ["FM05.learning", "FM10.strip"]
    validate_report(acted.to_dict())
    assert "Incomplete report" in render(acted, "html") and "FM10.strip" in render(acted, "html")
    assert "Incomplete report" in render(acted, "md")
    assert "INCOMPLETE" in acted.summary()


def test_table_cells_cut_at_a_word_boundary_never_inside_a_word():
    text = "Nearly every query answered with full confidence scores and more words after that"
    cut = format_value(text, 30)
    assert cut.endswith("…") and len(cut) <= 30
    assert text.startswith(cut[:-1]) and text[len(cut) - 1] == " "


def test_context_header_lists_stated_and_assumed_facts_apart(acted):
    ctx = DeploymentContext.from_dict({"serving": {"exposure": "internet", "returns": "labels"}})
    acted.context, acted.context_assumed = ctx.to_dict(), list(ctx.assumed)
    md = render(acted, "md")
    assert "| Deployment context | internet-exposed, returns labels |" in md
    assert "Assumed (not stated)" in md and "no authentication" in md
