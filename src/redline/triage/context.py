"""The deployment facts that move a finding's severity, and how to read them from YAML.

The same weakness matters more on an open internet API that returns probabilities and was
trained on health records than on an internal, authenticated service trained on public
data. :class:`DeploymentContext` holds the handful of facts the triage rules look at.

Defaults describe the riskiest *ordinary* deployment, so that leaving a fact out never
lowers a severity: the model is reachable from the internet, without authentication or
rate limit, returns full probabilities, was trained on personal data that outsiders could
influence, and is built on a model from a public zoo. Exceptional stakes are *not*
assumed: health or financial data and safety-critical decisions raise severities only when
the context says so, because assuming them everywhere would rate every finding Critical
and the bar would stop telling findings apart. Rationales mark facts that were assumed.

Two input shapes are accepted and may be mixed:

- flat keys, exactly the field names (``outputs: labels``, ``internet_exposed: false``);
- the nested sections of a ``system.yaml`` description (``serving.returns``,
  ``serving.exposure``, ``serving.authentication``, ``serving.rate_limit``,
  ``data.sensitivity``, ``training.sources`` / ``training.influence`` (when both are
  given the less trusted wins), ``model.source``, ``decisions.safety_critical``).
  ``redline.threatmodel`` ships the JSON Schema of the full description.

Unknown keys are ignored so that richer system descriptions load unchanged; a known key
with a wrong value is a one-line :class:`~redline.errors.UsageError`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["FACTS", "DeploymentContext", "load_context", "source_influence"]

OUTPUTS = ("labels", "top_k", "probabilities", "rounded_probabilities")
SENSITIVITY = ("public", "internal", "personal", "health", "financial")
# Who can influence the training data, from most to least trusted.
INFLUENCE = ("none", "internal", "partners", "users", "public")
MODEL_SOURCES = ("in_house", "public_zoo", "outsourced", "mlaas")

# Every fact: its allowed string values, or ``bool``. The rule validator reads this too.
FACTS: dict[str, tuple[str, ...] | type[bool]] = {
    "internet_exposed": bool,
    "authenticated": bool,
    "outputs": OUTPUTS,
    "data_sensitivity": SENSITIVITY,
    "safety_critical": bool,
    "training_influence": INFLUENCE,
    "model_source": MODEL_SOURCES,
    "rate_limited": bool,
}

# system.yaml spellings that map onto the facts above.
_EXPOSURE = {
    "internet": True, "public": True, "external": True,
    "internal": False, "private": False, "intranet": False, "vpn": False, "local": False, "offline": False,
    # No query interface at all: the model runs inside a device or a batch job.
    "embedded": False, "none": False,
}
_TRAINING_SOURCES = {
    "none": "none", "frozen": "none",
    "internal": "internal", "in_house": "internal", "curated": "internal", "synthetic": "internal",
    "simulation": "internal",
    "proprietary": "internal", "employees": "internal",
    "partners": "partners", "partner_data": "partners", "vendor": "partners", "third_party": "partners",
    "purchased": "partners", "customers": "partners",
    "users": "users", "user_feedback": "users", "user_data": "users", "user_uploads": "users", "feedback": "users",
    "public": "public", "web": "public", "web_scrape": "public", "scraped": "public", "internet": "public",
    "public_dataset": "public", "crowdsourced": "public",
}
_MODEL_SOURCES = {
    **{s: s for s in MODEL_SOURCES},
    "internal": "in_house", "zoo": "public_zoo", "hub": "public_zoo", "public": "public_zoo",
    "pretrained": "public_zoo", "vendor": "outsourced", "contractor": "outsourced",
    "cloud": "mlaas", "api": "mlaas",
}
_NO = ("none", "no", "false", "off", "disabled", "0")


@dataclasses.dataclass(frozen=True)
class DeploymentContext:
    """Where and how the model is deployed, as far as severity is concerned."""

    internet_exposed: bool = True
    authenticated: bool = False
    outputs: str = "probabilities"
    data_sensitivity: str = "personal"
    safety_critical: bool = False
    training_influence: str = "public"
    model_source: str = "public_zoo"
    rate_limited: bool = False
    # Names of the facts that were stated rather than defaulted (for "assumed" notes).
    # from_dict fills it with every fact it read; direct construction can only tell
    # that facts differing from their defaults were given.
    stated: frozenset[str] = dataclasses.field(default=frozenset(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, allowed in FACTS.items():
            _check_value(name, getattr(self, name), allowed)
        unknown = set(self.stated) - set(FACTS)
        if unknown:
            raise UsageError(f"unknown deployment fact(s): {', '.join(sorted(unknown))}")
        differing = {f.name for f in dataclasses.fields(self) if f.name in FACTS and getattr(self, f.name) != f.default}
        object.__setattr__(self, "stated", frozenset(self.stated) | differing)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> DeploymentContext:
        """Read flat facts and/or nested system.yaml sections (see the module docstring)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise UsageError(f"deployment context must be a mapping of facts, not {type(data).__name__}")
        facts: dict[str, Any] = {}
        _read_nested(data, facts)
        for name, allowed in FACTS.items():
            if name in data:
                _put(facts, name, _parse_value(name, data[name], allowed))
        return cls(**facts, stated=frozenset(facts))

    @classmethod
    def from_yaml(cls, path: str | Path) -> DeploymentContext:
        """Read a context or system description file (YAML)."""
        from ..util.safe_yaml import load_yaml_file

        path = Path(path)
        data = load_yaml_file(path, "context file")  # bounded: size, depth and alias expansion
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise UsageError(f"context file {path} must hold a mapping of facts at the top level")
        return cls.from_dict(data)

    # -- views ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The eight facts as a flat, JSON-ready mapping (what report.json echoes)."""
        return {name: getattr(self, name) for name in FACTS}

    @property
    def assumed(self) -> tuple[str, ...]:
        """Facts that took their conservative default because nobody stated them."""
        return tuple(name for name in FACTS if name not in self.stated)


