"""The rules file: every mode is covered, and defects fail when the file loads."""
from __future__ import annotations

import copy
from importlib import resources

import pytest
import yaml

from redline.catalog import MODE_CODES
from redline.severity import Severity
from redline.triage.rules import RuleError, load_rules, parse_rules
from redline.triage.vocabulary import is_declared


def raw_rules() -> dict:
    return yaml.safe_load(resources.files("redline.triage").joinpath("rules.yaml").read_text(encoding="utf-8"))


def test_every_mode_has_a_default_and_known_names():
    book = load_rules()
    assert tuple(book.modes) == MODE_CODES
    for code in MODE_CODES:
        rules = book.for_mode(code)
        assert rules.default.when is None and rules.default.severity >= Severity.LOW
        for rule in rules.rules:
            assert rule.when is not None and rule.when.names


def test_metric_families_have_specific_rules():
    book = load_rules()
    used = {name for code in MODE_CODES for rule in book.for_mode(code).rules for name in rule.when.names}
    for metric in ("success_rate", "auc", "tpr_at_fpr_0.001", "fidelity", "queries", "max_abs_param_error",
                   "attack_accuracy", "baseline_accuracy", "poison_rate", "accuracy_drop",
                   "target_success_rate", "prediction_shift", "flagged_classes", "anomaly_index"):
        assert metric in used, metric
    facts_and_fields = {"queries", "evaluation_queries", "internet_exposed", "authenticated", "outputs",
                        "data_sensitivity", "training_influence", "model_source", "safety_critical", "rate_limited"}
    assert all(is_declared(name) for name in used - facts_and_fields)


def _mutated(edit):
    data = copy.deepcopy(raw_rules())
    edit(data)
    return data


def _rule(data, code, index=0):
    return data["modes"][code]["rules"][index]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["modes"].__setitem__("FM18", d["modes"]["FM01"]), "unknown mode"),
        (lambda d: d["modes"].pop("FM13"), "no entry for FM13"),
        (lambda d: d["modes"]["FM13"].pop("default"), "FM13 is missing default"),
        (lambda d: _rule(d, "FM04").__setitem__("when", "acu >= 0.7"), "unknown name 'acu'"),
        (lambda d: _rule(d, "FM04").__setitem__("when", "auc => 0.7"), "unexpected '=> 0.7'"),
        (lambda d: _rule(d, "FM04").__setitem__("when", "auc ~ 0.7"), "unexpected"),
        (lambda d: _rule(d, "FM04").__setitem__("severity", "Severe"), "unknown severity"),
        (lambda d: _rule(d, "FM04").__setitem__("severity", "None"), "must be Low"),
        (lambda d: _rule(d, "FM04").__setitem__("evidence", "AUC {auc:.2q}"), "bad format"),
        (lambda d: _rule(d, "FM04").__setitem__("colour", "red"), "unknown key"),
        (lambda d: d["modes"]["FM04"]["modifiers"].append("moon_phase"), "unknown modifier 'moon_phase'"),
        (lambda d: d["modifiers"]["internal_only"].__setitem__("when", "auc >= 0.5"), "only read deployment facts"),
        (lambda d: d["modifiers"]["internal_only"].__setitem__("when", "outputs == 'logits'"),
         "'logits' is not one of"),
        (lambda d: d["modifiers"]["internal_only"].__setitem__("shift", 0), "shift must be"),
        (lambda d: d["modifiers"]["internal_only"].__setitem__("at_most", "Low"), "exactly one of"),
        (lambda d: d["modifiers"].__setitem__("spare", {"when": "safety_critical", "shift": 1, "because": "x"}),
         "no mode uses them"),
        (lambda d: d.__setitem__("schema", "other/1"), "schema"),
    ],
)
def test_defects_raise_at_load_time(edit, message):
    with pytest.raises(RuleError) as exc:
        parse_rules(_mutated(edit))
    assert message in str(exc.value)


def test_packaged_rules_compile_identically():
    book = parse_rules(raw_rules())
    assert tuple(book.modes) == tuple(load_rules().modes)


def test_fuzzing_findings_are_explained_as_fuzzing_not_as_dependencies():
    from redline.severity import Severity
    from redline.triage import rate_evidence

    base = {"crashes": 0, "hangs": 0, "server_errors": 0, "bad_answers": 0, "accepted_invalid": 0}
    severity, why = rate_evidence("FM11", {**base, "hangs": 1, "max_cvss": 7.5})
    assert severity is Severity.IMPORTANT and "hung" in why and "dependency" not in why
    severity, why = rate_evidence("FM11", {**base, "server_errors": 2, "max_cvss": 6.5})
    assert severity is Severity.MODERATE and "server errors" in why
    severity, why = rate_evidence("FM11", {**base, "accepted_invalid": 3, "max_cvss": 3.7})
    assert severity is Severity.LOW and "invalid inputs" in why


def test_reconstruction_findings_are_explained_as_reconstruction_not_attribute_inference():
    from redline.findings import Finding, Status
    from redline.triage.engine import apply

    shared = dict(mode="FM03", status=Status.VULNERABLE, params={})
    rebuilt = Finding(id="r", check="FM03.reconstruction", title="t", **shared,
                      metrics={"reconstruction_eval_accuracy": 0.9, "attack_accuracy": 0.9, "baseline_accuracy": 0.1,
                               "reconstruction_ssim": 0.4})
    inferred = Finding(id="a", check="FM03.attribute_inference", title="t", **shared,
                       metrics={"attack_accuracy": 0.9, "baseline_accuracy": 0.1})
    apply([rebuilt, inferred])
    assert "Model inversion rebuilt" in rebuilt.rationale and "Attribute inference" not in rebuilt.rationale
    assert "Attribute inference" in inferred.rationale and "rebuilt" not in inferred.rationale


def test_reward_gaming_severity_follows_the_gap_above_the_reference():
    from redline.triage import rate_evidence

    base = {"reward": 1.0, "performance": 0.2, "gap": 0.8, "gap_share": 0.8}
    # The raw gap alone (reference=none): most of the reward unearned.
    severity, _ = rate_evidence("FM12", base)
    assert severity is Severity.IMPORTANT
    # The world forces most of that gap on the best play too: only 0.2 of it is the agent's.
    severity, why = rate_evidence("FM12", {**base, "excess_gap": 0.2})
    assert severity is Severity.MODERATE and "performance-optimal" in why
    severity, why = rate_evidence("FM12", {**base, "excess_gap": 0.7})
    assert severity is Severity.IMPORTANT and "0.70" in why


def test_regression_poisoning_evidence_is_in_target_standard_deviations():
    from redline.triage import rate_evidence

    _, why = rate_evidence("FM02", {"prediction_shift": 0.5, "poison_rate": 0.04})
    assert "0.50 standard deviations" in why and "50%" not in why
