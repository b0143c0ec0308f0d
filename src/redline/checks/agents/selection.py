"""Which checks a scan runs when agents are involved: agent checks read an environment
(``env:`` data), every other check reads arrays. Left to choose (no ``--select``, or a
mode code such as FM14 that has checks of both kinds), a scan keeps the kind its data
fits; a check named outright for the other kind of data is a usage error, as is a mode
with no check for the data at hand."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import UsageError
from ...targets.policy import is_policy
from .. import selection_names


def is_agent_check(check: Any) -> bool:
    return getattr(check.needs, "task", None) == "control"


def is_environment(data: Any) -> bool:
    return getattr(data, "task", None) == "control"


def fit_checks_to_data(select: str | Sequence[str] | None, checks: list, instances: list, data: Any,
                       target: Any = None) -> tuple[list, list]:
    """``(checks, instances)`` kept for ``data``; UsageError for a mix that cannot run."""
    agents = is_environment(data) or (data is None and is_policy_name(target))
    named = selection_names(select)
    wrong = [c.id for c in checks if c.id in named["checks"] and is_agent_check(c) != agents]
    if wrong:
        if agents:
            raise UsageError(f"--select {', '.join(wrong)}: not a check of agents; with --data env:… select "
                             "FM12, FM13 or FM14.policy_shift")
        raise UsageError(f"--select {', '.join(wrong)}: a check of agents; it needs a policy and --data env:ID")
    for mode in named["modes"]:
        of_mode = [c for c in checks if c.mode == mode]
        if of_mode and not any(is_agent_check(c) == agents for c in of_mode):
            kind = "agents (with --data env:ID)" if not agents else "classifiers, not agents"
            raise UsageError(f"--select {mode}: its checks test {kind}")
    keep = [i for i, c in enumerate(checks) if is_agent_check(c) == agents]
    if agents and data is None:
        raise UsageError("agent checks need an environment: give --data env:ID (e.g. env:redline/BoatRace-v0)")
    return [checks[i] for i in keep], [instances[i] for i in keep]


def is_policy_name(target: Any) -> bool:
    return isinstance(target, str) and target.startswith("py:")


def require_matching_target(target: Any, data: Any) -> None:
    """A policy scanned with arrays, or a classifier run in an environment, is a usage error."""
    if is_policy(target) and data is not None and not is_environment(data):
        raise UsageError(f"{target.spec} is an agent (a policy); give its environment as --data env:ID")
    if is_environment(data) and not is_policy(target):
        raise UsageError(f"--data {data.spec} is an environment, for agents; {target.spec} is not a policy "
                         "(a classifier endpoint that acts as one needs kind: policy in its --target-config)")
