"""Scan orchestration: plan, run, triage, log and report (see runner.py). The public
entry point is :func:`redline.scan`. Names load lazily so the CLI starts fast."""
from typing import Any

__all__ = ["ScanRequest", "coverage_of", "run_scan"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'redline.pipeline' has no attribute {name!r}")
