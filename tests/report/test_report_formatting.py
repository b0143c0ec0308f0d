"""Shared helpers of the human-readable writers."""
from __future__ import annotations

import numpy as np
import pytest
from report_samples import make_findings

from redline.findings import Status
from redline.report.formatting import (
    artifact_path,
    duration_seconds,
    format_seconds,
    format_value,
    is_image_path,
    key_metrics,
    ordered,
    severity_counts,
)
from redline.severity import Severity


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "n/a"),
        (True, "true"),
        (12345, "12345"),
        (0.0, "0"),
        (0.123456, "0.1235"),
        (1.5e-7, "1.5e-07"),
        (float("nan"), "NaN"),
        (float("-inf"), "-inf"),
        (np.float32(0.5), "0.5"),
        (np.array([1, 2, 3]), "[1, 2, 3]"),
        (list(range(10)), "[0, 1, 2, 3, 4, 5, 6, 7, … (10 items)]"),
        ({"b": 1, "a": 2}, '{"a": 2, "b": 1}'),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_long_values_are_clipped():
    assert format_value("x" * 500, 20) == "x" * 19 + "…"


@pytest.mark.parametrize(
    "value",
    ["artifacts/roc.png", "artifacts/sub dir/model.onnx", "plot.svg"],
)
def test_relative_paths_inside_the_report_are_artifacts(value):
    assert artifact_path(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "../secret.png",
        "artifacts/../../x.png",
        "/etc/passwd",
        "\\\\server\\share\\x.png",
        "~/x.png",
        "https://evil.example/x.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        'a"onerror="x.png',
        "artifacts/",
        "",
        42,
        None,
    ],
)
def test_anything_else_is_not(value):
    assert artifact_path(value) is None


def test_path_objects_are_accepted():
    from pathlib import PurePosixPath

    assert artifact_path(PurePosixPath("artifacts/a.png")) == "artifacts/a.png"


def test_image_paths():
    assert is_image_path("artifacts/a.PNG") and is_image_path("a.svg")
    assert not is_image_path("artifacts/a.npz") and not is_image_path("../a.png")


def test_ordered_puts_problems_first():
    checks = [f.check for f in ordered(make_findings())]
    assert checks == [
        "FM04.lira",
        "FM01.pgd",
        "FM10.neural_cleanse",
        "FM04.threshold",  # inconclusive: after errors, before passes
        "FM05.equation_solving",
        "FM03.attribute_inference",
    ]


def test_severity_counts_only_count_vulnerable_findings():
    findings = make_findings()
    findings[2].severity = Severity.CRITICAL  # a passing check carrying a severity must not count
    counts = severity_counts(findings)
    assert counts[Severity.CRITICAL] == 1 and counts[Severity.MODERATE] == 1
    assert sum(counts.values()) == sum(f.status is Status.VULNERABLE for f in findings)


def test_key_metrics_prefer_headline_names():
    lira = make_findings()[0]
    assert [name for name, _ in key_metrics(lira)] == ["auc", "tpr_at_fpr_0.001", "advantage"]


def test_durations():
    assert duration_seconds("2024-05-01T10:00:00Z", "2024-05-01T10:00:30+00:00") == 30
    assert duration_seconds("2024-05-01T10:00:00", "2024-05-01T10:00:30+00:00") is None
    assert duration_seconds("soon", "later") is None
    assert format_seconds(None) == "n/a"
    assert format_seconds(0.25) == "0.25 s" and format_seconds(12.34) == "12.3 s"
    assert format_seconds(65) == "1 min 05 s" and format_seconds(7300) == "2 h 01 min"
