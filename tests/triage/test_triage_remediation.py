"""Remediation: steps from data, filled with the measured numbers, chosen by the context, with a re-test command."""
from __future__ import annotations

import shlex

import pytest

from redline.catalog import get_mode
from redline.findings import Finding, Status
from redline.report.formatting import action_items, remediation_parts
from redline.severity import Severity
from redline.triage.context import DeploymentContext
from redline.triage.remediation import (
    RemediationError,
    load_remediation,
    parse_remediation,
    remediate,
    retest_command,
)

RETEST = {"target": "sklearn:model dir/m.skops", "data": "npz:d.npz", "context": "ctx.yaml", "target_config": None,
          "seed": 4, "budgets": {"FM04.lira": 5000, "FM01.square": 2000}}


def _finding(check="FM04.lira", status=Status.VULNERABLE, severity=Severity.IMPORTANT, **metrics):
    return Finding(id="ab" * 8, mode=check[:4], check=check, title=check, status=status, severity=severity,
                   metrics=metrics or {"auc": 0.81, "tpr_at_fpr_0.001": 0.12}, seed=4, queries=3000)


def test_every_mode_has_advice_and_the_data_validates():
    book = load_remediation()
    assert set(book.modes) == {f"FM{i:02d}" for i in range(1, 18)}
    assert all(advice.steps for advice in book.modes.values())
    with pytest.raises(RemediationError, match="not 1..4"):
        parse_remediation({"schema": "redline.remediation/1", "modes": {"FM04": {"mitigations": [9]}}})
    with pytest.raises(RemediationError, match="unknown name"):
        parse_remediation({"schema": "redline.remediation/1",
                           "modes": {"FM04": {"steps": [{"text": "AUC {aucc:.2f}"}]}}})


def test_remediation_cites_the_numbers_the_context_and_the_catalog():
    f = _finding()
    text = remediate(f, DeploymentContext(outputs="probabilities", data_sensitivity="health"), RETEST)
    assert f.remediation == text
    steps, also, retest = remediation_parts(f)
    assert "AUC 0.81" in steps[0] and "12.0% of members" in steps[0]
    assert any("full probabilities" in s for s in steps)
    assert any("health" in s and "differential privacy" in s for s in steps)
    mitigations = get_mode("FM04").mitigations
    assert also == [mitigations[1], mitigations[3]]
    assert shlex.split(retest) == ["redline", "scan", "sklearn:model dir/m.skops", "--data", "npz:d.npz",
                                   "--select", "FM04.lira", "--seed", "4", "--budget", "5000",
                                   "--context", "ctx.yaml", "--out", "redline-retest-FM04.lira"]

    labels = _finding()
    remediate(labels, DeploymentContext(outputs="labels", data_sensitivity="public"), RETEST)
    steps, _, _ = remediation_parts(labels)
    assert not any("full probabilities" in s or "differential privacy" in s for s in steps)


def test_only_vulnerable_findings_get_a_remediation():
    for status in (Status.NOT_VULNERABLE, Status.NOT_APPLICABLE, Status.ERROR):
        f = _finding(status=status, severity=Severity.NONE)
        f.remediation = "stale"
        assert remediate(f, None, RETEST) == "" and f.remediation == ""


def test_an_in_memory_model_gets_an_api_call_to_retest():
    f = _finding()
    assert retest_command(f, {**RETEST, "target": None}) == "redline.scan(model, data, select='FM04.lira', seed=4, budget=5000)"


def test_action_list_orders_by_severity_then_measured_strength():
    weak = _finding("FM01.square", severity=Severity.IMPORTANT, success_rate=0.2)
    strong = _finding("FM01.pgd", severity=Severity.IMPORTANT, success_rate=0.97)
    critical = _finding("FM04.lira", severity=Severity.CRITICAL, auc=0.55)
    passed = _finding("FM05.learning", status=Status.NOT_VULNERABLE, severity=Severity.NONE)
    assert action_items([weak, passed, strong, critical]) == [critical, strong, weak]
