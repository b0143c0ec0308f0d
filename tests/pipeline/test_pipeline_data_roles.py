"""What a black-box auditor holds: test-only or test+pool data, perhaps without labels.

Checks run on what their declared roles allow, say not_applicable (with the reason) for
what they cannot, never train and measure on the same rows, and a scan that would test
nothing is a usage error.
"""
import json

import numpy as np
import pytest

import redline
from redline.checks import plan
from redline.checks.base import Needs
from redline.cli import main
from redline.data import Dataset, as_dataset, label_with_target
from redline.errors import UsageError
from redline.findings import Status
from redline.targets import TargetConfig, load_target

VERDICTS = {"vulnerable", "not_vulnerable"}
BLACK_BOX = "FM01.square,FM05.equation_solving,FM05.learning,FM04.threshold"


def _scan(server, data_spec, out, select=BLACK_BOX, budget="600"):
    code = main(["scan", server.url, "--data", data_spec, "--select", select, "--budget", budget,
                 "--out", str(out), "--format", "json", "--fail-on", "never", "--no-progress"])
    assert code == 0
    return json.loads((out / "report.json").read_text())


@pytest.mark.parametrize("with_pool", [False, True])
def test_http_endpoint_with_test_only_or_test_and_pool_bundle(logreg_problem, model_server, tmp_path, with_pool):
    model, data = logreg_problem
    arrays = {"x_test": data["x_test"], "y_test": data["y_test"]}
    if with_pool:
        arrays["x_pool"] = data["x_pool"]  # the attacker's own rows, no labels needed for stealing
    np.savez(tmp_path / "held.npz", **arrays)
    with model_server(model) as server:
        report = _scan(server, f"npz:{tmp_path / 'held.npz'}", tmp_path / "out")
        rows = server.rows
    findings = {f["check"]: f for f in report["findings"]}
    for check in ("FM01.square", "FM05.equation_solving", "FM05.learning"):
        assert findings[check]["status"] in VERDICTS, (check, findings[check].get("reason"))
    assert findings["FM05.equation_solving"]["status"] == "vulnerable"  # a logistic regression is solved exactly
    membership = findings["FM04.threshold"]
    assert membership["status"] == "not_applicable" and "train" in membership["reason"]
    assert membership["queries"] + membership["evaluation_queries"] == 0
    learning = findings["FM05.learning"]
    if with_pool:
        assert "data" not in learning["evidence"]
    else:
        assert "half of the test rows" in learning["evidence"]["data"]
    assert report["data"]["roles"] == (["test", "pool"] if with_pool else ["test"])
    assert sum(f["queries"] + f["evaluation_queries"] for f in report["findings"]) == rows


def test_unlabelled_test_rows_are_labelled_by_the_target_and_charged(logreg_problem, model_server, tmp_path):
    model, data = logreg_problem
    np.savez(tmp_path / "inputs.npz", x_test=data["x_test"])
    with model_server(model) as server:
        report = _scan(server, f"npz:{tmp_path / 'inputs.npz'}", tmp_path / "out", select="FM01.square,FM05.equation_solving")
        rows = server.rows
    findings = {f["check"]: f for f in report["findings"]}
    square = findings["FM01.square"]
    assert square["status"] in VERDICTS
    n = len(data["x_test"])
    assert f"labels from the target for the test rows ({n}" in square["evidence"]["data"]
    assert square["evaluation_queries"] >= n
    assert square["metrics"]["clean_accuracy"] == 1.0  # the target's own answers are the labels
    # Stealing reads no labels, so it asks for none.
    assert "labels from the target" not in findings["FM05.equation_solving"]["evidence"].get("data", "")
    assert report["data"]["unlabelled"] == ["test"] and "labels from the target" in report["data"]["labels"]
    assert sum(f["queries"] + f["evaluation_queries"] for f in report["findings"]) == rows


def test_label_with_target_counts_evaluation_queries_and_keeps_the_original(logreg_problem):
    model, data = logreg_problem
    target = load_target(model, data=as_dataset(data))
    unlabelled = Dataset("u", x_test=data["x_test"], x_pool=data["x_pool"], y_pool=data["y_pool"])
    labelled, asked = label_with_target(unlabelled, target)
    assert asked == {"test": len(data["x_test"])} and unlabelled.y_test is None
    assert np.array_equal(labelled.y_test, model.predict(data["x_test"]))
    assert labelled.meta["labels_from_target"] == ["test"]
    assert target.ledger.evaluation == len(data["x_test"]) and target.ledger.attack == 0


