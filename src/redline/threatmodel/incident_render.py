"""Plain-text view of an incident triage, for a terminal or a ticket comment."""

from __future__ import annotations

import textwrap

from .triage import PHASES, IncidentTriage

__all__ = ["render_triage_text"]

WIDTH = 100
_PHASE_TITLES = {"contain": "Contain", "eradicate": "Eradicate", "recover": "Recover", "lessons": "Lessons learned"}


def render_triage_text(result: IncidentTriage) -> str:
    incident = result.incident
    lines = [f"Incident: {incident.title}" + (f"  ({incident.path})" if incident.path else "")]
    system = incident.system
    if system is not None:
        lines.append(f"System: {system.name}" + (f"  ({system.path})" if system.path else ""))
    else:
        lines.append("System: not given, so severities assume the riskiest ordinary deployment.")
    lines.append("")
    if not result.matches:
        lines += _wrap(result.rationale)
        if result.near_misses:
            lines.append("Weak signals: " + ", ".join(f"{c} (score {s})" for c, s in result.near_misses))
        return "\n".join(lines)
    lines += _wrap(f"Severity: {result.severity.label}. {result.rationale}")
    lines += ["", "Matched failure modes:"]
    for match in result.matches:
        lines.append(f"  {match.code} {match.mode.name}  score {match.score}  {match.severity.label}")
        for evidence in match.evidence:
            lines += _wrap(evidence.text, indent="      - ", follow="        ")
    if result.near_misses:
        lines.append("  Also considered: " + ", ".join(f"{c} (score {s})" for c, s in result.near_misses))
    lines += ["", "Response playbook:"]
    for phase in PHASES:
        steps = result.playbook.get(phase, ())
        if not steps:
            continue
        lines.append(f"  {_PHASE_TITLES[phase]}")
        for step, source in steps:
            tag = f"[{source}] " if source != "general" else ""
            lines += _wrap(f"{tag}{step}", indent="    - ", follow="      ")
    return "\n".join(lines)


def _wrap(text: str, indent: str = "", follow: str = "") -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=follow or indent,
        break_on_hyphens=False,
        break_long_words=False,
    )
