"""``redline threat-model --interview``: ask for the facts of a system, write system.yaml.

The questions follow the schema: the allowed answers of each question are read from
``system.schema.json``, so the interview can never write a value the schema rejects.
Pressing Enter skips a question; the threat model then assumes the conservative value
shown in brackets and marks it as assumed. The end of input (a closed pipe, Ctrl-D)
skips all remaining questions, so answers can be piped in and a test needs no terminal.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import yaml

from ._files import load_schema
from .system import SCHEMA_ID, SystemDescription

__all__ = ["QUESTIONS", "Question", "run_interview", "to_yaml"]

Answers = Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class Question:
    path: str  # dotted key in system.yaml
    prompt: str
    assume: str = ""  # what the threat model assumes when it is skipped
    default: str | None = None  # written when Enter is pressed (only the name has one)
    ask_if: Callable[[Answers], bool] = lambda answers: True


def _queryable(answers: Answers) -> bool:
    return answers.get("serving.exposure", "internet") in ("internet", "internal")


def _outside_model(answers: Answers) -> bool:
    return answers.get("model.source", "public_zoo") != "in_house"


QUESTIONS: tuple[Question, ...] = (
    Question("name", "What is the system called?", default="Unnamed ML system"),
    Question("description", "What does it do, in a sentence?"),
    Question("training.sources", "Where does its training data come from?", "the public can influence it"),
    Question("training.feedback_loop", "Do production inputs or user reports flow back into training?", "no"),
    Question("training.retraining", "How often is it retrained?", "on demand"),
    Question("model.source", "Where does the model come from?", "a public zoo"),
    Question(
        "model.fine_tuned", "Was the delivered model trained further on your own data?", "no", ask_if=_outside_model
    ),
    Question("model.format", "In what file format is the deployed model stored?", "a format that may run code"),
    Question("model.integrity", "How is the model file verified before it is loaded?", "not verified"),
    Question(
        "model.weights_exposed",
        "Can outsiders obtain the weights (published, shipped in an app or device)?",
        "only if the model is a public zoo model used as is",
    ),
    Question("serving.exposure", "Who can reach the model?", "the internet"),
    Question("serving.returns", "What does an answer contain?", "full probabilities", ask_if=_queryable),
    Question(
        "serving.authentication",
        "How are clients authenticated (none, api_key, oauth, mtls, sso...)?",
        "no authentication",
        ask_if=_queryable,
    ),
    Question(
        "serving.rate_limit",
        "What rate limit applies per client (e.g. 100/minute, or none)?",
        "no limit",
        ask_if=_queryable,
    ),
    Question("input.modality", "What kind of input does the model read?", "other"),
    Question("input.attacker_control", "How much of the input can an attacker control?", "raw inputs"),
    Question("input.sanitized", "Are inputs validated, and invalid ones rejected, before the model sees them?", "no"),
    Question(
        "agent.reinforcement_learning",
        "Does it learn from reward and act in an environment (reinforcement learning)?",
        "no",
    ),
    Question(
        "agent.environment",
        "Where do its actions take effect?",
        "the physical world",
        ask_if=lambda a: a.get("agent.reinforcement_learning") is True,
    ),
    Question(
        "agent.human_oversight",
        "Can a person stop it, and must one approve irreversible actions?",
        "no",
        ask_if=lambda a: a.get("agent.reinforcement_learning") is True,
    ),
    Question("data.sensitivity", "How sensitive is the training data?", "personal data"),
    Question("decisions.drives", "What decisions or actions do its outputs drive?"),
    Question("decisions.safety_critical", "Can a wrong decision hurt people or property?", "no"),
    Question("decisions.automated", "Are decisions acted on without a person reviewing them?", "yes"),
    Question("dependencies.requirements", "Path of a pinned requirements file, if any?"),
    Question("dependencies.audited", "Are dependencies checked against vulnerability advisories on every build?", "no"),
    Question("monitoring.drift", "Is the input distribution watched for drift in production?", "no"),
    Question("monitoring.queries", "Are query streams tracked per client and attack-like ones locked out?", "no"),
    Question("testing.realistic_conditions", "Is it tested under the conditions it will operate in?", "no"),
    Question("testing.adversarial", "Is it security-tested with attacks before release?", "no"),
    Question("testing.independent_review", "Do people other than its designers test it?", "no"),
    Question("updates.hot_patch", "Can defences be updated without retraining the model?", "no"),
    Question("updates.rollback", "Can a previous model version be restored quickly?", "no"),
)


class _EndOfInput(Exception):
    pass


def run_interview(stdin: TextIO, out: TextIO, questions: tuple[Question, ...] = QUESTIONS) -> dict[str, Any]:
    """Ask ``questions`` on ``out``, read answers from ``stdin``; return the system description."""
    schema = load_schema("system")
    answers: dict[str, Any] = {}
    out.write(
        "Describe the ML system; press Enter to skip a question (the threat model then assumes the\n"
        "value in brackets and says so). End the input (Ctrl-D) to skip all remaining questions.\n\n"
    )
    for question in questions:
        if not question.ask_if(answers):
            continue
        spec = _schema_at(schema, question.path)
        try:
            value = _ask(question, spec, stdin, out)
        except _EndOfInput:
            out.write("\n(end of input: the remaining questions are skipped)\n")
            if "name" not in answers:
                answers["name"] = next(q.default for q in questions if q.path == "name")
            break
        if value is not None:
            answers[question.path] = value
    document = _nest(answers)
    SystemDescription.from_dict(document)  # cannot fail by construction; checked all the same
    return document


def to_yaml(document: Mapping[str, Any]) -> str:
    header = (
        "# System description written by `redline threat-model --interview`.\n"
        "# Edit freely; run `redline threat-model FILE` to see its threat model.\n"
    )
    return header + yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=88)


def _ask(question: Question, spec: Mapping[str, Any], stdin: TextIO, out: TextIO) -> Any:
    choices, kind = _kind(spec)
    hint = f" ({', '.join(choices)})" if choices else (" (yes/no)" if kind == "bool" else "")
    if question.default is not None:
        bracket = f" [{question.default}]"
    elif question.assume:
        bracket = f" [Enter: assume {question.assume}]"
    else:
        bracket = " [Enter: skip]"
    while True:
        out.write(f"{question.prompt}{hint}{bracket}\n> ")
        out.flush()
        line = stdin.readline()
        if line == "":
            raise _EndOfInput
        text = line.strip()
        if not text:
            return question.default
        value, problem = _parse(text, kind, choices)
        if problem is None:
            return value
        out.write(f"  {problem}\n")


def _kind(spec: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    if "enum" in spec:
        return tuple(spec["enum"]), "choice"
    if spec.get("type") == "array":
        return tuple(spec["items"]["enum"]), "choices"
    if spec.get("type") == "boolean":
        return (), "bool"
    return (), "text"


def _parse(text: str, kind: str, choices: tuple[str, ...]) -> tuple[Any, str | None]:
    if kind == "bool":
        lowered = text.lower()
        if lowered in ("y", "yes", "true"):
            return True, None
        if lowered in ("n", "no", "false"):
            return False, None
        return None, "please answer yes or no"
    if kind == "choice":
        return _choice(text, choices)
    if kind == "choices":
        picked = []
        for part in text.replace(",", " ").split():
            value, problem = _choice(part, choices)
            if problem is not None:
                return None, problem
            if value not in picked:
                picked.append(value)
        if "none" in picked and len(picked) > 1:
            return None, "'none' cannot be combined with other answers"
        return picked, None
    return text, None


def _choice(text: str, choices: tuple[str, ...]) -> tuple[Any, str | None]:
    key = text.strip().lower().replace("-", "_").replace(" ", "_")
    if key in choices:
        return key, None
    starts = [c for c in choices if c.startswith(key)]
    if len(starts) == 1:
        return starts[0], None
    return None, f"please answer one of: {', '.join(choices)}"


def _schema_at(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _nest(answers: Mapping[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {"schema": SCHEMA_ID}
    for path, value in answers.items():
        node = document
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return document
