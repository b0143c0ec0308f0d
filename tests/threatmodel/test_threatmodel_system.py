"""System descriptions: the schema, the examples, and agreement with the scan's context loader."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from redline.errors import UsageError
from redline.threatmodel import SystemDescription, load_system
from redline.threatmodel._files import load_schema, schema_errors
from redline.threatmodel.facts import FACT_TYPES
from redline.triage import DeploymentContext, load_context
from redline.triage.context import INFLUENCE, MODEL_SOURCES, OUTPUTS, SENSITIVITY

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SYSTEM_FILES = sorted(EXAMPLES.glob("*.system.yaml"))
EXAMPLE_NAMES = ("image-api", "spam-feedback", "downloaded-zoo", "medical-risk", "cleaning-robot", "traffic-sign-car")


def test_there_are_six_distinct_examples(examples):
    found = sorted(p.name for p in examples.glob("*.system.yaml"))
    assert len(found) >= 6
    assert {f"{n}.system.yaml" for n in EXAMPLE_NAMES} <= set(found)
    assert any("spam" in n or "feedback" in n for n in found)


@pytest.mark.parametrize("path", SYSTEM_FILES, ids=lambda p: p.name)
def test_every_example_validates_against_the_schema(path):
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert schema_errors(document, "system") == []
    description = SystemDescription.from_yaml(path)
    assert description.name == document["name"]


@pytest.mark.parametrize("path", SYSTEM_FILES, ids=lambda p: p.name)
def test_scan_context_loader_accepts_a_full_description_and_agrees(path):
    # `redline scan --context` reads the file with DeploymentContext.from_yaml (via load_context).
    scan_context = load_context(str(path))
    assert scan_context == DeploymentContext.from_yaml(path)
    assert SystemDescription.from_yaml(path).context == scan_context
    assert scan_context.stated == SystemDescription.from_yaml(path).context.stated


def test_scan_pipeline_loads_a_full_description(examples):
    from redline.pipeline.runner import (
        _load_context,  # what `redline scan --context` calls
    )

    context = _load_context(str(examples / "cleaning-robot.system.yaml"))
    assert context.internet_exposed is False and context.safety_critical is True


def test_schema_choices_are_spellings_the_context_understands():
    props = load_schema("system")["properties"]
    assert tuple(props["serving"]["properties"]["returns"]["enum"]) == OUTPUTS
    assert tuple(props["data"]["properties"]["sensitivity"]["enum"]) == SENSITIVITY
    assert tuple(props["training"]["properties"]["influence"]["enum"]) == INFLUENCE
    assert tuple(props["model"]["properties"]["source"]["enum"]) == MODEL_SOURCES
    for exposure in props["serving"]["properties"]["exposure"]["enum"]:
        DeploymentContext.from_dict({"serving": {"exposure": exposure}})
    for source in props["training"]["properties"]["sources"]["items"]["enum"]:
        DeploymentContext.from_dict({"training": {"sources": [source]}})


def test_embedded_and_batch_systems_are_not_internet_exposed():
    for exposure in ("embedded", "none"):
        assert DeploymentContext.from_dict({"serving": {"exposure": exposure}}).internet_exposed is False


@pytest.mark.parametrize(
    "training, expected",
    [
        ({"sources": ["internal"], "influence": "users"}, "users"),  # stated influence is wider
        ({"sources": ["scraped"], "influence": "internal"}, "public"),  # sources cannot be talked down
        ({"sources": ["curated"], "influence": "internal"}, "internal"),
    ],
)
def test_influence_and_sources_together_take_the_less_trusted(training, expected):
    assert DeploymentContext.from_dict({"training": training}).training_influence == expected


def test_unstated_facts_are_marked_assumed():
    description = load_system({"name": "bare"})
    assert "outputs" in description.assumed and "modality" in description.assumed
    stated = load_system({"name": "x", "serving": {"returns": "labels"}, "input": {"modality": "text"}})
    assert stated.facts["outputs"].stated and stated.facts["modality"].stated
    assert stated.facts["outputs"].value == "labels"


def test_weights_are_public_for_a_stated_zoo_model_used_as_is_only():
    as_is = load_system({"name": "x", "model": {"source": "public_zoo"}})
    tuned = load_system({"name": "x", "model": {"source": "public_zoo", "fine_tuned": True}})
    unknown = load_system({"name": "x"})  # the context assumes a zoo model; that must not hide stealing
    assert as_is.facts["weights_exposed"].value is True
    assert tuned.facts["weights_exposed"].value is False
    assert unknown.facts["weights_exposed"].value is False and not unknown.facts["weights_exposed"].stated


def test_every_fact_has_a_type_the_rules_can_use():
    description = load_system({"name": "x"})
    assert set(description.facts) == set(FACT_TYPES)
    for name, fact in description.facts.items():
        kind = FACT_TYPES[name]
        assert isinstance(fact.value, bool) if kind == "bool" else fact.value in kind


@pytest.mark.parametrize(
    "document, message",
    [
        ({"name": "x", "serving": {"retruns": "labels"}}, "serving: unknown key 'retruns'"),
        ({"name": "x", "serving": {"returns": "logits"}}, "serving.returns: 'logits' is not one of"),
        ({"name": "x", "training": {"sources": ["none", "internal"]}}, "'none' cannot be listed"),
        (
            {"name": "x", "agent": {"reinforcement_learning": False, "environment": "physical"}},
            "reinforcement_learning is false",
        ),
        ({"serving": {}}, "'name' is required"),
        ({"name": "x", "data": "builtin:digits"}, "data: 'builtin:digits' is not of type 'object'"),
    ],
)
def test_bad_descriptions_are_one_line_usage_errors(document, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")) as info:
        load_system(document)
    assert "\n" not in str(info.value)


def test_x_keys_are_free_for_notes():
    load_system({"name": "x", "x-ticket": "ML-12", "serving": {"x-note": "behind the gateway"}})


@pytest.mark.parametrize(
    "content, message",
    [("name: [unclosed", "not valid YAML (line 1"), ("- a\n- b\n", "must hold a mapping"), ("", "it is empty")],
)
def test_file_errors(tmp_path, content, message):
    path = tmp_path / "system.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        SystemDescription.from_yaml(path)


def test_missing_file(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        SystemDescription.from_yaml(tmp_path / "nope.yaml")
