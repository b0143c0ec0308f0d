"""The deployment context is checked, its defaults fit the target, and stated outputs reach the attacks."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

import redline
import redline.checks
from redline.cli import main
from redline.errors import UsageError
from redline.targets.base import InputSpec
from redline.targets.callable import CallableTarget
from redline.triage.context import DeploymentContext, assume_for_target

CHECKS = textwrap.dedent(
    '''
    import json, os
    from pathlib import Path
    from redline.checks.base import Check, Outcome

    class Probe(Check):
        """Records what an attacker sees, and reports a strong membership signal."""
        id, mode, title = "FM04.probe", "FM04", "probe"
        def run(self, target, data, budget, rng, ctx):
            answers = target.predict(data.x_test[:4])
            Path(os.environ["RA_SEEN"]).write_text(json.dumps({
                "outputs": target.capabilities.outputs, "answers": answers.tolist()}))
            return Outcome(vulnerable=True, metrics={"auc": 0.93, "tpr_at_fpr_0.001": 0.2, "advantage": 0.7})
    '''
)


@pytest.fixture
def probe(tmp_path, monkeypatch):
    (tmp_path / "ra_probe.py").write_text(CHECKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(redline.checks, "check_modules", lambda: ("ra_probe",))
    seen = tmp_path / "seen.json"
    monkeypatch.setenv("RA_SEEN", str(seen))
    return lambda: json.loads(seen.read_text())


def _target():
    def model(x):
        p = 1 / (1 + np.exp(-3 * x.sum(axis=1)))
        return np.stack([1 - p, p], axis=1)

    return CallableTarget(model, input_spec=InputSpec(shape=(3,)), n_classes=2, spec="python:model")


RNG = np.random.default_rng(0)
DATA = dict(x_train=RNG.uniform(size=(8, 3)), y_train=np.array([0, 1] * 4),
            x_test=RNG.uniform(-0.3, 0.3, size=(8, 3)), y_test=np.array([1, 0] * 4))


def test_unknown_context_key_lists_the_valid_ones():
    with pytest.raises(UsageError) as err:
        DeploymentContext.from_dict({"foo": 1})
    message = str(err.value)
    assert "'foo'" in message and "internet_exposed" in message and "serving" in message and "\n" not in message
    with pytest.raises(UsageError, match="did you mean serving.returns"):
        DeploymentContext.from_dict({"serving": {"retruns": "labels"}})
    # A richer system description keeps its own keys (serving.url) and loads.
    assert DeploymentContext.from_dict({"serving": {"url": "https://x", "returns": "labels"}}).outputs == "labels"
    assert DeploymentContext.from_dict({"x-ticket": "ML-1", "outputs": "labels"}).outputs == "labels"  # notes


def test_cli_rejects_an_unknown_context_key_in_one_line(tmp_path, capsys):
    ctx = tmp_path / "ctx.yaml"
    ctx.write_text("foo: 1\n")
    code = main(["scan", "zoo:fair_logreg", "--context", str(ctx), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "valid keys" in err


def test_defaults_follow_the_target_and_stay_marked_assumed():
    local = assume_for_target(None, remote=False)
    remote = assume_for_target(None, remote=True, outputs="labels")
    assert local.internet_exposed is False and "internet_exposed" in local.assumed
    assert remote.internet_exposed is True and remote.outputs == "labels" and "outputs" in remote.assumed
    stated = assume_for_target(DeploymentContext.from_dict({"internet_exposed": True}), remote=False)
    assert stated.internet_exposed is True and "internet_exposed" not in stated.assumed


def test_local_model_is_not_rated_as_internet_facing(tmp_path, probe):
    report = redline.scan(_target(), DATA, out=tmp_path / "o", formats="json,html,md")
    finding = report.findings[0]
    assert "anyone on the internet" not in finding.rationale
    assert "inside the organisation (assumed)" in finding.rationale
    saved = json.loads((tmp_path / "o" / "report.json").read_text())
    assert saved["context"]["internet_exposed"] is False and "internet_exposed" in saved["context_assumed"]
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Assumed (not stated)" in html and "not internet-exposed" in html
    assert "not internet-exposed" in (tmp_path / "o" / "report.md").read_text()

    exposed = redline.scan(_target(), DATA, context={"internet_exposed": True})
    assert "anyone on the internet" in exposed.findings[0].rationale


def test_stated_outputs_wrap_the_target_the_attacks_query(tmp_path, probe):
    redline.scan(_target(), DATA)
    raw = probe()
    assert raw["outputs"] == "probabilities"
    assert any(len(f"{v}") > 6 for row in raw["answers"] for v in row)  # full precision

    redline.scan(_target(), DATA, context={"outputs": "rounded_probabilities", "output_decimals": 1})
    rounded = probe()
    assert all(abs(v * 10 - round(v * 10)) < 1e-9 for row in rounded["answers"] for v in row)

    report = redline.scan(_target(), DATA, context={"serving": {"returns": "labels"}})
    labels = probe()
    assert labels["outputs"] == "labels" and all(v in (0, 1) for v in labels["answers"])
    assert "returns only labels" in report.findings[0].rationale
    # The remediation no longer suggests hiding probabilities that are already hidden.
    assert "full probabilities" not in report.findings[0].remediation


def test_rate_limit_gives_the_attack_time(probe):
    report = redline.scan(_target(), DATA, context={"serving": {"rate_limit": "2/minute"}})
    finding = report.findings[0]
    assert finding.metrics["hours_at_rate_limit"] == pytest.approx(4 / 2 * 60 / 3600, abs=1e-3)
