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


def test_the_demo_selects_only_modes_with_checks_for_every_zoo_entry():
    """A zoo entry may be a control for modes no check tests yet (FM15, FM16); the demo's
    selection must still be a valid --select, or `redline demo` stops at that entry."""
    from redline import zoo
    from redline.checks import plan
    from redline.demo import demo_select

    assert any(m in zoo.describe(n)["modes"] for n in zoo.names() for m in ("FM14", "FM15", "FM16"))
    for name in zoo.names():
        select = demo_select(zoo.describe(name)["modes"])
        assert plan(select), name
