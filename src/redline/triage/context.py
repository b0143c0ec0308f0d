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

Besides the facts, two serving details change what a scan's attacks see rather than how a
finding is rated: ``output_decimals`` (how many decimals rounded probabilities keep, 2 when
``outputs: rounded_probabilities`` says no more) and the rate of ``serving.rate_limit``
(``100/minute``), from which redline estimates how long each attack would take.

Keys are checked: a key that is neither a fact, a serving detail nor a section of the
system description (``redline/threatmodel/system.schema.json``) is a one-line
:class:`~redline.errors.UsageError` that lists the valid ones, as is a known key with a
wrong value. A typo must not silently leave a fact at its default.

Which defaults hold also depends on the target (:func:`assume_for_target`): a model file or
in-memory model is assumed *not* internet-exposed, an http(s) endpoint is; a target that
answers with labels only is assumed to do so in deployment.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError

__all__ = ["FACTS", "DeploymentContext", "assume_for_target", "describe_facts", "load_context", "source_influence"]

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
    # Serving details (not facts the bug bar reads): decimals kept by rounded outputs, and
    # the rate limit in queries per second (None when no number was given).
    output_decimals: int | None = None
    rate_limit_per_second: float | None = None

    def __post_init__(self) -> None:
        for name, allowed in FACTS.items():
            _check_value(name, getattr(self, name), allowed)
        if self.output_decimals is not None and (
            isinstance(self.output_decimals, bool) or not isinstance(self.output_decimals, int)
            or not 0 <= self.output_decimals <= 12
        ):
            raise UsageError(f"output_decimals must be a whole number from 0 to 12, not {_show(self.output_decimals)}")
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
        _reject_unknown_keys(data)
        facts: dict[str, Any] = {}
        _read_nested(data, facts)
        for name, allowed in FACTS.items():
            if name in data:
                _put(facts, name, _parse_value(name, data[name], allowed))
        details = {
            "output_decimals": data.get("output_decimals"),
            "rate_limit_per_second": _rate_per_second(_section(data, "serving").get("rate_limit")),
        }
        return cls(**facts, stated=frozenset(facts), **details)

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

    def assuming(self, **facts: Any) -> DeploymentContext:
        """A copy whose *unstated* facts take these values, still marked as assumed.

        Stated facts are never overridden: what the user wrote wins over any guess.
        """
        chosen = {k: v for k, v in facts.items() if k not in self.stated}
        copy = dataclasses.replace(self, **chosen)
        object.__setattr__(copy, "stated", self.stated)
        return copy


def assume_for_target(context: DeploymentContext | None, *, remote: bool, outputs: str | None = None) -> DeploymentContext:
    """The context with defaults a reviewer would accept for this target.

    A local model (a file or an object in memory) has no query interface of its own, so it is
    not assumed internet-exposed; an http(s) endpoint is. A target that already answers with
    labels only is assumed to answer the same way in deployment.
    """
    ctx = context if context is not None else DeploymentContext()
    guesses: dict[str, Any] = {"internet_exposed": bool(remote)}
    if outputs == "labels":
        guesses["outputs"] = "labels"
    return ctx.assuming(**guesses)


_FACT_WORDS: dict[str, Any] = {
    "internet_exposed": ("internet-exposed", "not internet-exposed"),
    "authenticated": ("authenticated", "no authentication"),
    "safety_critical": ("safety-critical decisions", "not safety-critical"),
    "rate_limited": ("rate-limited", "no rate limit"),
    "outputs": "returns {}",
    "data_sensitivity": "{} training data",
    "training_influence": "training data open to: {}",
    "model_source": "model source: {}",
}


def describe_facts(facts: Mapping[str, Any], names: Any = None) -> str:
    """``internet-exposed, no authentication, returns probabilities`` for the facts ``names``."""
    words = []
    for name in (names if names is not None else FACTS):
        if name not in facts:
            continue
        value, form = facts[name], _FACT_WORDS.get(name)
        if isinstance(form, tuple):
            words.append(form[0] if value else form[1])
        elif isinstance(form, str):
            words.append(form.format(str(value).replace("_", " ")))
        else:
            words.append(f"{name}: {value}")
    return ", ".join(words)


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

_DETAILS = ("output_decimals",)
_SECTIONS_READ = ("serving", "data", "training", "model", "decisions")


def _system_sections() -> dict[str, tuple[str, ...] | None]:
    """Top-level keys of a system description -> the keys their mapping may hold (None: any value)."""
    import json

    path = Path(__file__).resolve().parent.parent / "threatmodel" / "system.schema.json"
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # the schema ships with redline; without it only facts are known
        return {name: None for name in _SECTIONS_READ}
    sections: dict[str, tuple[str, ...] | None] = {}
    for name, spec in (schema.get("properties") or {}).items():
        props = spec.get("properties") if isinstance(spec, dict) else None
        sections[name] = tuple(props) if props and spec.get("additionalProperties") is False else None
    return sections


def _reject_unknown_keys(data: Mapping[str, Any]) -> None:
    sections = _system_sections()
    valid = (*FACTS, *_DETAILS, *sections)
    # x-… keys are free-form notes in a system description.
    unknown = [str(k) for k in data if k not in valid and not str(k).startswith("x-")]
    if unknown:
        raise UsageError(
            f"unknown deployment context key {unknown[0]!r}; valid keys: {', '.join(valid)} (and x-… notes)"
        )
    # Inside the sections, richer descriptions may carry keys of their own (serving.url);
    # only a near miss of a key that sets a fact (serving.retruns) is surely a typo.
    import difflib

    for name in _SECTIONS_READ:
        section, allowed = data.get(name), sections.get(name)
        if isinstance(section, Mapping) and allowed is not None:
            for key in section:
                close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
                if key not in allowed and close and not str(key).startswith("x-"):
                    raise UsageError(
                        f"unknown key {name}.{key} in the deployment context (did you mean {name}.{close[0]}?); "
                        f"valid keys of {name}: {', '.join(allowed)}"
                    )


_PER = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
        "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


def _rate_per_second(value: Any) -> float | None:
    """``100/minute`` -> 1.67; a bare number is per second; anything else gives no rate."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    if not isinstance(value, str) or "/" not in value:
        return None
    count, _, unit = value.partition("/")
    try:
        number = float(count.strip())
    except ValueError:
        return None
    unit = unit.strip().lower().rstrip("s") or "s"
    if unit not in _PER and unit.rstrip("e") not in _PER:
        return None
    seconds = _PER.get(unit, _PER.get(unit.rstrip("e")))
    return number / seconds if number > 0 else None

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
