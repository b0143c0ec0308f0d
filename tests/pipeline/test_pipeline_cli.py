"""`redline scan` end to end: exit codes, formats, errors, and local HTTP endpoints."""
import json
import subprocess
import sys

import numpy as np
import pytest

from redline.cli import main
from redline.report.validate import validate_report


@pytest.fixture
def npz_data(logreg_problem, tmp_path):
    _, data = logreg_problem
    path = tmp_path / "data.npz"
    np.savez(path, **data)
    return f"npz:{path}"


def read_report(out):
    report = json.loads((out / "report.json").read_text())
    validate_report(report)
    return report


@pytest.mark.parametrize("labels_only", [False, True])
def test_http_endpoint_queries_equal_what_the_server_answered(logreg_problem, model_server, npz_data, tmp_path,
                                                             labels_only, capsys):
    model, _ = logreg_problem
    out = tmp_path / "out"
    with model_server(model, labels_only=labels_only) as server:
        code = main(["scan", server.url, "--data", npz_data, "--out", str(out), "--budget", "500",
                     "--format", "json,sarif,junit", "--fail-on", "never", "--no-progress"])
        rows = server.rows
    assert code == 0
    report = read_report(out)
    assert report["target"]["capabilities"]["remote"] is True
    assert report["target"]["capabilities"]["outputs"] == ("labels" if labels_only else "probabilities")
    findings = {f["check"]: f for f in report["findings"]}
    stolen = findings["FM05.equation_solving"]
    if labels_only:
        assert stolen["status"] == "not_applicable" and "labels" in stolen["reason"]
    else:
        assert stolen["status"] == "vulnerable" and stolen["queries"] == 7
    assert findings["FM01.pgd"]["status"] == "not_applicable"  # no gradients over HTTP
    assert sum(f["queries"] + f["evaluation_queries"] for f in report["findings"]) == rows
    assert (out / "report.sarif").exists() and (out / "report.junit.xml").exists()


def test_fail_on_sets_the_exit_code(logreg_problem, model_server, npz_data, tmp_path):
    model, _ = logreg_problem
    with model_server(model) as server:
        args = ["scan", server.url, "--data", npz_data, "--select", "FM05.equation_solving", "--no-progress"]
        assert main(args + ["--out", str(tmp_path / "a"), "--fail-on", "important"]) == 1
        assert main(args + ["--out", str(tmp_path / "b"), "--fail-on", "never"]) == 0
    # Behind labels only the one selected check does not apply: nothing was tested, exit 3
    # whatever the threshold (a CI gate must not pass an untested model).
    with model_server(model, labels_only=True) as server:
        for fail_on in ("low", "never"):
            assert main(["scan", server.url, "--data", npz_data, "--select", "FM05.equation_solving", "--no-progress",
                         "--out", str(tmp_path / f"c-{fail_on}"), "--fail-on", fail_on]) == 3
        # A check that ran and reached a verdict, with the gate off: exit 0.
        assert main(["scan", server.url, "--data", npz_data, "--select", "FM05.learning", "--no-progress",
                     "--budget", "300", "--out", str(tmp_path / "d"), "--fail-on", "never"]) == 0


def test_json_output_is_the_report(logreg_problem, model_server, npz_data, tmp_path, capsys):
    model, _ = logreg_problem
    with model_server(model) as server:
        main(["scan", server.url, "--data", npz_data, "--select", "FM05.equation_solving", "--json", "--out", str(tmp_path)])
    validate_report(json.loads(capsys.readouterr().out))


@pytest.mark.parametrize(
    "args,message",
    [
        (["scan", "zoo:no_such_model"], "no_such_model"),
        (["scan", "http://127.0.0.1:9/predict", "--data", "builtin:nope"], "nope"),
        (["scan", "onnx:/does/not/exist.onnx"], "exist.onnx"),
        (["scan", "ftp://example.invalid/model"], "ftp"),
        (["scan", "http://127.0.0.1:9/x", "--select", "FM99"], "FM99"),
        (["scan", "http://127.0.0.1:9/x", "--budget", "-3"], "positive"),
        (["scan", "http://127.0.0.1:9/x", "--format", "pdf"], "pdf"),
        (["scan", "http://127.0.0.1:9/x", "--fail-on", "sometimes"], "sometimes"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path, capsys):
    try:
        code = main(args + ["--out", str(tmp_path), "--no-progress"])
    except SystemExit as exc:  # argparse rejects flags before main's handler runs
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("redline: error")]) == 1


