"""A system description (``system.yaml``): loaded, validated, and turned into facts.

The document is checked against ``system.schema.json`` (shipped next to this module), then
read by :meth:`DeploymentContext.from_dict <redline.triage.DeploymentContext.from_dict>`,
exactly as ``redline scan --context system.yaml`` reads it, so both agree on severities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..triage.context import DeploymentContext
from ..util.safe_yaml import read_yaml_mapping
from ._files import validate
from .facts import Fact, derive_facts, fact_environment

__all__ = ["SCHEMA_ID", "SystemDescription", "load_system"]

SCHEMA_ID = "redline.system/1"


@dataclasses.dataclass(frozen=True)
class SystemDescription:
    """A validated system description with its deployment context and facts."""

    raw: Mapping[str, Any]
    context: DeploymentContext
    facts: Mapping[str, Fact]
    path: Path | None = None

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def description(self) -> str:
        return str(self.raw.get("description", ""))

    def get(self, dotted: str, default: Any = None) -> Any:
        """A value by its dotted path (``serving.returns``), or ``default``."""
        node: Any = self.raw
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    @property
    def environment(self) -> dict[str, Any]:
        """Fact values by name, for rule conditions."""
        return fact_environment(self.facts)

    @property
    def assumed(self) -> tuple[str, ...]:
        """Facts that took their default because the description does not state them."""
        return tuple(name for name, fact in self.facts.items() if not fact.stated)

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> SystemDescription:
        where = f"system description {path}" if path is not None else "the system description"
        if not isinstance(data, Mapping):
            raise UsageError(f"{where} must be a mapping of keys, not {type(data).__name__}")
        data = dict(data)
        validate(data, "system", where)
        _check_consistency(data, where)
        try:
            context = DeploymentContext.from_dict(data)
        except UsageError as exc:  # the schema should have caught it; keep the file in the message
            raise UsageError(f"{where}: {exc}") from None
        return cls(data, context, derive_facts(data, context), Path(path) if path is not None else None)

    @classmethod
    def from_yaml(cls, path: str | Path) -> SystemDescription:
        return cls.from_dict(read_yaml_mapping(path, "system description"), path)


def load_system(value: Any) -> SystemDescription:
    """Accept a SystemDescription, a mapping, or the path of a system.yaml."""
    if isinstance(value, SystemDescription):
        return value
    if isinstance(value, Mapping):
        return SystemDescription.from_dict(value)
    if isinstance(value, (str, Path)):
        return SystemDescription.from_yaml(value)
    raise UsageError(f"a system description is a YAML path or a mapping, not {type(value).__name__}")


def _check_consistency(data: Mapping[str, Any], where: str) -> None:
    """Contradictions a schema cannot express."""
    sources = (data.get("training") or {}).get("sources") or []
    if "none" in sources and len(sources) > 1:
        raise UsageError(f"{where} is invalid at training.sources: 'none' cannot be listed with other sources")
    agent = data.get("agent") or {}
    extra = sorted(k for k in agent if k not in ("reinforcement_learning", "description") and not k.startswith("x-"))
    if extra and agent.get("reinforcement_learning") is False:
        raise UsageError(
            f"{where} is invalid at agent: it describes an agent ({', '.join(extra)}) "
            "but says reinforcement_learning is false"
        )
