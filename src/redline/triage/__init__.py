"""Triage: the AI/ML bug bar as data, turning a finding plus deployment facts into a severity.

>>> from redline.triage import DeploymentContext, rate_evidence
>>> severity, why = rate_evidence("FM04", {"auc": 0.85, "tpr_at_fpr_0.001": 0.12},
...                               DeploymentContext.from_dict({"data": {"sensitivity": "health"}}))
>>> severity.label
'Critical'
"""
from __future__ import annotations

from .context import FACTS, DeploymentContext, load_context
from .engine import apply, rate, rate_evidence
from .rules import RuleError, load_rules

__all__ = ["FACTS", "DeploymentContext", "RuleError", "apply", "load_context", "load_rules", "rate", "rate_evidence"]