def test_unreachable_endpoint_is_a_clear_error(npz_data, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "redline.cli", "scan", "http://127.0.0.1:9/predict", "--data", npz_data,
         "--select", "FM05.equation_solving", "--out", str(tmp_path), "--no-progress", "--target-config", str(_fast_config(tmp_path))],
        capture_output=True, text=True, timeout=60,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    (finding,) = report["findings"]
    assert finding["status"] == "error" and "127.0.0.1:9" in finding["reason"]
    assert "Traceback" not in proc.stderr
    # Every check errored (the endpoint is down): the reports are written and the exit code says 3.
    assert proc.returncode == 3 and "could not test what was asked" in proc.stderr


def _fast_config(tmp_path):
    path = tmp_path / "fast.yaml"
    path.write_text("retries: 1\nbackoff: 0.01\ntimeout: 2\n")
    return path


def test_malicious_model_file_is_reported_and_never_loaded(tmp_path):
    canary = tmp_path / "CANARY"
    model = tmp_path / "model.pt"
    # Protocol-0 pickle calling os.system: loading it would create the canary.
    model.write_bytes(f"cos\nsystem\n(S'touch {canary}'\ntR.".encode())
    out = tmp_path / "out"
    code = main(["scan", f"torch:{model}", "--out", str(out), "--no-progress"])
    assert code == 1 and not canary.exists()
    report = read_report(out)
    (finding,) = report["findings"]
    assert finding["check"] == "FM09.static_scan" and finding["status"] == "vulnerable"
    assert finding["severity"] == "Critical" and "os.system" in json.dumps(finding["evidence"])
    assert report["coverage"]["FM09"] == "tested"


def test_natural_adversarial_runs_over_http_finds_the_planted_slice_and_charges_what_was_answered(
        logreg_problem, model_server, tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    _, data = logreg_problem
    # A larger pool, and a model that learned one subgroup (x0 >= 0.6 and x5 < 0.4) with flipped labels.
    rng = np.random.default_rng(1)
    pool = rng.uniform(0, 1, size=(1200, 6)).astype(np.float32)
    y_pool = (pool @ np.array([2.0, -1.5, 1.0, 0.5, -0.5, 0.0]) + rng.normal(0, 0.3, 1200) > 0.75).astype(int)
    x_train, y_train = data["x_train"], data["y_train"].copy()
    group = (x_train[:, 0] >= 0.6) & (x_train[:, 5] < 0.4)
    y_train[group] = 1 - y_train[group]
    model = DecisionTreeClassifier(max_depth=6, min_samples_leaf=5, random_state=0).fit(x_train, y_train)
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x_train, y_train=data["y_train"], x_test=data["x_test"], y_test=data["y_test"],
             x_pool=pool, y_pool=y_pool)
    out = tmp_path / "out"
    with model_server(model) as server:
        code = main(["scan", server.url, "--data", f"npz:{path}", "--out", str(out), "--select",
                     "FM15.natural_adversarial", "--set", "FM15.natural_adversarial.families=[logreg]",
                     "--format", "json", "--fail-on", "never", "--no-progress"])
        rows = server.rows
    assert code == 0
    finding = {f["check"]: f for f in read_report(out)["findings"]}["FM15.natural_adversarial"]
    assert finding["status"] == "vulnerable", finding["summary"]
    assert any("x0" in s["description"] or "x5" in s["description"] for s in finding["metrics"]["slices"])
    assert (out / finding["evidence"]["examples"]).is_file()
    # One attack query per pool row; the endpoint's first probe is the only evaluation query.
    assert finding["queries"] == 1200 and finding["queries"] + finding["evaluation_queries"] == rows


def test_common_corruption_runs_over_http_and_charges_what_the_server_answered(logreg_problem, model_server,
                                                                             npz_data, tmp_path):
    model, _ = logreg_problem
    out = tmp_path / "out"
    with model_server(model) as server:
        code = main(["scan", server.url, "--data", npz_data, "--out", str(out), "--select", "FM16.corruption",
                     "--set", "FM16.corruption.n_inputs=150", "--set", "FM16.corruption.tolerated_drop=0.05",
                     "--format", "json", "--fail-on", "never", "--no-progress"])
        rows = server.rows
    assert code == 0
    finding = {f["check"]: f for f in read_report(out)["findings"]}["FM16.corruption"]
    assert finding["status"] == "vulnerable", finding["summary"]  # about 12 points lost on average (CI 9-14)
    assert finding["metrics"]["corruption_kind"] == "tabular" and finding["metrics"]["evaluated_inputs"] == 150
    # 150 per corruption and severity (7 families x 5) as attack queries; the clean answers (and
    # the endpoint's first probe) as evaluation queries: every row charged is one the server answered.
    assert finding["queries"] == 150 * 35 and finding["evaluation_queries"] >= 150
    assert finding["queries"] + finding["evaluation_queries"] == rows
