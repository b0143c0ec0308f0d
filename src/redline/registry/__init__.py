"""The failure-case registry: a shared, replayable database of ML failures (issue 17)."""
from __future__ import annotations

from .case import CaseStatus, FailureCase

__all__ = ["CaseStatus", "FailureCase"]
