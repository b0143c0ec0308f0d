"""The submit-incident form: its fields, the incident they make, and its triage.

The form asks for what ``redline triage INCIDENT.yaml`` reads (``incident.schema.json``):
the free-text fields, the optional structured facts, measurements, and the affected
system's description, whose deployment facts move the severity. The choices offered for
each fact come from that schema, so the form and the file format cannot drift apart.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ...errors import UsageError
from ...threatmodel._files import load_schema
from ...threatmodel.incident import TEXT_FIELDS
from ...threatmodel.triage import IncidentTriage, triage_incident
from ...util.safe_yaml import load_yaml_text

__all__ = ["FACT_CHOICES", "FACT_LISTS", "IncidentForm", "fact_choices"]

# Facts offered as a single choice and as a set of boxes; the rest are a number, a yes/no
# and the suspected modes (text). Their allowed values are read from the schema.
FACT_CHOICES = ("vector", "found_by", "outputs", "model_source", "integrity_check")
FACT_LISTS = ("effects", "exposed")
MAX_FIELD_CHARS = 20_000


def fact_choices() -> dict[str, tuple[str, ...]]:
    """Fact name -> the values the incident schema allows, for the form's selects and boxes."""
    facts = load_schema("incident")["properties"]["facts"]["properties"]
    out = {name: tuple(facts[name]["enum"]) for name in FACT_CHOICES}
    out.update({name: tuple(facts[name]["items"]["enum"]) for name in FACT_LISTS})
    return out


@dataclasses.dataclass
class IncidentForm:
    """What the form sent, as given (strings and lists of strings), so a refused form can be
    shown again with the user's values."""

    values: dict[str, str]
    lists: dict[str, list[str]]

    @classmethod
    def from_form(cls, form: Any) -> IncidentForm:
        """From a multi-dict (starlette's FormData): every field as text, boxes as lists."""
        values = {k: str(form.get(k) or "") for k in form if not k.startswith("facts_list.")}
        lists = {name: [str(v) for v in form.getlist(f"facts_list.{name}")] for name in FACT_LISTS}
        return cls(values, lists)

    @classmethod
    def empty(cls) -> IncidentForm:
        return cls({}, {name: [] for name in FACT_LISTS})

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def incident(self) -> dict[str, Any]:
        """The incident document (``redline.incident/1``) these values describe; a one-line
        UsageError for a value the file format would refuse too."""
        for name, text in self.values.items():
            if len(text) > MAX_FIELD_CHARS:
                raise UsageError(f"{name} is longer than {MAX_FIELD_CHARS} characters")
        doc: dict[str, Any] = {"schema": "redline.incident/1"}
        for name in ("id", "reporter", "reported", *TEXT_FIELDS):
            text = self.get(name).strip()
            if text:
                doc[name] = text
        for required in ("title", "what_happened"):
            if required not in doc:
                raise UsageError(f"{required.replace('_', ' ')} is required")
        facts = self._facts()
        if facts:
            doc["facts"] = facts
        metrics = self._mapping("metrics", "metrics")
        if metrics:
            doc["metrics"] = metrics
        system = self._mapping("system_yaml", "the system description")
        name = self.get("system").strip()
        if name:
            system["name"] = name  # the field names the system; the description may add its facts
        if system:
            doc["system"] = system
        return doc

    def _facts(self) -> dict[str, Any]:
        choices = fact_choices()
        facts: dict[str, Any] = {}
        for name in FACT_CHOICES:
            value = self.get(f"facts.{name}").strip()
            if value:
                if value not in choices[name]:
                    raise UsageError(f"facts.{name} is {value!r}; choose from {', '.join(choices[name])}")
                facts[name] = value
        for name in FACT_LISTS:
            picked = list(dict.fromkeys(self.lists.get(name, [])))
            bad = [v for v in picked if v not in choices[name]]
            if bad:
                raise UsageError(f"facts.{name} has {bad[0]!r}; choose from {', '.join(choices[name])}")
            if picked:
                facts[name] = picked
        queries = self.get("facts.queries").strip()
        if queries:
            try:
                facts["queries"] = int(queries)
            except ValueError:
                raise UsageError(f"facts.queries must be a whole number, not {queries!r}") from None
            if facts["queries"] < 0:
                raise UsageError("facts.queries must not be negative")
        rl = self.get("facts.reinforcement_learning").strip().lower()
        if rl:
            if rl not in ("yes", "no"):
                raise UsageError(f"facts.reinforcement_learning is yes or no, not {rl!r}")
            facts["reinforcement_learning"] = rl == "yes"
        suspected = [c.strip().upper() for c in self.get("facts.suspected_modes").replace(",", " ").split()]
        if suspected:
            facts["suspected_modes"] = list(dict.fromkeys(suspected))
        return facts

    def _mapping(self, name: str, what: str) -> dict[str, Any]:
        text = self.get(name).strip()
        if not text:
            return {}
        value = load_yaml_text(text, what)
        if not isinstance(value, Mapping):
            raise UsageError(f"{what} must be a YAML mapping (name: value lines)")
        return dict(value)

    def triage(self) -> tuple[dict[str, Any], IncidentTriage]:
        """The incident and its triage (classification, severity and rationale, playbook)."""
        doc = self.incident()
        return doc, triage_incident(doc)
