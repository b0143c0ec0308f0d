"""Scan orchestration (see runner.py)."""
from .runner import ScanRequest, coverage_of, run_scan

__all__ = ["ScanRequest", "coverage_of", "run_scan"]
