"""A reported incident (``incident.yaml``): loaded and validated against ``incident.schema.json``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..triage.vocabulary import is_declared, metric_names
from ..util.safe_paths import contained_file
from ..util.safe_yaml import read_yaml_mapping
from ._files import validate
from .system import SystemDescription

__all__ = ["TEXT_FIELDS", "Incident", "load_incident"]

# The free-text fields, in the order they are searched and reported.
TEXT_FIELDS = ("title", "what_happened", "attacker_capability", "exposed", "how_found")


@dataclasses.dataclass(frozen=True)
class Incident:
    raw: Mapping[str, Any]
    system: SystemDescription | None
    path: Path | None = None

    @property
    def title(self) -> str:
        return str(self.raw["title"])

    @property
    def texts(self) -> dict[str, str]:
        """The free-text fields that are present, by name."""
        return {name: str(self.raw[name]) for name in TEXT_FIELDS if self.raw.get(name)}

    @property
    def facts(self) -> Mapping[str, Any]:
        return self.raw.get("facts") or {}

    @property
    def metrics(self) -> Mapping[str, Any]:
        return self.raw.get("metrics") or {}

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None, *, allow_outside: bool = False) -> Incident:
        """``allow_outside``: a ``system:`` file may lie outside the incident file's folder."""
        where = f"incident {path}" if path is not None else "the incident"
        if not isinstance(data, Mapping):
            raise UsageError(f"{where} must be a mapping of keys, not {type(data).__name__}")
        data = dict(data)
        validate(data, "incident", where)
        unknown = sorted(str(name) for name in data.get("metrics") or {} if not is_declared(str(name)))
        if unknown:
            raise UsageError(
                f"{where} is invalid at metrics: unknown metric {', '.join(map(repr, unknown))} "
                f"(known: the {len(metric_names())} metrics the checks declare, such as "
                f"{', '.join(metric_names()[:12])})"
            )
        system = _system(data.get("system"), path, allow_outside)
        return cls(data, system, Path(path) if path is not None else None)

    @classmethod
    def from_yaml(cls, path: str | Path, *, allow_outside: bool = False) -> Incident:
        return cls.from_dict(read_yaml_mapping(path, "incident"), path, allow_outside=allow_outside)


def load_incident(value: Any) -> Incident:
    """Accept an Incident, a mapping, or the path of an incident YAML file."""
    if isinstance(value, Incident):
        return value
    if isinstance(value, Mapping):
        return Incident.from_dict(value)
    if isinstance(value, (str, Path)):
        return Incident.from_yaml(value)
    raise UsageError(f"an incident is a YAML path or a mapping, not {type(value).__name__}")


def _system(value: Any, incident_path: str | Path | None, allow_outside: bool) -> SystemDescription | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return SystemDescription.from_dict(value)
    if incident_path is None:
        return SystemDescription.from_yaml(Path(value))
    # Relative to the incident file, like an include, and kept inside its folder: an incident
    # from someone else must not make redline read (and quote) files elsewhere.
    path = contained_file(value, incident_path, "the incident's system file", allow_outside=allow_outside)
    return SystemDescription.from_yaml(path)
