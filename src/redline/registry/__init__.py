"""The failure-case registry: a shared, replayable database of ML failures (issue 17).

``Registry`` (redline.registry.store) is imported on first use: it needs SQLAlchemy,
which ``import redline`` must not load.
"""
from __future__ import annotations

from typing import Any

from .case import CaseStatus, FailureCase

__all__ = ["CaseStatus", "FailureCase", "Registry"]


def __getattr__(name: str) -> Any:
    if name == "Registry":
        from .store import Registry

        return Registry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
