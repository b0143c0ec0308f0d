"""Rating findings: rules, context modifiers, clamping into the bug bar, rationales."""
from __future__ import annotations

import itertools
from importlib import resources

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from redline.catalog import MODE_CODES, get_mode
from redline.findings import Finding, Status
from redline.severity import Severity
from redline.triage import DeploymentContext, apply, engine, rate, rate_evidence
from redline.triage.context import FACTS
from redline.triage.rules import parse_rules

C, I, M, L, N = Severity.CRITICAL, Severity.IMPORTANT, Severity.MODERATE, Severity.LOW, Severity.NONE

OPEN_HEALTH = {"internet_exposed": True, "authenticated": False, "outputs": "probabilities",
               "data_sensitivity": "health"}
NEUTRAL = {"internet_exposed": True, "authenticated": True, "outputs": "top_k", "data_sensitivity": "personal",
           "rate_limited": False, "safety_critical": False, "training_influence": "partners",
           "model_source": "outsourced"}
STRONG_MIA = {"auc": 0.86, "tpr_at_fpr_0.001": 0.12, "tpr_at_fpr_0.01": 0.3, "advantage": 0.55}


def finding(mode="FM04", status=Status.VULNERABLE, metrics=None, **kw):
    return Finding(id="f1", mode=mode, check=f"{mode}.test", title="test", status=status,
                   metrics=dict(metrics or {}), **kw)


def ctx(**facts):
    return DeploymentContext.from_dict(facts)


# (mode, metrics, context facts, expected severity, phrases the rationale must contain)
CASES = [
    # membership inference: the deployment decides between Moderate and Critical
    ("FM04", STRONG_MIA, OPEN_HEALTH, C, ["12.0% of training members", "AUC 0.86", "health data",
                                          "full probabilities"]),
    ("FM04", {"tpr_at_fpr_0.001": 0.3}, NEUTRAL, I, ["30.0%", "severe leak"]),
    ("FM04", STRONG_MIA, {**OPEN_HEALTH, "outputs": "labels"}, M, ["returns only labels", "health data"]),
    ("FM04", STRONG_MIA, {**OPEN_HEALTH, "outputs": "rounded_probabilities"}, M, ["rounded probabilities"]),
    ("FM04", STRONG_MIA, NEUTRAL, M, ["AUC 0.86"]),
    ("FM04", {"auc": 0.95}, NEUTRAL, I, ["severe leak"]),
    ("FM04", {"auc": 0.58}, {**NEUTRAL, "data_sensitivity": "public"}, M, ["range for membership inference"]),
    # perturbation: floor Important, safety-critical decisions make it Critical
    ("FM01", {"success_rate": 0.92, "clean_accuracy": 0.97, "robust_accuracy": 0.08}, NEUTRAL, I,
     ["92%", "97% clean", "8% under attack"]),
    ("FM01", {"success_rate": 0.92}, {**NEUTRAL, "safety_critical": True}, C, ["safety-critical"]),
    ("FM01", {"success_rate": 0.2}, {**NEUTRAL, "internet_exposed": False}, I,
     ["20%", "inside the organisation", "range for perturbation attack is Important to Critical"]),
    # poisoning: who can touch the training data matters
    ("FM02", {"poison_rate": 0.08, "prediction_shift": 0.75}, NEUTRAL, I, ["8.0%", "0.75 standard deviations"]),
    ("FM02", {"poison_rate": 0.03, "target_success_rate": 0.9}, {**NEUTRAL, "training_influence": "users"}, C,
     ["3.0%", "90%", "outsiders (users)"]),
    ("FM02", {"poison_rate": 0.03, "accuracy_drop": 0.2}, {**NEUTRAL, "training_influence": "none"}, I,
     ["20.0 percentage points", "only insiders", "so it is Important"]),
    # inversion: Critical whatever the evidence
    ("FM03", {"attack_accuracy": 0.68, "baseline_accuracy": 0.65}, {**NEUTRAL, "outputs": "labels"}, C,
     ["3.0 percentage points", "range for model inversion is Critical"]),
    # stealing
    ("FM05", {"max_abs_param_error": 2e-7, "fidelity": 1.0},
     {**NEUTRAL, "authenticated": False, "outputs": "probabilities"}, C,
     ["2e-07", "full probabilities"]),
    ("FM05", {"fidelity": 0.97}, {**NEUTRAL, "rate_limited": True, "outputs": "labels"}, I,
     ["97.0%", "rate-limited", "range for model stealing"]),
    # fixed-Critical rows
    ("FM07", {"success_rate": 0.6}, NEUTRAL, C, ["60%"]),
    ("FM08", {}, NEUTRAL, C, ["read private training data"]),
    ("FM09", {}, {**NEUTRAL, "model_source": "in_house"}, C, ["tampered"]),
    # backdoor: by analogy with the supply chain
    ("FM10", {"anomaly_index": 3.6, "flagged_classes": [7]}, {**NEUTRAL, "model_source": "public_zoo"}, C,
     ["class(es) 7", "3.6", "public zoo"]),
    ("FM10", {"anomaly_index": 2.2, "flagged_classes": [7]}, {**NEUTRAL, "model_source": "in_house"}, I,
     ["2.2", "trained in house", "redline's range for backdoored model"]),
    # dependencies follow the traditional bar
    ("FM11", {"max_cvss": 9.8}, NEUTRAL, C, ["9.8"]),
    ("FM11", {"max_cvss": 5.0}, {**NEUTRAL, "internet_exposed": False}, L, ["5.0", "inside the organisation"]),
    ("FM11", {}, NEUTRAL, M, ["does not give"]),
    # unintended failures: rated by the safety of the decisions
    ("FM16", {"clean_accuracy": 0.95, "accuracy_drop": 0.34, "transformations": 115}, NEUTRAL, I,
     ["95%", "34.0 percentage points", "115 corruptions"]),
    ("FM16", {"clean_accuracy": 0.95, "accuracy_drop": 0.34}, {**NEUTRAL, "safety_critical": True}, C, []),
    ("FM16", {"clean_accuracy": 0.96, "accuracy_drop": 0.15, "transformations": 115, "worst_transformation": "fog/5",
              "worst_accuracy": 0.07}, NEUTRAL, M, ["15.0 percentage points", "left 7%"]),
    ("FM16", {"clean_accuracy": 0.97, "accuracy_drop": 0.03, "relative_mce": 1.3, "mce_reference": "zoo:x",
              "transformations": 10}, NEUTRAL, M, ["relative mCE 130%"]),
    ("FM16", {"clean_accuracy": 0.97, "accuracy_drop": 0.08, "worst_transformation": "translate/5",
              "worst_accuracy": 0.13}, NEUTRAL, L, ["left 13%", "8.0 percentage points"]),
    ("FM14", {"accuracy_drop": 0.07}, NEUTRAL, M, ["7.0 percentage points"]),
    ("FM15", {"success_rate": 0.1}, NEUTRAL, L, ["10%"]),
    ("FM17", {}, {**NEUTRAL, "safety_critical": True}, I, ["safety-critical", "Low to Important, so it is Important"]),
    ("FM17", {"conditions_total": 12, "conditions_covered": 3, "accuracy": 0.99}, NEUTRAL, M,
     ["Only 3 of 12 conditions", "accuracy measured (99%)"]),
    ("FM17", {"conditions_total": 7, "conditions_covered": 5}, NEUTRAL, L, ["2 of 7 conditions untested"]),
]


