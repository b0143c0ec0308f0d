"""Threat modelling and incident triage with the failure-mode taxonomy and the bug bar.

- :func:`build_threat_model` turns a system description (``system.yaml``) into a verdict
  for each of the 17 failure modes: applicable or not and why, attacker knowledge, impact,
  bug-bar severity, the redline commands that test it, and mitigations.
- :func:`triage_incident` classifies a reported ML incident (``incident.yaml``) into
  failure modes, rates it on the bug bar and gives a response playbook.

>>> model = build_threat_model({"name": "demo", "serving": {"exposure": "internet", "returns": "labels"}})
>>> model["FM05"].applicable
True
"""

from __future__ import annotations

from typing import Any

# Loaded on first use: `redline --help` imports the commands module of this package and
# must not pay for the assessment machinery.
_EXPORTS = {
    "ModeAssessment": "assess", "ThreatModel": "assess", "build_threat_model": "assess", "rate_mode": "assess",
    "Incident": "incident", "load_incident": "incident",
    "SystemDescription": "system", "load_system": "system",
    "IncidentTriage": "triage", "triage_incident": "triage",
}

__all__ = [
    "Incident",
    "IncidentTriage",
    "ModeAssessment",
    "SystemDescription",
    "ThreatModel",
    "build_threat_model",
    "load_incident",
    "load_system",
    "rate_mode",
    "triage_incident",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'redline.threatmodel' has no attribute {name!r}")