def test_learning_never_measures_fidelity_on_the_rows_it_trained_on(logreg_problem, monkeypatch):
    from redline.checks.extraction import fm05_learning

    model, data = logreg_problem
    seen = {}
    real = fm05_learning.measure_fidelity

    def spy(target, stolen, x_eval, *args, **kwargs):
        seen["x_eval"] = np.asarray(x_eval)
        return real(target, stolen, x_eval, *args, **kwargs)

    monkeypatch.setattr(fm05_learning, "measure_fidelity", spy)
    test_only = Dataset("t", x_test=data["x_test"], y_test=data["y_test"])
    finding = redline.scan(model, test_only, select="FM05.learning", budget=300).findings[0]
    assert finding.status.value in VERDICTS
    owned = {row.tobytes() for row in test_only.attacker_data()[0]}
    assert owned and not owned & {row.tobytes() for row in seen["x_eval"]}
    assert len(owned) + len(seen["x_eval"]) == len(data["x_test"])


def test_missing_roles_make_a_check_not_applicable_with_the_reason():
    needs = Needs(roles=("train", "test"))
    data = Dataset("t", x_test=np.zeros((10, 2)), y_test=np.zeros(10, dtype=int))
    reason = needs.missing_data(data)
    assert "train (the target's training rows)" in reason and "has only test" in reason
    assert Needs(roles=("test",), attacker=True).missing_data(data) is None
    tiny = Dataset("t", x_test=np.zeros((3, 2)), y_test=np.zeros(3, dtype=int))
    assert "too few" in Needs(roles=("test",), attacker=True).missing_data(tiny)
    assert Needs(roles=("test",), attacker=True, disjoint=False).missing_data(tiny) is None
    pool_only = Dataset("p", x_pool=np.zeros((10, 2)))
    assert "test (held-out rows)" in Needs(roles=("test",), attacker=True).missing_data(pool_only)


def test_every_check_declares_roles_it_can_be_given():
    for cls in plan(None):
        assert set(cls.needs.roles) <= {"train", "test", "pool"}, cls.id
    by_id = {cls.id: cls for cls in plan(None)}
    assert set(by_id["FM04.lira"].needs.roles) == {"train", "test"}
    assert by_id["FM05.learning"].needs.attacker and by_id["FM05.learning"].needs.disjoint
    assert by_id["FM02.label_flip"].needs.roles[0] == "train"
    assert not by_id["FM11.fuzz"].needs.needs_data


def _modes_without_checks() -> list[str]:
    """The last two modes no check tests yet (the list shrinks as checks are added; FM09 is the static scan)."""
    from redline.catalog import MODE_CODES
    from redline.checks import checks_by_mode

    return [code for code in MODE_CODES if code not in checks_by_mode() and code != "FM09"][-2:]


@pytest.mark.parametrize("mode", _modes_without_checks()
                         or [pytest.param("FM12", marks=pytest.mark.skip("every mode has a check"))])
def test_selecting_a_mode_without_checks_is_a_usage_error(mode, capsys):
    with pytest.raises(UsageError, match=f"no check tests {mode} yet; modes with checks: FM01, FM02"):
        plan(mode)
    assert main(["scan", "zoo:fair_logreg", "--select", f"FM01,{mode}", "--no-progress"]) == 2
    assert "modes with checks" in capsys.readouterr().err
    assert plan("FM09") == []  # the static scan of a model file


def test_a_scan_without_data_is_a_usage_error_unless_nothing_needs_data(capsys):
    assert main(["scan", "http://127.0.0.1:9/predict", "--select", "FM01,FM05", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--data is required for http://127.0.0.1:9/predict" in err and "FM01.square" in err
    assert main(["scan", "http://127.0.0.1:9/predict", "--select", "FM09", "--no-progress"]) == 2
    assert "static scan of a model file" in capsys.readouterr().err


def test_checks_that_need_no_data_run_without_it(logreg_problem):
    model, _ = logreg_problem

    def answer(x):
        return model.predict_proba(np.asarray(x, dtype=np.float64))

    config = TargetConfig(input_shape=(6,), lower=0.0, upper=1.0, n_classes=2)
    target = load_target(answer, config=config)
    report = redline.scan(target, None, select="FM11.fuzz", budget=2000)
    (finding,) = report.findings
    assert finding.status in (Status.VULNERABLE, Status.NOT_VULNERABLE), finding.reason
