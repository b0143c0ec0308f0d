"""`redline scan` of zoo targets: a positive and a negative control, end to end."""
import json

from redline.cli import main
from redline.report.validate import validate_report


def test_zoo_logistic_regression_is_stolen_and_its_labels_only_twin_is_not(tmp_path, capsys):
    out = tmp_path / "logreg"
    assert main(["scan", "zoo:fair_logreg", "--select", "FM05.equation_solving", "--out", str(out),
                 "--no-progress", "--format", "json,html,md,sarif,junit"]) == 1
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    (finding,) = report["findings"]
    assert finding["status"] == "vulnerable" and finding["metrics"]["fidelity"] == 1.0
    assert finding["queries"] == 9  # d + 1 for the 8 survey features
    assert report["data"]["spec"] == "builtin:fair"
    assert (out / "artifacts" / "FM05.equation_solving.onnx").exists()

    twin = tmp_path / "labels"
    assert main(["scan", "zoo:fair_logreg_labels", "--select", "FM05.equation_solving", "--out", str(twin),
                 "--no-progress"]) == 3  # its only check cannot apply: nothing was tested
    (finding,) = json.loads((twin / "report.json").read_text())["findings"]
    assert finding["status"] == "not_applicable" and "labels" in finding["reason"]
