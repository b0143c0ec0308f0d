"""Report writers: report.json (the contract), Markdown, self-contained HTML, SARIF 2.1.0, JUnit XML."""
from __future__ import annotations

from .model import Report
from .validate import ReportValidationError, validate_report
from .writers import Format, parse_formats, render, write, write_all

__all__ = [
    "Format",
    "Report",
    "ReportValidationError",
    "parse_formats",
    "render",
    "validate_report",
    "write",
    "write_all",
]
