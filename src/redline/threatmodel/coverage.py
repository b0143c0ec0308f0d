"""Which redline checks and commands test a failure mode, written as commands to run.

Checks come from the live registry (:func:`redline.checks.all_checks`), so a check added
later shows up in every threat model without touching this package. When a mode has no
check and no other command, the threat model says so instead of implying coverage.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from .rules import ModeThreats
from .system import SystemDescription

__all__ = ["CheckRef", "Coverage", "ToolRef", "checks_by_mode", "coverage_for"]

# Placeholders for what the description does not say.
TARGET = "TARGET"
MODEL_FILES = "MODEL_DIR"
REQUIREMENTS = "requirements.txt"


@dataclasses.dataclass(frozen=True)
class CheckRef:
    id: str
    title: str
    command: str
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "command": self.command, "note": self.note}


@dataclasses.dataclass(frozen=True)
class ToolRef:
    command: str
    what: str

    def to_dict(self) -> dict[str, Any]:
        return {"command": self.command, "what": self.what}


@dataclasses.dataclass(frozen=True)
class Coverage:
    """``status``: ``checks`` (redline scan tests it), ``tools`` (another command does), ``none``."""

    status: str
    scan_command: str | None
    checks: tuple[CheckRef, ...]
    tools: tuple[ToolRef, ...]
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "scan_command": self.scan_command,
            "checks": [c.to_dict() for c in self.checks],
            "tools": [t.to_dict() for t in self.tools],
            "note": self.note,
        }


def checks_by_mode() -> dict[str, list[Any]]:
    """Registered check classes grouped by mode code (the registry's grouping)."""
    from .. import checks

    return checks.checks_by_mode()


def coverage_for(code: str, rules: ModeThreats, system: SystemDescription, checks: Mapping[str, list[Any]]) -> Coverage:
    target = system.get("scan.target") or TARGET
    mode_checks = checks.get(code, [])
    scan_command = _scan_command(system, target, code) if mode_checks else None
    refs = tuple(
        CheckRef(cls.id, cls.title, _scan_command(system, target, cls.id), _needs_note(cls, system, target))
        for cls in mode_checks
    )
    tools = tuple(ToolRef(_fill(t.command, system), t.what) for t in rules.tools)
    if refs:
        status = "checks"
        note = f"redline scan tests {code} with {len(refs)} check{'s' if len(refs) != 1 else ''}."
        if target == TARGET:
            note += " Replace TARGET with the model or endpoint (or set scan.target in the description)."
    elif tools:
        status = "tools"
        note = f"No redline scan check tests {code} yet; the commands below cover it."
    else:
        status = "none"
        note = (
            f"redline has no check for {code} yet, so nothing here is tested automatically; "
            "review the mitigations below by hand."
        )
    return Coverage(status, scan_command, refs, tools, note)


def _scan_command(system: SystemDescription, target: str, select: str) -> str:
    parts = ["redline", "scan", target, "--select", select]
    data = system.get("scan.data")
    if data:
        parts += ["--data", data]
    if system.path is not None:
        parts += ["--context", str(system.path)]
    return shlex.join(parts)


def _fill(command: str, system: SystemDescription) -> str:
    """Put the description's paths (or placeholders) into a tool command."""
    values = {
        "model_files": system.get("scan.model_files") or MODEL_FILES,
        "requirements": system.get("dependencies.requirements") or REQUIREMENTS,
        "target": system.get("scan.target") or TARGET,
    }
    words = []
    for word in command.split():
        if word.startswith("{") and word.endswith("}") and word[1:-1] in values:
            word = shlex.quote(values[word[1:-1]])
        words.append(word)
    return " ".join(words)


def _needs_note(cls: Any, system: SystemDescription, target: str) -> str:
    """Why a check may be skipped against this system's target, from what it declares it needs."""
    needs = getattr(cls, "needs", None)
    if needs is None:
        return ""
    notes = []
    from ..targets.adapters import names_service

    remote = names_service(target)
    if needs.gradients and (remote or target == TARGET):
        notes.append(
            "needs white-box access: point it at the model file (onnx:, torch:, sklearn:) rather than an endpoint"
        )
    outputs = system.facts["outputs"].value
    if needs.outputs == "probabilities" and outputs != "probabilities":
        notes.append(
            f"needs full probabilities, and the API returns {outputs.replace('_', ' ')}: "
            "against the endpoint it is skipped, so run it on the model file"
        )
    if needs.trainable:
        notes.append("needs a training recipe (`train: module:function` in the --target-config file)")
    if needs.task == "control" and not str(system.get("scan.data") or "").startswith("env:"):
        notes.append("runs the agent (a policy) in its environment: give --data env:ID (scan.data in the description)")
    return "; ".join(notes)
