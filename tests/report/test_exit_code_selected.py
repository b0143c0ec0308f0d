"""The exit code reflects the checks the user selected: the static scan of a model file that a
--select leaves out (FM09) is reported, but its verdict is not a test of what was asked."""
import json

import numpy as np
import pytest

from redline.cli import main
from redline.findings import Finding, Status
from redline.report.model import Report
from redline.report.validate import validate_report
from redline.severity import Severity


def finding(check, status, severity=Severity.NONE):
    return Finding(id=check + status.value, check=check, mode=check.split(".")[0], title="t", status=status,
                   severity=severity, reason="no pool" if status is Status.NOT_APPLICABLE else "")


def report_of(*findings, added=()):
    return Report(target={"spec": "sklearn:m.skops"}, data={"spec": "csv:d.csv"}, started_at="t0", finished_at="t1",
                  findings=list(findings), coverage={}, added_checks=list(added))


STATIC = "FM09.static_scan"


def test_an_added_static_scan_does_not_count_as_testing_what_was_asked():
    static = finding(STATIC, Status.NOT_VULNERABLE)
    for selected in (Status.NOT_APPLICABLE, Status.INCONCLUSIVE):
        report = report_of(static, finding("FM05.learning", selected), added=[STATIC])
        assert not report.tested_anything
        assert report.exit_code() == 3 and report.exit_code("never") == 3
        reason = report.untested_reason
        assert "no selected check reached a verdict" in reason and f"{STATIC} ran but was not selected" in reason
    # The selected checks never ran (an unsafe file is not loaded): still exit 3 under --fail-on never ...
    unsafe = finding(STATIC, Status.VULNERABLE, Severity.CRITICAL)
    assert report_of(unsafe, added=[STATIC]).exit_code("never") == 3
    assert "no selected check ran" in report_of(unsafe, added=[STATIC]).untested_reason
    # ... and an added check can still fail the scan (1 wins over 3), and its error still counts.
    assert report_of(unsafe, added=[STATIC]).exit_code() == 1
    errored = report_of(finding(STATIC, Status.ERROR), finding("FM05.learning", Status.NOT_VULNERABLE), added=[STATIC])
    assert errored.exit_code() == 3 and "ended in error (FM09.static_scan)" in errored.untested_reason


def test_a_selected_or_full_scan_static_scan_counts():
    # No --select (a full scan) or a --select naming FM09: the static scan is what was asked.
    report = report_of(finding(STATIC, Status.NOT_VULNERABLE), finding("FM05.learning", Status.NOT_APPLICABLE))
    assert report.tested_anything and report.exit_code() == 0
    both = report_of(finding(STATIC, Status.NOT_VULNERABLE), finding("FM05.learning", Status.NOT_VULNERABLE),
                     added=[STATIC])
    assert both.exit_code() == 0  # the selected check reached a verdict


def test_added_checks_are_those_the_selection_leaves_out():
    from redline.pipeline.runner import unselected_checks

    static = [finding(STATIC, Status.NOT_VULNERABLE)]
    assert unselected_checks(None, static) == []
    assert unselected_checks("FM09,FM05.learning", static) == [] and unselected_checks("fm09", static) == []
    assert unselected_checks(["FM09"], static) == []
    assert unselected_checks("FM05.learning", static) == [STATIC] and unselected_checks("FM05", static) == [STATIC]
    assert unselected_checks("FM05", []) == []


def test_added_checks_round_trip_through_report_json():
    report = report_of(finding(STATIC, Status.NOT_VULNERABLE), finding("FM05.learning", Status.NOT_APPLICABLE),
                       added=[STATIC])
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["added_checks"] == [STATIC]
    assert Report.from_dict(doc).exit_code() == 3
    plain = report_of(finding("FM05.learning", Status.NOT_VULNERABLE)).to_dict()
    assert "added_checks" not in plain  # an additive field, only when the scan added a check


@pytest.fixture
def model_file(tmp_path):
    pytest.importorskip("skops")
    from skops.io import dump
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).normal(size=(40, 3))
    y = (x[:, 0] > 0).astype(int)
    path = tmp_path / "m.skops"
    dump(LogisticRegression().fit(x, y), path)
    data = tmp_path / "one_row.npz"
    np.savez(data, x_test=x[:1], y_test=y[:1])  # one test row: FM05.learning does not apply
    return f"sklearn:{path}", f"npz:{data}"


def test_scan_of_a_model_file_exits_3_when_no_selected_check_reached_a_verdict(model_file, tmp_path, capsys):
    target, data = model_file
    args = ["scan", target, "--data", data, "--budget", "50", "--no-progress", "--format", "json"]
    assert main(args + ["--select", "FM05.learning", "--out", str(tmp_path / "a")]) == 3
    assert "no selected check reached a verdict" in capsys.readouterr().err
    doc = json.loads((tmp_path / "a" / "report.json").read_text())
    validate_report(doc)
    assert doc["added_checks"] == [STATIC]
    assert {f["check"]: f["status"] for f in doc["findings"]} == {STATIC: "not_vulnerable",
                                                                 "FM05.learning": "not_applicable"}
    # Selecting FM09 too asks for the static scan, whose verdict then counts.
    assert main(args + ["--select", "FM09,FM05.learning", "--out", str(tmp_path / "b")]) == 0
    assert "added_checks" not in json.loads((tmp_path / "b" / "report.json").read_text())


@pytest.mark.parametrize("select", [",", " , ", ""])
def test_an_empty_selection_is_a_usage_error(model_file, tmp_path, select, capsys):
    target, data = model_file
    out = tmp_path / "out"
    assert main(["scan", target, "--data", data, "--select", select, "--out", str(out), "--no-progress"]) == 2
    assert "names no mode code or check id" in capsys.readouterr().err
    assert not (out / "report.json").exists()


def test_a_campaign_job_on_a_model_file_counts_only_what_it_selected(model_file, tmp_path):
    from redline.campaign import parse_campaign, run_campaign

    target, data = model_file
    raw = {"targets": [target], "data": data, "select": "FM05.learning", "budget": 50, "seeds": [0]}
    result = run_campaign(parse_campaign(raw), tmp_path / "c", executor="inline", progress=False)
    (report,) = result.reports.values()
    assert report.added_checks == [STATIC] and result.exit_code() == 3
    raw["select"] = "FM09,FM05.learning"
    result = run_campaign(parse_campaign(raw), tmp_path / "d", executor="inline", progress=False)
    assert result.exit_code() == 0
