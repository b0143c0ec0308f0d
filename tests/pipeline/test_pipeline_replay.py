"""`redline replay`: a finding re-run from its record reproduces; a tampered one does not."""
import json

import pytest

from redline.cli import main


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "out"
    code = main(["scan", "zoo:fair_logreg", "--select", "FM05.equation_solving,FM04.threshold", "--budget", "3000",
                 "--set", "FM04.threshold.max_records=300", "--out", str(out), "--format", "json",
                 "--no-progress", "--fail-on", "never"])
    assert code == 0
    return out / "report.json"


def _finding(report_path, check):
    report = json.loads(report_path.read_text())
    return report, next(f for f in report["findings"] if f["check"] == check)


def test_a_finding_reproduces(scanned, capsys):
    _, finding = _finding(scanned, "FM04.threshold")
    assert finding["budget"] == 3000 and finding["params"]["max_records"] == 300
    capsys.readouterr()
    assert main(["replay", str(scanned), finding["id"], "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reproduced"] is True and result["status"] == {"recorded": "not_vulnerable", "replayed": "not_vulnerable"}
    names = {m["name"] for m in result["metrics"]}
    assert {"auc", "tpr_at_fpr_0.01"} <= names and all(m["equal"] for m in result["metrics"])


def test_a_tampered_metric_or_status_does_not_reproduce(scanned, tmp_path, capsys):
    report, finding = _finding(scanned, "FM05.equation_solving")
    finding["metrics"]["fidelity"] = 0.5
    tampered = tmp_path / "report.json"
    tampered.write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["replay", str(tampered), finding["id"][:8]]) == 1
    text = capsys.readouterr().out
    assert "NOT reproduced" in text and "fidelity" in text and "DIFFERS" in text

    report, finding = _finding(scanned, "FM05.equation_solving")
    finding["status"] = "not_vulnerable"
    tampered.write_text(json.dumps(report))
    assert main(["replay", str(tampered), finding["id"]]) == 1


def test_unknown_finding_and_mismatched_records_are_usage_errors(scanned, tmp_path, capsys):
    assert main(["replay", str(scanned), "0123456789abcdef"]) == 2
    err = capsys.readouterr().err
    assert "not in the report" in err and "FM04.threshold" in err
    assert main(["replay", str(tmp_path / "missing.json"), "0123456789abcdef"]) == 2
    # A record whose parameters no longer hash to its id is a different experiment: refused.
    report, finding = _finding(scanned, "FM04.threshold")
    finding["params"]["max_records"] = 301
    edited = tmp_path / "report.json"
    edited.write_text(json.dumps(report))
    capsys.readouterr()
    assert main(["replay", str(edited), finding["id"]]) == 2
    assert "cannot be replayed as recorded" in capsys.readouterr().err


def test_an_in_memory_target_needs_a_target_to_replay(scanned, tmp_path, capsys):
    report, finding = _finding(scanned, "FM04.threshold")
    report["target"]["spec"] = "python:sklearn.linear_model.LogisticRegression"
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    assert main(["replay", str(path), finding["id"]]) == 2
    assert "--target" in capsys.readouterr().err
