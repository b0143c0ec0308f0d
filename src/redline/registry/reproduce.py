"""The command lines that reproduce a case: through the registry, and as the scan itself."""
from __future__ import annotations

import json
import shlex
from typing import Any

import yaml

from .case import FailureCase

__all__ = ["replay_command", "scan_command", "set_value"]


def replay_command(case: FailureCase) -> str:
    """``redline registry replay ID``: the registry re-runs the case and records the outcome."""
    return shlex.join(["redline", "registry", "replay", case.id or "ID"])


def set_value(value: Any) -> str:
    """``value`` as ``--set`` reads it (YAML): plain text when it reads back as the same
    string, JSON (which YAML also reads) for everything else."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def scan_command(case: FailureCase) -> str | None:
    """The ``redline scan`` line that runs the case's check with its seed, budget and params;
    None when the case holds no check or no target to run it on (an incident, say)."""
    if not case.check or not case.target:
        return None
    defended = (case.evidence or {}).get("defended_by")
    if isinstance(defended, dict) and defended.get("baseline") and defended.get("policy"):
        # found behind a guard policy (scan --defend): the bare model behind that policy again
        words = ["redline", "scan", str(defended["baseline"]),
                 "--defend", str(defended.get("policy_file") or defended["policy"])]
    else:
        words = ["redline", "scan", case.target]
    if case.data:
        words += ["--data", case.data]
    words += ["--select", case.check]
    if case.seed is not None:
        words += ["--seed", str(case.seed)]
    if case.budget is not None:
        words += ["--budget", str(case.budget)]
    for name, value in sorted((case.params or {}).items()):
        words += ["--set", f"{case.check}.{name}={set_value(value)}"]
    return shlex.join(words)
