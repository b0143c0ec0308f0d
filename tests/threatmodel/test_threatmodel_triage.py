"""Incident triage: classification with evidence, bug-bar severity, and playbooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from redline.errors import UsageError
from redline.severity import Severity
from redline.threatmodel import load_incident, triage_incident
from redline.threatmodel._files import schema_errors
from redline.threatmodel.triage import load_playbooks, load_signals
from redline.triage import rate_evidence

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {
    "stolen-model": "FM05",
    "poisoned-feedback": "FM02",
    "tampered-zoo-model": "FM09",
    "membership-leak": "FM04",
    "stop-sign-sticker": "FM07",
    "robot-reward": "FM12",
}


def test_incident_examples_cover_at_least_four_modes():
    files = sorted(EXAMPLES.glob("*incident*.yaml"))
    assert {p.name.split(".")[0] for p in files} == set(EXPECTED)
    assert len(set(EXPECTED.values())) >= 4


@pytest.mark.parametrize("name, code", EXPECTED.items())
def test_every_incident_example_maps_to_its_mode(name, code):
    path = EXAMPLES / f"{name}.incident.yaml"
    assert schema_errors(yaml.safe_load(path.read_text(encoding="utf-8")), "incident") == []
    result = triage_incident(path)
    assert result.primary is not None and result.primary.code == code
    kinds = {e.kind for e in result.primary.evidence}
    assert kinds == {"phrase", "fact"}  # both kinds of evidence are reported


@pytest.mark.parametrize("name, code", EXPECTED.items())
def test_free_text_alone_is_enough_for_the_examples(name, code):
    document = yaml.safe_load((EXAMPLES / f"{name}.incident.yaml").read_text(encoding="utf-8"))
    document.pop("facts", None)
    document.pop("system", None)
    assert triage_incident(document).primary.code == code


def test_evidence_names_the_phrase_field_and_excerpt():
    result = triage_incident(EXAMPLES / "stolen-model.incident.yaml")
    phrase = next(e for e in result.primary.evidence if e.signal == "copy of the model")
    assert phrase.field == "attacker_capability" and "copy of the model" in phrase.excerpt
    fact = next(e for e in result.primary.evidence if e.kind == "fact" and e.signal == "effects = model_copied")
    assert fact.weight == 5
    assert result.primary.score == sum(e.weight for e in result.primary.evidence)


def test_severity_uses_the_affected_systems_facts_and_the_measurements():
    path = EXAMPLES / "stolen-model.incident.yaml"
    result = triage_incident(path)
    incident = load_incident(path)
    expected, why = rate_evidence("FM05", incident.metrics, incident.system.context, queries=2_000_000)
    assert result.primary.severity == expected == Severity.IMPORTANT
    assert "97.0%" in why and "without an account" in why
    assert result.severity == expected


def test_without_a_system_the_context_is_assumed():
    document = yaml.safe_load((EXAMPLES / "membership-leak.incident.yaml").read_text(encoding="utf-8"))
    document.pop("system")
    result = triage_incident(document)
    out = result.to_dict()
    assert out["context_assumed"] is True and out["system"] is None
    # The same measurements on an open probability API (the assumption) rate higher than on
    # the hospital's internal, authenticated service.
    assert result.severity > triage_incident(EXAMPLES / "membership-leak.incident.yaml").severity


def test_negated_phrases_do_not_count():
    plain = {"title": "Incident", "what_happened": "The training data was poisoned by a partner."}
    denied = {"title": "Incident", "what_happened": "No training data was poisoned; we checked every partner."}
    assert triage_incident(plain).primary.code == "FM02"
    assert all(m.code != "FM02" for m in triage_incident(denied).matches)


def test_an_unrecognisable_report_matches_nothing():
    result = triage_incident({"title": "Printer jam", "what_happened": "The office printer is jammed again."})
    assert result.matches == () and result.severity is Severity.NONE
    assert "traditional security bug" in result.rationale


def test_suspected_modes_count_but_do_not_decide():
    base = {"title": "Odd answers", "what_happened": "A researcher showed us crafted inputs that evade the filter."}
    assert triage_incident(base).primary.code == "FM01"
    assert "FM15" not in dict(triage_incident(base).near_misses)
    suspected = triage_incident(dict(base, facts={"suspected_modes": ["fm15"]}))
    assert suspected.primary.code == "FM01"
    assert dict(suspected.near_misses)["FM15"] == load_signals().suspected_weight


def test_triage_is_deterministic():
    path = EXAMPLES / "tampered-zoo-model.incident.yaml"
    assert json.dumps(triage_incident(path).to_dict()) == json.dumps(triage_incident(path).to_dict())


@pytest.mark.parametrize(
    "name, words",
    [
        ("stolen-model", ["API keys", "rate limits"]),
        ("poisoned-feedback", ["clean, verified snapshot", "Stop automatic retraining"]),
        ("tampered-zoo-model", ["Pull the affected model", "redline verify models/ticket-router --key PUB"]),
    ],
)
def test_playbooks_are_specific_to_the_mode(name, words):
    result = triage_incident(EXAMPLES / f"{name}.incident.yaml")
    steps = " ".join(step for phase in result.playbook.values() for step, _ in phase)
    for word in words:
        assert word in steps
    assert set(result.playbook) == {"contain", "eradicate", "recover", "lessons"}
    assert all(result.playbook[phase] for phase in result.playbook)
    # Evidence is preserved before anything is rotated or retrained.
    contain = [step for step, _ in result.playbook["contain"]]
    assert contain[1].startswith("Preserve the evidence")


def test_playbook_fills_in_the_systems_paths():
    playbook = triage_incident(EXAMPLES / "stolen-model.incident.yaml").playbook
    steps = [step for phase in playbook.values() for step, _ in phase]
    assert any("redline scan https://tagger.example.com/v1/predict --select FM01" in s for s in steps)
    assert not any("{" in s for s in steps)


@pytest.mark.parametrize(
    "document, message",
    [
        ({"title": "x"}, "'what_happened' is required"),
        (
            {"title": "x", "what_happened": "y", "facts": {"vector": "telepathy"}},
            "facts.vector: 'telepathy' is not one of",
        ),
        ({"title": "x", "what_happened": "y", "metrics": {"fidelty": 0.9}}, "unknown metric 'fidelty'"),
        ({"title": "x", "what_happened": "y", "facts": {"suspected_modes": ["FM18"]}}, "suspected_modes"),
        ({"title": "x", "what_happened": "y", "severity": "high"}, "unknown key 'severity'"),
    ],
)
def test_bad_incidents_are_one_line_usage_errors(document, message):
    with pytest.raises(UsageError, match=message) as info:
        triage_incident(document)
    assert "\n" not in str(info.value)


def test_a_missing_system_file_is_reported_relative_to_the_incident(tmp_path):
    path = tmp_path / "case.incident.yaml"
    path.write_text("title: x\nwhat_happened: model stolen\nsystem: nope.system.yaml\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"nope\.system\.yaml does not exist"):
        triage_incident(path)


def test_signal_and_playbook_files_load_and_cover_every_mode():
    signals = load_signals()
    books = load_playbooks()
    for i in range(1, 18):
        code = f"FM{i:02d}"
        assert signals.phrases[code] and code in books
        assert all(books[code][phase] for phase in ("contain", "eradicate", "recover", "lessons"))


def test_a_rating_without_measurements_does_not_claim_a_check_ran():
    unmeasured = triage_incident({"title": "t", "what_happened": "Someone put stickers on the stop sign."})
    assert unmeasured.primary.code == "FM07"
    assert unmeasured.primary.rationale.startswith("Reported as FM07 (physical-domain adversarial example)")
    measured = triage_incident(EXAMPLES / "stop-sign-sticker.incident.yaml")
    assert measured.primary.rationale.startswith("Physically realisable perturbations fooled the model on 70%")
