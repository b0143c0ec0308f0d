"""The interview: piped answers, skipping, re-asking, and the end of input."""

from __future__ import annotations

import io

import yaml

from redline.threatmodel import SystemDescription, build_threat_model
from redline.threatmodel._files import load_schema, schema_errors
from redline.threatmodel.interview import QUESTIONS, _schema_at, run_interview, to_yaml


def interview(answers: str) -> tuple[dict, str]:
    prompts = io.StringIO()
    document = run_interview(io.StringIO(answers), prompts)
    return document, prompts.getvalue()


def test_piped_answers_give_a_valid_description():
    lines = [
        "Fraud scorer",  # name
        "Scores card payments",  # description
        "internal, partners",  # training.sources
        "no",  # feedback loop
        "scheduled",  # retraining
        "in_house",  # model.source (so no fine-tuning question)
        "onnx",  # format
        "signed",  # integrity
        "no",  # weights exposed
        "internet",  # exposure
        "labels",  # returns
        "api_key",  # authentication
        "100/minute",  # rate limit
        "tabular",  # modality
        "raw",  # attacker control
        "yes",  # sanitised
        "no",  # reinforcement learning (skips the agent questions)
        "financial",  # sensitivity
    ]
    answers = "\n".join(lines) + "\n"
    document, prompts = interview(answers)
    assert schema_errors(document, "system") == []
    assert document["name"] == "Fraud scorer"
    assert document["training"]["sources"] == ["internal", "partners"]
    assert document["serving"] == {
        "exposure": "internet",
        "returns": "labels",
        "authentication": "api_key",
        "rate_limit": "100/minute",
    }
    assert document["data"] == {"sensitivity": "financial"}
    assert "agent" in document and document["agent"] == {"reinforcement_learning": False}
    assert "Where do its actions take effect?" not in prompts
    assert "end of input" in prompts
    model = build_threat_model(document)
    assert model["FM05"].applicable and not model["FM12"].applicable


def test_enter_skips_and_the_threat_model_assumes():
    document, prompts = interview("\n" * len(QUESTIONS))
    assert document == {"schema": "redline.system/1", "name": "Unnamed ML system"}
    assert "[Enter: assume the internet]" in prompts
    assert "serving.exposure" in [
        f.source for f in SystemDescription.from_dict(document).facts.values() if not f.stated
    ]


def test_end_of_input_keeps_defaults_for_the_rest():
    document, prompts = interview("My model\n")
    assert document == {"schema": "redline.system/1", "name": "My model"}
    assert prompts.count("> ") == 2  # asked the name, then the description, then the input ended


def test_empty_input_still_writes_a_valid_file():
    document, _ = interview("")
    assert document["name"] == "Unnamed ML system"
    SystemDescription.from_dict(document)


def test_a_wrong_answer_is_asked_again():
    document, prompts = interview("x\n\nweb, scraped\nscraped\nmaybe\nyes\n")
    assert document["training"]["sources"] == ["scraped"]
    assert document["training"]["feedback_loop"] is True
    assert "please answer one of:" in prompts and "please answer yes or no" in prompts


def test_unique_prefixes_and_spelling_variants_are_accepted():
    lines = ["x", "", "user-feedback", "", "cont", "public"]
    document, _ = interview("\n".join(lines) + "\n")
    assert document["training"]["sources"] == ["user_feedback"]
    assert document["training"]["retraining"] == "continuous"
    assert document["model"]["source"] == "public_zoo"


def test_none_cannot_be_combined():
    document, prompts = interview("x\n\nnone internal\nnone\n")
    assert document["training"]["sources"] == ["none"]
    assert "cannot be combined" in prompts


def test_agent_questions_follow_a_yes_to_reinforcement_learning():
    answers = [
        "robot",
        "",
        "",
        "",
        "",
        "in_house",
        "",
        "",
        "",
        "embedded",
        "sensor",
        "physical",
        "",
        "yes",
        "physical",
        "no",
    ]
    document, prompts = interview("\n".join(answers) + "\n")
    assert document["agent"] == {"reinforcement_learning": True, "environment": "physical", "human_oversight": False}
    assert "What does an answer contain?" not in prompts  # nothing to query on an embedded model
    model = build_threat_model(document)
    assert model["FM12"].applicable and model["FM13"].applicable


def test_written_yaml_round_trips():
    document, _ = interview("Name: with colon\n")
    text = to_yaml(document)
    assert text.startswith("# System description written by")
    assert yaml.safe_load(text) == document


def test_every_question_is_a_key_of_the_schema():
    schema = load_schema("system")
    for question in QUESTIONS:
        assert _schema_at(schema, question.path), question.path
