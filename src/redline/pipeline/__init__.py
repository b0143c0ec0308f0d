"""Scan orchestration: plan, run, triage, log and report (see runner.py). The public
entry point is :func:`redline.scan`."""
from .runner import ScanRequest, coverage_of, run_scan

__all__ = ["ScanRequest", "coverage_of", "run_scan"]
