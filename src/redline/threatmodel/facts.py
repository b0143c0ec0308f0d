"""The facts of a system description that the threat rules read.

A system.yaml is nested and friendly to write; the rules in ``threats.yaml`` want flat,
typed names (``outputs``, ``attacker_control``, ``feedback_loop``). This module maps one
onto the other. The eight facts the bug bar already uses come from
:class:`~redline.triage.DeploymentContext`, read from the very same document, so the threat
model and ``redline scan --context`` can never disagree about them. Every other fact has a
conservative default that is marked as assumed when the description leaves it out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..triage.context import FACTS as CONTEXT_FACTS
from ..triage.context import DeploymentContext

__all__ = ["FACT_TYPES", "Fact", "derive_facts", "fact_environment"]

EXPOSURES = ("internet", "internal", "embedded", "none")
RETRAINING = ("never", "on_demand", "scheduled", "continuous")
FORMATS = ("pickle", "pytorch", "joblib", "keras", "tensorflow", "torchscript", "onnx", "safetensors", "skops", "other")
MODALITIES = ("image", "video", "audio", "text", "tabular", "time_series", "sensor", "multimodal", "other")
CONTROL = ("raw", "physical", "none")
ENVIRONMENTS = ("physical", "digital", "simulation")


@dataclasses.dataclass(frozen=True)
class Fact:
    """One fact: its value, the place in system.yaml it comes from, and whether it was stated."""

    name: str
    value: Any
    source: str
    stated: bool

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "source": self.source, "stated": self.stated}


@dataclasses.dataclass(frozen=True)
class _Direct:
    """A fact read from one key, with the value it takes when the key is absent."""

    name: str
    path: str
    allowed: tuple[str, ...] | type[bool]
    default: Any


# Where each deployment fact of the triage context is read from (for citations).
_CONTEXT_SOURCES = {
    "internet_exposed": "serving.exposure",
    "authenticated": "serving.authentication",
    "outputs": "serving.returns",
    "data_sensitivity": "data.sensitivity",
    "safety_critical": "decisions.safety_critical",
    "training_influence": "training.sources / training.influence",
    "model_source": "model.source",
    "rate_limited": "serving.rate_limit",
}

# Defaults lean towards the riskier reading, as the triage context does, except where the
# risky reading would switch on whole families of threats (reinforcement learning).
_DIRECT: tuple[_Direct, ...] = (
    _Direct("exposure", "serving.exposure", EXPOSURES, "internet"),
    _Direct("retraining", "training.retraining", RETRAINING, "on_demand"),
    _Direct("model_format", "model.format", FORMATS, "other"),
    _Direct("fine_tuned", "model.fine_tuned", bool, False),
    _Direct("modality", "input.modality", MODALITIES, "other"),
    _Direct("attacker_control", "input.attacker_control", CONTROL, "raw"),
    _Direct("input_sanitized", "input.sanitized", bool, False),
    _Direct("reinforcement_learning", "agent.reinforcement_learning", bool, False),
    _Direct("agent_environment", "agent.environment", ENVIRONMENTS, "physical"),
    _Direct("human_oversight", "agent.human_oversight", bool, False),
    _Direct("automated", "decisions.automated", bool, True),
    _Direct("deps_audited", "dependencies.audited", bool, False),
    _Direct("monitors_drift", "monitoring.drift", bool, False),
    _Direct("monitors_queries", "monitoring.queries", bool, False),
    _Direct("monitors_accuracy", "monitoring.accuracy", bool, False),
    _Direct("audit_log", "monitoring.audit_log", bool, False),
    _Direct("tested_held_out", "testing.held_out", bool, False),
    _Direct("tested_realistic", "testing.realistic_conditions", bool, False),
    _Direct("tested_corruptions", "testing.corruptions", bool, False),
    _Direct("tested_adversarial", "testing.adversarial", bool, False),
    _Direct("independent_review", "testing.independent_review", bool, False),
    _Direct("hot_patch", "updates.hot_patch", bool, False),
    _Direct("rollback", "updates.rollback", bool, False),
    _Direct("patch_dependencies", "updates.patch_dependencies", bool, False),
)


@dataclasses.dataclass(frozen=True)
class _Derived:
    """A fact worked out from others; ``path`` is where the user states it directly, if anywhere."""

    name: str
    sources: str
    path: str | None
    compute: Callable[[Mapping[str, Any], Mapping[str, Fact]], Any]
    # Facts the computation reads: the derived fact counts as stated when they all were.
    reads: tuple[str, ...]


def _sources(raw: Mapping[str, Any]) -> list[str]:
    return list(_get(raw, "training.sources") or [])


_DERIVED: tuple[_Derived, ...] = (
    _Derived(
        "queryable",
        "serving.exposure",
        None,
        lambda raw, f: f["exposure"].value in ("internet", "internal"),
        ("exposure",),
    ),
    _Derived(
        "feedback_loop",
        "training.feedback_loop / training.sources",
        "training.feedback_loop",
        lambda raw, f: "user_feedback" in _sources(raw),
        ("_sources",),
    ),
    _Derived(
        "model_verified",
        "model.integrity",
        None,
        lambda raw, f: _get(raw, "model.integrity") in ("signed", "hash_pinned"),
        ("_integrity",),
    ),
    # A zoo model used as downloaded is public by definition; anything else is private unless
    # said. An assumed model source must not make the weights public: that would rule out
    # model stealing on an assumption.
    _Derived(
        "weights_exposed",
        "model.weights_exposed / model.source",
        "model.weights_exposed",
        lambda raw, f: (
            f["model_source"].stated and f["model_source"].value == "public_zoo" and not f["fine_tuned"].value
        ),
        ("model_source", "fine_tuned"),
    ),
    _Derived(
        "untrusted_parsing",
        "dependencies.untrusted_parsing / input.attacker_control",
        "dependencies.untrusted_parsing",
        lambda raw, f: f["attacker_control"].value == "raw",
        ("attacker_control",),
    ),
    _Derived(
        "deps_listed",
        "dependencies.requirements / dependencies.packages",
        None,
        lambda raw, f: bool(_get(raw, "dependencies.requirements") or _get(raw, "dependencies.packages")),
        ("_dependencies",),
    ),
)


def _type(allowed: tuple[str, ...] | type[bool]) -> Any:
    return "bool" if allowed is bool else allowed


# The names (and expression-language types) that rules may use.
FACT_TYPES: dict[str, Any] = {
    **{name: _type(allowed) for name, allowed in CONTEXT_FACTS.items()},
    **{d.name: _type(d.allowed) for d in _DIRECT},
    **{d.name: "bool" for d in _DERIVED},
}


def derive_facts(raw: Mapping[str, Any], context: DeploymentContext) -> dict[str, Fact]:
    """Every fact of FACT_TYPES for a schema-valid description and its deployment context."""
    facts: dict[str, Fact] = {}
    for name in CONTEXT_FACTS:
        facts[name] = Fact(name, getattr(context, name), _CONTEXT_SOURCES[name], name in context.stated)
    for d in _DIRECT:
        value = _get(raw, d.path)
        facts[d.name] = Fact(d.name, d.default if value is None else value, d.path, value is not None)
    stated_markers = {
        "_sources": _get(raw, "training.sources") is not None,
        "_integrity": _get(raw, "model.integrity") is not None,
        "_dependencies": _get(raw, "dependencies") is not None,
    }
    for d in _DERIVED:
        given = _get(raw, d.path) if d.path else None
        if given is not None:
            facts[d.name] = Fact(d.name, given, d.path, True)
            continue
        stated = all(stated_markers[r] if r.startswith("_") else facts[r].stated for r in d.reads)
        facts[d.name] = Fact(d.name, bool(d.compute(raw, facts)), d.sources, stated)
    return facts


def fact_environment(facts: Mapping[str, Fact]) -> dict[str, Any]:
    """Plain ``name -> value`` for evaluating rule conditions and templates."""
    return {name: fact.value for name, fact in facts.items()}


def _get(raw: Mapping[str, Any], path: str) -> Any:
    node: Any = raw
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
