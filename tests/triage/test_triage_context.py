"""Reading deployment facts: flat keys, system.yaml sections, defaults and bad values."""
from __future__ import annotations

import pytest

from redline.errors import UsageError
from redline.triage.context import FACTS, DeploymentContext, load_context


def test_defaults_never_assume_a_mitigation():
    ctx = DeploymentContext()
    assert ctx.internet_exposed and not ctx.authenticated and not ctx.rate_limited
    assert ctx.outputs == "probabilities" and ctx.data_sensitivity == "personal"
    assert ctx.training_influence == "public" and ctx.model_source == "public_zoo"
    assert not ctx.safety_critical
    assert ctx.assumed == tuple(FACTS)


def test_flat_keys():
    ctx = DeploymentContext.from_dict({
        "internet_exposed": False, "authenticated": True, "outputs": "labels",
        "data_sensitivity": "health", "safety_critical": True, "training_influence": "none",
        "model_source": "in_house", "rate_limited": True,
    })
    assert ctx.to_dict() == {
        "internet_exposed": False, "authenticated": True, "outputs": "labels",
        "data_sensitivity": "health", "safety_critical": True, "training_influence": "none",
        "model_source": "in_house", "rate_limited": True,
    }
    assert ctx.assumed == ()


def test_nested_system_description():
    ctx = DeploymentContext.from_dict({
        "name": "triage-assistant",  # other readers' keys are ignored
        "serving": {"returns": "probabilities", "exposure": "internet", "authentication": "none",
                    "rate_limit": "100/minute", "url": "https://example.invalid"},
        "data": {"sensitivity": "health"},
        "training": {"sources": ["curated", "user_feedback"]},
        "model": {"source": "public_zoo"},
        "decisions": {"safety_critical": True},
    })
    assert ctx.internet_exposed and not ctx.authenticated and ctx.rate_limited
    assert ctx.outputs == "probabilities" and ctx.data_sensitivity == "health"
    assert ctx.training_influence == "users"  # the least trusted source decides
    assert ctx.model_source == "public_zoo" and ctx.safety_critical
    assert set(ctx.assumed) == set()


@pytest.mark.parametrize(
    "serving, expected",
    [
        ({"exposure": "internal"}, {"internet_exposed": False}),
        ({"authentication": "api_key"}, {"authenticated": True}),
        ({"authentication": False}, {"authenticated": False}),
        ({"rate_limit": 0}, {"rate_limited": False}),
        ({"rate_limit": "none"}, {"rate_limited": False}),
        ({"returns": "Rounded-Probabilities"}, {"outputs": "rounded_probabilities"}),
    ],
)
def test_serving_spellings(serving, expected):
    ctx = DeploymentContext.from_dict({"serving": serving})
    assert {k: getattr(ctx, k) for k in expected} == expected
    assert set(ctx.assumed) == set(FACTS) - set(expected)


@pytest.mark.parametrize(
    "sources, influence",
    [([], "none"), (["synthetic"], "internal"), (["vendor", "curated"], "partners"),
     ("web_scrape", "public"), (["user_feedback", "crowdsourced"], "public")],
)
def test_training_sources(sources, influence):
    assert DeploymentContext.from_dict({"training": {"sources": sources}}).training_influence == influence


def test_plain_section_values_belong_to_other_readers():
    ctx = DeploymentContext.from_dict({"model": "zoo:mnist_cnn", "data": "builtin:digits"})
    assert ctx == DeploymentContext()


def test_flat_and_nested_may_agree_but_not_conflict():
    assert DeploymentContext.from_dict({"outputs": "labels", "serving": {"returns": "labels"}}).outputs == "labels"
    with pytest.raises(UsageError, match="gives outputs twice"):
        DeploymentContext.from_dict({"outputs": "labels", "serving": {"returns": "probabilities"}})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"outputs": "banana"}, "outputs is 'banana'; choose from labels, top_k"),
        ({"internet_exposed": "maybe"}, "internet_exposed must be true or false"),
        ({"data_sensitivity": 3}, "data_sensitivity is 3"),
        ({"serving": {"exposure": "moon"}}, "serving.exposure is 'moon'"),
        ({"serving": {"returns": "logits"}}, "serving.returns is 'logits'"),
        ({"serving": ["internet"]}, "'serving' in the deployment context must be a mapping"),
        ({"training": {"sources": ["rumours"]}}, "training.sources is 'rumours'"),
        ({"training": {"sources": 5}}, "must be a list"),
        ({"model": {"source": "stolen"}}, "model.source is 'stolen'"),
        ({"decisions": {"safety_critical": "sometimes"}}, "decisions.safety_critical must be true or false"),
        ({"serving": {"authentication": 7}}, "serving.authentication"),
    ],
)
def test_wrong_values_are_one_line_usage_errors(data, message):
    with pytest.raises(UsageError) as exc:
        DeploymentContext.from_dict(data)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_direct_construction_marks_non_default_facts_as_stated():
    ctx = DeploymentContext(outputs="labels", internet_exposed=True)
    assert "outputs" in ctx.stated and "internet_exposed" in ctx.assumed  # equal to its default


def test_constructor_validates_too():
    with pytest.raises(UsageError, match="outputs is 'logits'"):
        DeploymentContext(outputs="logits")


def test_yes_no_strings_are_booleans():
    ctx = DeploymentContext.from_dict({"authenticated": "yes", "rate_limited": "No"})
    assert ctx.authenticated and not ctx.rate_limited


def test_from_yaml(tmp_path):
    path = tmp_path / "system.yaml"
    path.write_text("serving:\n  returns: labels\n  exposure: internal\ndata:\n  sensitivity: financial\n")
    ctx = DeploymentContext.from_yaml(path)
    assert (ctx.outputs, ctx.internet_exposed, ctx.data_sensitivity) == ("labels", False, "financial")
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert DeploymentContext.from_yaml(empty) == DeploymentContext()


@pytest.mark.parametrize(
    "content, message",
    [(None, "context file .* does not exist"), ("serving: [unclosed\n", "not valid YAML (line"),
     ("- a\n- b\n", "mapping of facts at the top level")],
)
def test_from_yaml_errors(tmp_path, content, message):
    path = tmp_path / "ctx.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message.replace("(", r"\(") if content is not None else message):
        DeploymentContext.from_yaml(path)


def test_load_context_accepts_every_form(tmp_path):
    path = tmp_path / "ctx.yaml"
    path.write_text("outputs: labels\n")
    ctx = DeploymentContext(outputs="labels")
    assert load_context(None) is None
    assert load_context(ctx) is ctx
    assert load_context({"outputs": "labels"}) == ctx
    assert load_context(path) == ctx and load_context(str(path)) == ctx
    with pytest.raises(UsageError):
        load_context(42)
