"""report.json: the machine-readable contract (schema ``redline.report/1``)."""
from __future__ import annotations

import json
from pathlib import Path

from .model import Report


def render(report: Report, base_dir: Path | None = None) -> str:
    # to_dict already maps NaN/Inf to null; allow_nan=False guards that promise.
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
