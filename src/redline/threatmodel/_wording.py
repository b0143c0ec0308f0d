"""Rewording triage rationales for ratings made before, or without, a check.

The triage engine opens a rationale with the evidence a check measured ("The check found
...", "A copy that agrees with the model on 97% ..."), then says how the deployment moved
the rating. When nothing was measured the opening is not true, so the threat model and the
incident triage replace it and keep the rest, which is the part about the deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..catalog import FailureMode
from ..triage import DeploymentContext, load_rules
from ..triage.context import FACTS
from ..triage.vocabulary import metric_types

__all__ = ["default_rule_applies", "mode_phrase", "reword"]


def mode_phrase(mode: FailureMode) -> str:
    """``FM05 (model stealing)``; names that start with an acronym keep their capitals."""
    name = mode.name[:1].lower() + mode.name[1:] if mode.name[1:2].islower() else mode.name
    return f"{mode.code} ({name})"


def reword(rationale: str, opening: str) -> str:
    """``opening`` followed by the rating and its reasons from ``rationale``."""
    _evidence, sep, rest = rationale.partition(", rated ")
    if not sep:
        return rationale
    rest = rest.replace(" on the evidence alone.", " before the deployment is considered.", 1)
    return f"{opening} {rest}"


def default_rule_applies(
    code: str, metrics: Mapping[str, Any] | None, context: DeploymentContext | None, queries: Any = None
) -> bool:
    """True when no evidence rule of the mode matches, so its rating rests on the default."""
    rules = load_rules().for_mode(code)
    ctx = context if context is not None else DeploymentContext()
    env: dict[str, Any] = {name: getattr(ctx, name) for name in FACTS}
    env["queries"] = queries if isinstance(queries, (int, float)) and not isinstance(queries, bool) else None
    types = metric_types()
    for name, value in (metrics or {}).items():
        if types.get(name) == "list":
            env[name] = list(value) if isinstance(value, (list, tuple)) else None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            env[name] = value
    return rules.evidence_rule(env) is rules.default
