"""The condition language: parsing, type checks, three-valued evaluation, templates."""
from __future__ import annotations

import pytest

from redline.triage.expr import ExprError, compile_condition, compile_template

TYPES = {
    "auc": "number", "tpr_at_fpr_0.001": "number", "queries": "number", "flagged_classes": "list",
    "attack_accuracy": "number", "baseline_accuracy": "number",
    "internet_exposed": "bool", "outputs": ("labels", "probabilities"),
}


def holds(text, **env):
    return compile_condition(text, TYPES).holds(env)


def value(text, **env):
    return compile_condition(text, TYPES).evaluate(env)


@pytest.mark.parametrize(
    "text, env, expected",
    [
        ("auc >= 0.7", {"auc": 0.7}, True),
        ("auc > 0.7", {"auc": 0.7}, False),
        ("tpr_at_fpr_0.001 >= 0.05 or auc >= 0.7", {"tpr_at_fpr_0.001": 0.06, "auc": 0.5}, True),
        ("attack_accuracy - baseline_accuracy >= 0.1", {"attack_accuracy": 0.8, "baseline_accuracy": 0.65}, True),
        ("(attack_accuracy - baseline_accuracy) * 100 < 10", {"attack_accuracy": 0.8, "baseline_accuracy": 0.75}, True),
        ("queries <= 10000 and not internet_exposed", {"queries": 5000, "internet_exposed": False}, True),
        ("outputs in ['labels']", {"outputs": "labels"}, True),
        ("outputs != 'labels'", {"outputs": "labels"}, False),
        ("count(flagged_classes) >= 2", {"flagged_classes": [1, 4]}, True),
        ("4 in flagged_classes", {"flagged_classes": [1, 4]}, True),
        ("abs(-auc) == 0.5", {"auc": 0.5}, True),
        ("internet_exposed == true", {"internet_exposed": True}, True),
        ("auc >= 1e-1", {"auc": 0.2}, True),
        ("queries / 0 > 1", {"queries": 5}, False),  # division by zero is unknown, never true
    ],
)
def test_conditions(text, env, expected):
    assert holds(text, **env) is expected


def test_missing_metrics_are_unknown_and_never_match():
    assert value("auc >= 0.7") is None
    assert value("not (auc >= 0.7)") is None
    assert value("auc >= 0.7 and queries < 1", queries=5) is False  # one false decides an "and"
    assert value("auc >= 0.7 or queries < 10", queries=5) is True  # one true decides an "or"
    assert value("auc >= 0.7 or queries < 1", queries=5) is None
    assert holds("count(flagged_classes) >= 0") is False


def test_names_lists_what_is_read():
    expr = compile_condition("auc >= 0.7 and outputs in ['labels'] or count(flagged_classes) > 0", TYPES)
    assert expr.names == {"auc", "outputs", "flagged_classes"}


@pytest.mark.parametrize(
    "text, message",
    [
        ("auc => 0.7", "unexpected '=> 0.7'"),
        ("auc = 0.7", "unexpected '= 0.7'"),
        ("au >= 0.7", "unknown name 'au'"),
        ("__import__('os')", "unknown"),
        ("open('x')", "unknown function 'open'"),
        ("auc", "is a value, not a condition"),
        ("auc >= 0.7 and", "ends too early"),
        ("auc >= 0.7)", "unexpected ')'"),
        ("outputs == 'banana'", "'banana' is not one of labels, probabilities"),
        ("outputs in ['labels', 'logits']", "'logits' is not one of"),
        ("outputs >= 1", "'>=' compares numbers"),
        ("auc and internet_exposed", "joins conditions, not values"),
        ("not auc", "'not' needs a bool operand"),
        ("count(auc) > 1", "count() takes a list"),
        ("auc in [1, 'a']", "only numbers or only strings"),
        ("auc == 'high'", "cannot compare a number with a str"),
        ("outputs in outputs", "'in' needs a list"),
        ("", "empty expression"),
        (0.5, "must be text"),
    ],
)
def test_bad_conditions_fail_at_compile_time(text, message):
    with pytest.raises(ExprError) as exc:
        compile_condition(text, TYPES)
    assert message in str(exc.value)


def test_templates_format_numbers_and_facts():
    template = compile_template("AUC {auc:.2f}, {queries:,.0f} queries, outputs {outputs}, "
                                "gap {(attack_accuracy - baseline_accuracy) * 100:.1f} points, "
                                "classes {flagged_classes}", TYPES)
    text = template.render({"auc": 0.8123, "queries": 12345, "outputs": "labels", "attack_accuracy": 0.9,
                            "baseline_accuracy": 0.5, "flagged_classes": [3, 7]})
    assert text == "AUC 0.81, 12,345 queries, outputs labels, gap 40.0 points, classes 3, 7"
    assert template.names == {"auc", "queries", "outputs", "attack_accuracy", "baseline_accuracy", "flagged_classes"}


def test_template_optional_parts_drop_when_a_value_is_missing():
    template = compile_template("AUC {auc:.2f}[[ and {tpr_at_fpr_0.001:.1%} caught]] overall", TYPES)
    assert template.render({"auc": 0.8, "tpr_at_fpr_0.001": 0.125}) == "AUC 0.80 and 12.5% caught overall"
    assert template.render({"auc": 0.8}) == "AUC 0.80 overall"
    assert template.render({}) == "AUC n/a overall"


def test_underscored_values_read_as_words():
    assert compile_template("returns {outputs}", {"outputs": ("rounded_probabilities",)}).render(
        {"outputs": "rounded_probabilities"}) == "returns rounded probabilities"


@pytest.mark.parametrize(
    "text, message",
    [("AUC {auc:.2x}", "bad format"), ("{outputs:.1f}", "bad format"), ("{auc", "stray brace"),
     ("a } b", "stray brace"), ("[[ {auc}", "unbalanced"), ("{nope}", "unknown name"), ("  ", "non-empty")],
)
def test_bad_templates(text, message):
    with pytest.raises(ExprError, match=message):
        compile_template(text, TYPES)
