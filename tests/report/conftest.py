"""Fixtures for the report tests; the sample data lives in report_samples.py (a unique module name)."""
from __future__ import annotations

import pytest
from report_samples import draw_artifacts, make_report

from redline.report import Report


@pytest.fixture(scope="session")
def artifacts_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    draw_artifacts(out)
    return out


@pytest.fixture
def report(artifacts_dir) -> Report:
    return make_report(artifacts_dir)
