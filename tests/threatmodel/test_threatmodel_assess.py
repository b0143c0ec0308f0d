"""The threat model itself: the facts that matter in each example, and agreement with scans."""

from __future__ import annotations

import copy

import pytest

import redline
from redline.catalog import load_modes
from redline.findings import Finding, Status
from redline.severity import Severity
from redline.threatmodel import build_threat_model, load_system, rate_mode
from redline.threatmodel.rules import (
    ThreatRulesError,
    load_threat_rules,
    parse_threat_rules,
)
from redline.triage import apply, load_context


@pytest.fixture
def model_of(examples, fixed_registry):
    def build(name: str):
        return build_threat_model(examples / f"{name}.system.yaml")

    return build


def test_all_seventeen_modes_are_judged_in_order(model_of):
    model = model_of("image-api")
    assert [a.code for a in model.modes] == [m.code for m in load_modes()]
    for a in model.modes:
        assert a.reasons and all(r.text for r in a.reasons)
        assert (a.severity is Severity.NONE) == (not a.applicable)


def test_feedback_retrained_filter_is_open_to_poisoning(model_of):
    fm02 = model_of("spam-feedback")["FM02"]
    assert fm02.applicable
    cited = {c.fact.name for r in fm02.reasons for c in r.cites}
    assert {"feedback_loop", "training_influence"} <= cited
    assert fm02.severity >= Severity.IMPORTANT
    assert "FM02" in fm02.rationale or "poisoning" in fm02.rationale


def test_label_only_api_rates_confidence_based_inversion_lower(example_doc, fixed_registry):
    scores = example_doc("image-api")
    labels = copy.deepcopy(scores)
    labels["serving"]["returns"] = "labels"
    with_scores, label_only = build_threat_model(scores)["FM03"], build_threat_model(labels)["FM03"]
    assert with_scores.applicable and with_scores.severity is Severity.CRITICAL
    assert label_only.severity < with_scores.severity
    assert not label_only.applicable and "labels only" in label_only.why
    # Coarse answers also lower the query-based confidentiality threats that stay applicable.
    assert build_threat_model(labels)["FM05"].severity <= build_threat_model(scores)["FM05"].severity
    assert build_threat_model(labels)["FM04"].severity <= build_threat_model(scores)["FM04"].severity


def test_reinforcement_learning_robot(model_of, example_doc, fixed_registry):
    robot = model_of("cleaning-robot")
    for code in ("FM12", "FM13"):
        assert robot[code].applicable, code
        assert any(c.fact.name == "reinforcement_learning" for r in robot[code].reasons for c in r.cites)
    # Its training data is about simulated homes, not people: membership inference must not be
    # rated as if it were sensitive.
    assert not robot["FM04"].applicable and robot["FM04"].severity is Severity.NONE
    assert "no records about people" in robot["FM04"].why
    sensitive = example_doc("cleaning-robot")
    sensitive["data"]["sensitivity"] = "health"
    assert build_threat_model(sensitive)["FM04"].applicable  # the weights ship on every robot
    # And a system that does not learn from reward has neither mode.
    assert not model_of("image-api")["FM12"].applicable and not model_of("image-api")["FM13"].applicable


def test_downloaded_model_has_supply_chain_and_backdoor_threats(model_of):
    zoo = model_of("downloaded-zoo")
    assert zoo["FM09"].applicable and zoo["FM10"].applicable
    assert zoo["FM09"].severity is Severity.CRITICAL
    assert "public zoo" in zoo["FM09"].why and "pytorch" in zoo["FM09"].why
    in_house = model_of("image-api")
    assert not in_house["FM09"].applicable  # trained in house, signed ONNX


def test_car_is_attacked_through_the_physical_world_not_its_pixels(model_of):
    car = model_of("traffic-sign-car")
    assert car["FM07"].applicable and car["FM07"].severity is Severity.CRITICAL
    assert not car["FM01"].applicable and "FM07" in car["FM01"].why
    assert car["FM10"].applicable  # a supplier trains it
    assert car["FM16"].applicable and car["FM16"].severity is Severity.CRITICAL  # safety-critical
    assert not car["FM05"].applicable  # the weights ship in every car; no query interface


def test_medical_model_trained_by_a_provider(model_of):
    medical = model_of("medical-risk")
    assert medical["FM08"].applicable and "health" in medical["FM08"].why
    assert medical["FM03"].applicable and medical["FM04"].applicable
    assert not medical["FM01"].applicable  # attackers supply none of its inputs


def test_not_applicable_modes_still_say_what_they_would_be_rated(model_of):
    robot = model_of("cleaning-robot")
    assert robot["FM05"].severity_if_applicable >= Severity.IMPORTANT
    assert "If it did, the bug bar would rate it" in robot["FM05"].rationale


def test_every_reason_of_every_example_cites_facts_unless_it_always_holds(examples, fixed_registry):
    for path in examples.glob("*.system.yaml"):
        for a in build_threat_model(path).modes:
            for reason in a.reasons:
                always = a.code in ("FM11", "FM14") and "every ML system" in reason.text or "drift away" in reason.text
                assert reason.cites or always, (path.name, a.code, reason.text)


def test_impact_and_knowledge(model_of):
    model = model_of("image-api")
    assert model["FM05"].impact["confidentiality"] and model["FM05"].impact["integrity"] is None
    assert model["FM01"].impact["safety"] is None  # not safety-critical
    car = model_of("traffic-sign-car")
    assert car["FM07"].impact["safety"]  # the car's decisions are safety-critical
    assert any("weights" in k for k in car["FM07"].knowledge)


