"""redline: find, rate and guard against the failure modes of machine-learning systems.

Importing redline is cheap: heavy frameworks (torch, scikit-learn, onnxruntime) load only
when a target, check or zoo model needs them.
"""
from __future__ import annotations

from typing import Any

from .severity import Severity
from .version import __version__

__all__ = ["Severity", "scan", "Report", "Finding", "__version__"]


def __getattr__(name: str) -> Any:  # lazy re-exports keep `import redline` light
    if name == "scan":
        from .api import scan

        return scan
    if name == "Report":
        from .report.model import Report

        return Report
    if name == "Finding":
        from .findings import Finding

        return Finding
    raise AttributeError(f"module 'redline' has no attribute {name!r}")
