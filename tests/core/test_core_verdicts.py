"""The inconclusive status end to end in the core: a check that cannot decide, the coverage
table, triage, the summary, and the scan's exit code (Report.exit_code)."""
import numpy as np
import pytest
from redline_testkit import ArrayTarget

from redline.checks.base import Check, Inconclusive, Needs, Outcome
from redline.data.base import Dataset
from redline.findings import Finding, Status
from redline.pipeline.runner import coverage_of
from redline.catalog import MODE_CODES
from redline.report.model import Report
from redline.severity import Severity
from redline.triage.engine import apply as triage


class Undecided(Check):
    id, mode, title, needs = "FM05.undecided", "FM05", "A check that cannot decide", Needs()

    def __init__(self, raise_it: bool = False):
        self.raise_it = raise_it

    def run(self, target, data, budget, rng, ctx):
        target.predict(data.x_test[:3])
        if self.raise_it:
            raise Inconclusive("too few rows; 100 would decide", metrics={"rows": 3})
        return Outcome(vulnerable=True, metrics={"rate": 0.9}, summary="looked bad",
                       inconclusive="3 rows cannot decide; 100 rows would")


@pytest.fixture
def problem():
    x = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    return ArrayTarget(np.eye(3)[:, :2], np.zeros(2)), Dataset("d", x, y, x, y, spec="t")


@pytest.mark.parametrize("raise_it", [False, True])
def test_an_undecided_check_is_inconclusive_with_its_reason_and_no_severity(problem, raise_it):
    target, data = problem
    (finding,) = triage([Undecided(raise_it)(target, data, budget=10)])
    assert finding.status is Status.INCONCLUSIVE and "would" in finding.reason
    assert finding.severity is Severity.NONE and "could not decide" in finding.rationale
    assert finding.queries == 3  # what it sent is still accounted for
    assert finding.metrics == ({"rows": 3} if raise_it else {"rate": 0.9})


def finding(mode, status, severity=Severity.NONE, check=None):
    return Finding(id=mode + status.value, mode=mode, check=check or f"{mode}.x", title="t", status=status,
                   severity=severity)


def report_of(*findings):
    findings = list(findings)
    return Report(target={"spec": "t"}, data={}, started_at="", finished_at="", findings=findings,
                  coverage=coverage_of(findings))


def test_coverage_says_inconclusive_when_that_is_the_best_a_mode_got():
    cov = coverage_of([finding("FM04", Status.INCONCLUSIVE), finding("FM04", Status.ERROR),
                       finding("FM01", Status.INCONCLUSIVE), finding("FM01", Status.NOT_VULNERABLE),
                       finding("FM05", Status.NOT_APPLICABLE)])
    assert cov["FM04"] == "inconclusive" and cov["FM01"] == "tested" and cov["FM05"] == "not_applicable"
    assert set(cov) == set(MODE_CODES)


def test_exit_codes_one_wins_then_three_then_zero():
    passed, vuln = finding("FM05", Status.NOT_VULNERABLE), finding("FM04", Status.VULNERABLE, Severity.IMPORTANT)
    undecided, error = finding("FM04", Status.INCONCLUSIVE), finding("FM01", Status.ERROR)
    skipped = finding("FM03", Status.NOT_APPLICABLE)
    assert report_of(passed).exit_code() == 0
    assert report_of(passed, undecided, skipped).exit_code() == 0  # something was tested, nothing failed
    assert report_of(vuln, error).exit_code("important") == 1  # 1 wins over 3
    assert report_of(vuln, error).exit_code("critical") == 3  # the finding is below the gate; the error counts
    assert report_of(passed, error).exit_code() == 3  # any error: not tested as asked
    assert report_of(undecided, skipped).exit_code() == 3  # no verdict at all
    assert report_of(error, error).exit_code("never") == 3  # the endpoint was down: never a silent pass
    assert report_of().exit_code() == 3
    assert report_of(vuln).exit_code("never") == 0
    everything_failed = report_of(error)
    assert not everything_failed.tested_anything and "ended in error (FM01.x)" in everything_failed.untested_reason
    assert "not tested as asked" in everything_failed.summary()
    assert "inconclusive" in report_of(undecided).summary()