def test_mitigations_mark_controls_already_in_place(model_of):
    fm01 = model_of("image-api")["FM01"]
    status = {m.kind: m.status for m in fm01.mitigations if m.kind in ("sanitize_inputs", "lock_out_queries")}
    assert status == {"sanitize_inputs": "in_place", "lock_out_queries": "recommended"}
    fm05 = model_of("image-api")["FM05"]
    harden = next(m for m in fm05.mitigations if m.kind == "harden_outputs")
    assert harden.status == "recommended"  # it returns full probabilities
    assert (
        next(m for m in model_of("spam-feedback")["FM05"].mitigations if m.kind == "harden_outputs").status
        == "in_place"
    )


def test_coverage_names_the_exact_command_or_says_none(model_of, examples):
    model = model_of("image-api")
    fm05 = model["FM05"].coverage
    assert fm05.status == "checks"
    assert fm05.scan_command == (
        "redline scan https://tagger.example.com/v1/predict --select FM05 --data npz:data/tagger-sample.npz "
        f"--context {examples / 'image-api.system.yaml'}"
    )
    fm01 = model["FM01"].coverage.checks[0]
    assert "white-box" in fm01.note  # an endpoint has no gradients
    assert model["FM03"].coverage.status == "none" and "no check for FM03" in model["FM03"].coverage.note
    fm09 = model_of("downloaded-zoo")["FM09"].coverage
    assert fm09.status == "tools"
    assert fm09.tools[0].command == "redline scan-files models/ticket-router"
    assert model_of("spam-feedback")["FM05"].coverage.checks[0].note.startswith("needs full probabilities")
    robot = model_of("cleaning-robot")
    assert robot["FM11"].coverage.tools[0].command == "redline deps --requirements requirements.txt"


def test_target_placeholder_when_the_description_names_none(model_of):
    command = model_of("cleaning-robot")["FM01"].coverage.scan_command
    assert command.startswith("redline scan TARGET --select FM01 --context ")


@pytest.mark.parametrize("name", ["image-api", "spam-feedback", "medical-risk", "cleaning-robot"])
@pytest.mark.parametrize(
    "code, metrics",
    [
        ("FM04", {"auc": 0.93, "tpr_at_fpr_0.001": 0.3}),
        ("FM04", {"auc": 0.72}),
        ("FM05", {"fidelity": 0.97, "queries": 5000}),
        ("FM01", {"success_rate": 0.8}),
        ("FM02", {"poison_rate": 0.05, "accuracy_drop": 0.2}),
        ("FM16", {"clean_accuracy": 0.9, "robust_accuracy": 0.6}),
    ],
)
def test_threat_model_and_scan_triage_agree_on_the_same_evidence(examples, name, code, metrics):
    path = examples / f"{name}.system.yaml"
    finding = Finding(
        id="x", mode=code, check=f"{code}.test", title="t", status=Status.VULNERABLE, metrics=dict(metrics)
    )
    apply([finding], load_context(str(path)))  # what the scan pipeline does with --context
    severity, rationale = rate_mode(path, code, metrics)
    assert (severity, rationale) == (finding.severity, finding.rationale)


def test_a_real_scan_with_the_description_as_context_agrees(examples, linear_target, blob_data):
    path = examples / "image-api.system.yaml"
    report = redline.scan(linear_target, blob_data, select="FM05", context=str(path))
    (finding,) = [f for f in report.findings if f.check == "FM05.equation_solving"]
    assert finding.status is Status.VULNERABLE
    severity, _ = rate_mode(path, "FM05", finding.metrics, queries=finding.queries)
    assert severity == finding.severity
    # The open probability API is what pushes it to the top of the bar in both.
    assert severity is Severity.CRITICAL


def test_threat_model_severity_is_the_no_evidence_rating(model_of, examples):
    model = model_of("spam-feedback")
    for a in model.applicable:
        assert a.severity == rate_mode(examples / "spam-feedback.system.yaml", a.code)[0]
        assert a.severity in a.mode.bug_bar
        # Nothing was measured, so the rationale must not claim that a check found anything.
        assert a.rationale.startswith(f"If {a.code} (") and "The check" not in a.rationale


def test_rules_cover_the_catalog():
    rules = load_threat_rules()
    for mode in load_modes():
        always = {i.prop for i in rules[mode.code].impact if i.when is None}
        assert set(mode.compromises) <= always, mode.code


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["modes"].pop("FM17"), "FM01..FM17"),
        (lambda d: d["modes"]["FM01"]["applies"][0].update(when="outputs == 'logits'"), "not one of"),
        (lambda d: d["modes"]["FM01"]["applies"][0].update(when="colour == 'red'"), "unknown name"),
        (lambda d: d["modes"]["FM01"].update(enters=["the moon"]), "unknown location"),
        (lambda d: d["modes"]["FM01"]["mitigations"][0].update(kind="prayer"), "kind is 'prayer'"),
        (lambda d: d["modes"]["FM01"]["impact"][0].update(property="morale"), "property is 'morale'"),
    ],
)
def test_rule_file_mistakes_fail_at_load(mutate, message):
    from importlib import resources

    import yaml

    document = yaml.safe_load(resources.files("redline.threatmodel").joinpath("threats.yaml").read_text())
    mutate(document)
    with pytest.raises(ThreatRulesError, match=message):
        parse_threat_rules(document)


def test_minimal_description_assumes_the_worst_ordinary_deployment(fixed_registry):
    model = build_threat_model({"name": "bare"})
    assert model["FM05"].applicable and model["FM03"].applicable and model["FM02"].applicable
    assert not model["FM12"].applicable
    assert "assumed" in " ".join(c.text for r in model["FM05"].reasons for c in r.cites)
    assert load_system({"name": "bare"}).assumed