@pytest.mark.parametrize("mode, metrics, facts, expected, phrases", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_table(mode, metrics, facts, expected, phrases):
    severity, rationale = rate(finding(mode, metrics=metrics), ctx(**facts))
    assert severity is expected, rationale
    for phrase in phrases:
        assert phrase in rationale, (phrase, rationale)
    assert rationale.endswith(".") and "n/a" not in rationale and "{" not in rationale


def test_modifier_steps_add_up_before_clamping(monkeypatch):
    data = yaml.safe_load(resources.files("redline.triage").joinpath("rules.yaml").read_text(encoding="utf-8"))
    # Two steps up, then one down, from Important: the sum (+1) gives Critical; clamping after
    # each step would have given Important.
    data["modes"]["FM04"]["modifiers"] = ["special_data", "untrusted_training", "coarse_outputs",
                                          "public_data", "internal_only", "open_confidence_api"]
    monkeypatch.setattr(engine, "load_rules", lambda: parse_rules(data))
    facts = ctx(data_sensitivity="health", training_influence="public", outputs="labels")
    severity, rationale = rate_evidence("FM04", {"auc": 0.95}, facts)
    assert severity is C and "Raised to Critical (up because" in rationale


def test_labels_only_is_rated_lower_than_probabilities():
    high, _ = rate(finding(metrics=STRONG_MIA), ctx(**OPEN_HEALTH))
    low, _ = rate(finding(metrics=STRONG_MIA), ctx(**{**OPEN_HEALTH, "outputs": "labels"}))
    assert high is C and low < high


@pytest.mark.parametrize(
    "status, reason, summary, phrase",
    [
        (Status.NOT_VULNERABLE, "", "AUC 0.51, no better than chance", "did not find the weakness: AUC 0.51"),
        (Status.NOT_VULNERABLE, "", "", "did not find the weakness."),
        (Status.NOT_APPLICABLE, "the target returns labels only", "",
         "did not run because the target returns labels only"),
        (Status.ERROR, "TargetError: connection refused\ntraceback...", "",
         "failed before reaching a verdict (TargetError: connection refused)"),
    ],
)
def test_non_vulnerable_findings_have_no_severity(status, reason, summary, phrase):
    severity, rationale = rate(finding(status=status, metrics=STRONG_MIA, reason=reason, summary=summary),
                               ctx(**OPEN_HEALTH))
    assert severity is N
    assert rationale.startswith("No severity: FM04.test") and phrase in rationale


def test_status_may_be_given_as_text():
    assert rate(finding(status="not_vulnerable"))[0] is N


def test_no_context_uses_conservative_defaults_and_says_so():
    severity, rationale = rate(finding(metrics=STRONG_MIA), None)
    assert severity is I  # open API with probabilities assumed; no special-category data assumed
    assert "(assumed)" in rationale and "full probabilities" in rationale
    stated, stated_rationale = rate(finding(metrics=STRONG_MIA), DeploymentContext(stated=frozenset(FACTS)))
    assert stated is severity and "(assumed)" not in stated_rationale


def test_missing_metrics_fall_back_to_the_default_rule():
    severity, rationale = rate(finding("FM05", metrics={}), ctx(**NEUTRAL))
    assert severity is I and rationale.startswith("The extraction attack built a partial copy of the model")
    assert "agrees with it" not in rationale  # the optional part needs fidelity
    garbage = {"fidelity": "high", "queries": float("nan"), "max_abs_param_error": None}
    assert rate(finding("FM05", metrics=garbage), ctx(**NEUTRAL))[0] is I


def test_finding_fields_feed_conditions():
    f = finding("FM05", metrics={"fidelity": 0.99}, queries=800)
    severity, rationale = rate(f, ctx(**NEUTRAL))
    assert severity is I and "from only 800 queries" in rationale
    f.metrics["queries"] = 50_000  # a metric of the same name wins over the finding field
    assert "from only" not in rate(f, ctx(**NEUTRAL))[1]


def test_apply_fills_findings_in_place():
    findings = [finding(metrics=STRONG_MIA), finding(status=Status.NOT_VULNERABLE)]
    returned = apply(findings, ctx(**OPEN_HEALTH))
    assert returned == findings and returned[0] is findings[0]
    assert findings[0].severity is C and "AUC 0.86" in findings[0].rationale
    assert findings[1].severity is N and findings[1].rationale


def test_rate_evidence_serves_incidents_and_threat_models():
    severity, rationale = rate_evidence("fm04", None, ctx(**OPEN_HEALTH))
    assert severity is I  # the default rule (Low), raised twice by the context
    assert rationale.startswith("The membership attack did better than chance, rated Low")
    assert "health data" in rationale
    assert rate_evidence("FM04", STRONG_MIA, ctx(**OPEN_HEALTH))[0] is C


@pytest.mark.parametrize("code", MODE_CODES)
def test_default_rules_read_well_without_metrics(code):
    severity, rationale = rate_evidence(code)
    assert severity in get_mode(code).bug_bar
    assert "n/a" not in rationale and "rated" in rationale


@pytest.mark.parametrize("code", MODE_CODES)
def test_every_mode_rates_within_its_range_in_every_context(code):
    bar = get_mode(code).bug_bar
    choices = [
        (True, False), (True, False), ("labels", "probabilities"), ("public", "health"),
        (True, False), ("none", "public"), ("in_house", "mlaas"),
    ]
    names = ["internet_exposed", "authenticated", "outputs", "data_sensitivity", "safety_critical",
             "training_influence", "model_source"]
    for values in itertools.product(*choices):
        severity, rationale = rate_evidence(code, {}, ctx(**dict(zip(names, values))))
        assert severity in bar and rationale


metric_values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-10**6, 10**6), st.text(max_size=3), st.lists(st.integers(0, 9), max_size=3))


@settings(max_examples=150, deadline=None)
@given(code=st.sampled_from(MODE_CODES),
       metrics=st.dictionaries(st.sampled_from(["success_rate", "auc", "tpr_at_fpr_0.001", "fidelity", "queries",
                                                "attack_accuracy", "baseline_accuracy", "poison_rate",
                                                "accuracy_drop", "anomaly_index", "max_cvss", "clean_accuracy",
                                                "robust_accuracy", "prediction_shift", "flagged_classes",
                                                "precision", "recall", "target_success_rate",
                                                "max_abs_param_error", "unknown_metric"]),
                               metric_values),
       facts=st.fixed_dictionaries({name: st.sampled_from(allowed) if isinstance(allowed, tuple) else st.booleans()
                                    for name, allowed in FACTS.items()}))
def test_any_evidence_any_context_stays_in_range(code, metrics, facts):
    severity, rationale = rate(finding(code, metrics=metrics), DeploymentContext(**facts))
    assert severity in get_mode(code).bug_bar
    # A rule only fires when the numbers its sentence needs were measured.
    assert rationale.endswith(".") and "{" not in rationale and "n/a" not in rationale
