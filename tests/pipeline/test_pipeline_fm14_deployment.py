"""FM14.deployment_shift end to end over HTTP: a deployment sample given in the npz or as its own file."""
import json

import numpy as np

from redline.cli import main
from redline.report.validate import validate_report

WEIGHTS = np.array([2.0, -1.5, 1.0, 0.5, -0.5, 0.0])


def _deployment(n=400, seed=7):
    """New rows from the same rule, but drawn from the subpopulation near the decision
    boundary (the model now meets mostly borderline cases): its accuracy falls, and its
    confidence with it, which is what a label-free estimate reads."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(10 * n, 6))
    x = x[np.abs(x @ WEIGHTS - 0.75) < 0.5][:n]
    y = (x @ WEIGHTS + rng.normal(0, 0.3, len(x)) > 0.75).astype(int)
    return x.astype(np.float32), y


def _scan(server, data, out):
    code = main(["scan", server.url, "--data", data, "--out", str(out), "--select", "FM14.deployment_shift",
                 "--format", "json", "--fail-on", "never", "--no-progress"])
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    return code, report


def test_a_deploy_npz_over_http_is_measured_and_charged(logreg_problem, model_server, tmp_path):
    model, data = logreg_problem
    x_dep, y_dep = _deployment()
    path = tmp_path / "data.npz"
    np.savez(path, **data, x_deploy=x_dep, y_deploy=y_dep)
    with model_server(model) as server:
        code, report = _scan(server, f"npz:{path}", tmp_path / "out")
        rows = server.rows
    assert code == 0
    assert report["data"]["rows"]["deploy"] == 400 and "with labels" in report["data"]["deploy"]
    (finding,) = report["findings"]
    assert finding["status"] == "vulnerable", finding["summary"]
    m = finding["metrics"]
    assert m["deploy_accuracy"] < m["reference_accuracy"] - 0.1 and m["accuracy_drop_ci"][0] > 0.05
    assert 0 <= m["estimation_error"] < 0.1
    # The deployment rows are the check's queries; the test rows (and the endpoint's first probe) evaluation.
    assert finding["queries"] == 400 and finding["evaluation_queries"] >= 150
    assert finding["queries"] + finding["evaluation_queries"] == rows


def test_an_unlabelled_deploy_csv_is_estimated(logreg_problem, model_server, tmp_path):
    model, data = logreg_problem
    x_dep, _ = _deployment()
    test = tmp_path / "test.npz"
    # The held-out rows of both roles as the reference: 150 rows with a dozen errors leave ATC's
    # threshold too loose to decide a drop without labels (the check then says inconclusive).
    np.savez(test, x=np.concatenate([data["x_test"], data["x_pool"]]), y=np.concatenate([data["y_test"], data["y_pool"]]))
    new = tmp_path / "new.csv"
    lines = [",".join(f"f{i}" for i in range(6))] + [",".join(f"{v:.6f}" for v in row) for row in x_dep]
    new.write_text("\n".join(lines) + "\n")
    with model_server(model) as server:
        code, report = _scan(server, f"test=npz:{test},deploy=csv:{new}", tmp_path / "out")
    assert code == 0 and "without labels" in report["data"]["deploy"]
    (finding,) = report["findings"]
    m = finding["metrics"]
    assert not m["deploy_labelled"] and "deploy_accuracy" not in m
    assert m["estimated_accuracy"] < m["reference_accuracy"] - 0.05, finding["summary"]
    assert finding["status"] == "vulnerable", finding["summary"]


def test_without_a_deploy_role_the_check_does_not_apply_and_says_how_to_give_one(logreg_problem, model_server,
                                                                                  tmp_path):
    model, data = logreg_problem
    path = tmp_path / "data.npz"
    np.savez(path, **data)
    with model_server(model) as server:
        code, report = _scan(server, f"npz:{path}", tmp_path / "out")
    assert code == 3  # nothing selected reached a verdict
    (finding,) = report["findings"]
    assert finding["status"] == "not_applicable" and "deploy=SPEC" in finding["reason"]
