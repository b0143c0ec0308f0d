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

from .assess import ModeAssessment, ThreatModel, build_threat_model, rate_mode
from .incident import Incident, load_incident
from .system import SystemDescription, load_system
from .triage import IncidentTriage, triage_incident

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