def load_context(value: Any) -> DeploymentContext | None:
    """Accept None, a DeploymentContext, a mapping or a YAML path (what ``--context`` gives)."""
    if value is None or isinstance(value, DeploymentContext):
        return value
    if isinstance(value, Mapping):
        return DeploymentContext.from_dict(value)
    if isinstance(value, (str, Path)):
        return DeploymentContext.from_yaml(value)
    raise UsageError(
        f"a deployment context is a YAML path, a mapping or a DeploymentContext, not {type(value).__name__}"
    )


def source_influence(source: str) -> str:
    """Who can influence training data of this kind (``user_feedback`` -> ``users``)."""
    return _lookup("training.sources", source, _TRAINING_SOURCES)


# -- parsing helpers ---------------------------------------------------------------------------

def _read_nested(data: Mapping[str, Any], facts: dict[str, Any]) -> None:
    serving = _section(data, "serving")
    if "returns" in serving:
        _put(facts, "outputs", _parse_value("serving.returns", serving["returns"], OUTPUTS))
    if "exposure" in serving:
        _put(facts, "internet_exposed", _lookup("serving.exposure", serving["exposure"], _EXPOSURE))
    if "authentication" in serving:
        _put(facts, "authenticated", _authentication(serving["authentication"]))
    if "rate_limit" in serving:
        _put(facts, "rate_limited", _rate_limit(serving["rate_limit"]))
    data_section = _section(data, "data")
    if "sensitivity" in data_section:
        _put(facts, "data_sensitivity", _parse_value("data.sensitivity", data_section["sensitivity"], SENSITIVITY))
    training = _section(data, "training")
    levels = []
    if "influence" in training:
        levels.append(_parse_value("training.influence", training["influence"], INFLUENCE))
    if "sources" in training:
        levels.append(_training_sources(training["sources"]))
    if levels:
        # A system description may state both who can influence the data and where it
        # comes from; the least trusted of the two decides, as among the sources.
        _put(facts, "training_influence", max(levels, key=INFLUENCE.index))
    model = _section(data, "model")
    if "source" in model:
        _put(facts, "model_source", _lookup("model.source", model["source"], _MODEL_SOURCES))
    decisions = _section(data, "decisions")
    if "safety_critical" in decisions:
        _put(facts, "safety_critical", _parse_value("decisions.safety_critical", decisions["safety_critical"], bool))


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        # A plain value (`model: zoo:mnist_cnn`, `data: builtin:digits`) is for other readers
        # of system.yaml; only the mapping form carries deployment facts.
        if isinstance(value, str):
            return {}
        raise UsageError(f"'{name}' in the deployment context must be a mapping, not {_show(value)}")
    return value


def _put(facts: dict[str, Any], name: str, value: Any) -> None:
    if name in facts and facts[name] != value:
        raise UsageError(f"the deployment context gives {name} twice, as {_show(facts[name])} and {_show(value)}")
    facts[name] = value


def _parse_value(where: str, value: Any, allowed: tuple[str, ...] | type[bool]) -> Any:
    if allowed is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "no", "off"):
            return False
        raise UsageError(f"{where} must be true or false, not {_show(value)}")
    key = str(value).strip().lower().replace("-", "_") if isinstance(value, str) else value
    if key not in allowed:
        raise UsageError(f"{where} is {_show(value)}; choose from {', '.join(allowed)}")
    return key


def _lookup(where: str, value: Any, table: Mapping[str, Any]) -> Any:
    key = value.strip().lower().replace("-", "_") if isinstance(value, str) else None
    if key not in table:
        raise UsageError(f"{where} is {_show(value)}; choose from {', '.join(sorted(table))}")
    return table[key]


def _authentication(value: Any) -> bool:
    """``none``/false means open; any named mechanism (api_key, oauth, mtls...) or true means gated."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip().lower() not in _NO
    raise UsageError(f"serving.authentication must name a mechanism (e.g. api_key) or be none, not {_show(value)}")


def _rate_limit(value: Any) -> bool:
    """A bool, ``none``, a number of requests, or a text limit such as ``100/minute``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value > 0
    if isinstance(value, str) and value.strip():
        return value.strip().lower() not in _NO
    raise UsageError(f"serving.rate_limit must be a limit such as 100/minute, true/false or none, not {_show(value)}")


def _training_sources(value: Any) -> str:
    """The least trusted of the listed sources decides who can influence training."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise UsageError(f"training.sources must be a list of sources, not {_show(value)}")
    if not items:
        return "none"
    levels = [_lookup("training.sources", item, _TRAINING_SOURCES) for item in items]
    return max(levels, key=INFLUENCE.index)


def _check_value(name: str, value: Any, allowed: tuple[str, ...] | type[bool]) -> None:
    if allowed is bool:
        if not isinstance(value, bool):
            raise UsageError(f"{name} must be true or false, not {_show(value)}")
    elif value not in allowed:
        raise UsageError(f"{name} is {_show(value)}; choose from {', '.join(allowed)}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
