"""Properties that must hold for any valid system description, not just the examples."""
from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redline.threatmodel import build_threat_model
from redline.threatmodel._files import load_schema, schema_errors
from redline.triage import DeploymentContext

_SKIP = {"schema", "name", "description", "owner", "scan"}


def _value(spec):
    if "enum" in spec:
        return st.sampled_from(spec["enum"])
    if spec.get("type") == "boolean":
        return st.booleans()
    if spec.get("type") == "array" and "enum" in spec.get("items", {}):
        return st.lists(st.sampled_from(spec["items"]["enum"]), min_size=1, max_size=3, unique=True)
    return None


def _section(spec):
    fields = {key: _value(sub) for key, sub in spec.get("properties", {}).items()}
    fields = {key: strategy for key, strategy in fields.items() if strategy is not None}
    return st.fixed_dictionaries({}, optional=fields)


def _clean(document):
    training = document.get("training", {})
    if "none" in training.get("sources", []):
        training["sources"] = ["none"]
    if document.get("agent", {}).get("reinforcement_learning") is False:
        document["agent"] = {"reinforcement_learning": False}
    return document


SECTIONS = {name: spec for name, spec in load_schema("system")["properties"].items() if name not in _SKIP}
descriptions = st.fixed_dictionaries({"name": st.just("generated")}, optional={
    name: _section(spec) for name, spec in SECTIONS.items()}).map(_clean)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=descriptions)
def test_any_valid_description_gives_a_complete_explained_threat_model(document, fixed_registry):
    assert schema_errors(document, "system") == []
    model = build_threat_model(document)
    assert model.system.context == DeploymentContext.from_dict(document)
    for assessment in model.modes:
        assert assessment.reasons
        # Every verdict is explained by a rule, never by the catch-all sentence.
        assert "none of the conditions" not in assessment.why
        assert assessment.severity in assessment.mode.bug_bar or not assessment.applicable
    assert schema_errors(model.to_dict(), "threat-model") == []
    diagram = model.diagram()
    placed = {code for item in [*diagram.nodes, *diagram.edges] for code in item.codes}
    assert placed == {a.code for a in model.applicable}
    ET.fromstring(diagram.svg())
