"""report.json: the schema accepts what Report.to_dict emits and pinpoints what it must not."""
from __future__ import annotations

import copy
import json
import math

import pytest
from report_samples import make_report

from redline.errors import RedlineError
from redline.report import Report, ReportValidationError, validate_report, write
from redline.catalog import MODE_CODES
from redline.report.validate import json_path, load_schema


@pytest.fixture
def doc():
    return make_report().to_dict()


def test_schema_is_draft_2020_12_with_the_contract_id():
    import jsonschema

    schema = load_schema()
    assert schema["$id"] == "redline.report/1"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_report_to_dict_validates(doc):
    validate_report(doc)
    # NaN and inf metrics were turned into null on the way.
    metrics = doc["findings"][0]["metrics"]
    assert metrics["tpr_at_fpr_0.01"] is None and metrics["advantage"] is None


def test_written_json_file_validates(tmp_path):
    path = write(make_report(), "json", tmp_path / "report.json")
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text and "Infinity" not in text
    assert "Zürich" in text  # unicode kept readable, not \u-escaped
    validate_report(json.loads(text))


def test_error_is_a_redline_error_and_a_value_error():
    assert issubclass(ReportValidationError, RedlineError)
    assert issubclass(ReportValidationError, ValueError)


@pytest.mark.parametrize(
    ("mutate", "path", "words"),
    [
        (lambda d: d["findings"][0].update(status="broken"), "$.findings[0].status", "broken"),
        (lambda d: d["findings"][1].update(severity="High"), "$.findings[1].severity", "High"),
        (lambda d: d["findings"][2].update(queries=-1), "$.findings[2].queries", "-1"),
        (lambda d: d["findings"][2].update(evaluation_queries=1.5), "$.findings[2].evaluation_queries", "integer"),
        (lambda d: d["findings"][0].update(mode="FM18"), "$.findings[0].mode", "FM18"),
        (lambda d: d["findings"][0].update(check="lira"), "$.findings[0].check", "lira"),
        (lambda d: d["findings"][0].update(id="not a hash"), "$.findings[0].id", "not a hash"),
        (lambda d: d["findings"][0].pop("seed"), "$.findings[0]", "seed"),
        (lambda d: d["findings"][0].update(extra=1), "$.findings[0]", "extra"),
        (lambda d: d["coverage"].pop("FM17"), "$.coverage", "FM17"),
        (lambda d: d["coverage"].update(FM03="skipped"), "$.coverage.FM03", "skipped"),
        (lambda d: d["coverage"].update(FM99="tested"), "$.coverage", "FM99"),
        (lambda d: d.update(schema="redline.report/2"), "$.schema", "redline.report/1"),
        (lambda d: d.update(started_at="yesterday"), "$.started_at", "yesterday"),
        (lambda d: d["target"]["capabilities"].update(outputs="scores"), "$.target.capabilities.outputs", "scores"),
        (lambda d: d["findings"][0]["evidence"].update(plots="a.png"), "$.findings[0].evidence.plots", "array"),
    ],
)
def test_broken_reports_fail_with_the_json_path(doc, mutate, path, words):
    mutate(doc)
    with pytest.raises(ReportValidationError) as info:
        validate_report(doc)
    assert info.value.path == path
    assert str(info.value).startswith(f"report is invalid at {path}: ")
    assert words in str(info.value)


def test_metrics_are_open_but_hold_only_data(doc):
    metrics = doc["findings"][0]["metrics"]
    metrics["new_metric"] = [0.1, [0.2, None], "x", True]
    metrics["per_class"] = {"0": 0.5, "1": [1, 2]}
    validate_report(doc)


def test_paths_quote_keys_that_are_not_identifiers():
    assert json_path(["findings", 0, "metrics", "tpr_at_fpr_0.001"]) == '$.findings[0].metrics["tpr_at_fpr_0.001"]'
    assert json_path([]) == "$"


def test_check_must_belong_to_its_mode(doc):
    doc["findings"][1]["check"] = "FM02.pgd"
    with pytest.raises(ReportValidationError, match=r"\$\.findings\[1\]\.check.*FM02\.pgd.*FM01"):
        validate_report(doc)


def test_every_mode_needs_a_coverage_value(doc):
    assert set(doc["coverage"]) == set(MODE_CODES)
    bad = copy.deepcopy(doc)
    for code in MODE_CODES:
        bad["coverage"][code] = "tested"
    validate_report(bad)


def test_data_spec_may_be_null_for_scans_without_data(doc):
    doc["data"] = {"spec": None}
    validate_report(doc)
    doc["data"] = {}
    with pytest.raises(ReportValidationError, match=r"\$\.data"):
        validate_report(doc)


def test_round_trip_equals():
    report = make_report()
    for f in report.findings:  # NaN never equals itself; JSON turns it into null anyway
        f.metrics = {k: v for k, v in f.metrics.items() if not (isinstance(v, float) and not math.isfinite(v))}
    again = Report.from_dict(report.to_dict())
    assert again == report


def test_round_trip_through_json_text_is_stable():
    d = make_report().to_dict()
    again = Report.from_dict(json.loads(json.dumps(d))).to_dict()
    assert again == d
