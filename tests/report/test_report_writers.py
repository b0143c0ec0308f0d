"""Format parsing, dispatch, standard file names and atomic writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from report_samples import make_report

from redline.errors import UsageError
from redline.report import Format, parse_formats, render, write, write_all
from redline.util import atomic


def test_parse_formats_keeps_order_and_drops_duplicates():
    assert parse_formats("json,html") == [Format.JSON, Format.HTML]
    assert parse_formats(" HTML , md,html,") == [Format.HTML, Format.MD]
    assert parse_formats(["sarif", Format.JUNIT]) == [Format.SARIF, Format.JUNIT]


@pytest.mark.parametrize("spec", ["json,pdf", "xml"])
def test_unknown_format_names_the_valid_choices(spec):
    with pytest.raises(UsageError) as info:
        parse_formats(spec)
    message = str(info.value)
    assert "json, md, html, sarif, junit" in message and "\n" not in message


def test_empty_format_list_is_a_usage_error():
    with pytest.raises(UsageError, match="choose from"):
        parse_formats(" , ")


def test_write_all_uses_the_standard_names(tmp_path):
    written = write_all(make_report(), tmp_path / "out")
    assert {fmt: p.name for fmt, p in written.items()} == {
        Format.JSON: "report.json",
        Format.MD: "report.md",
        Format.HTML: "report.html",
        Format.SARIF: "report.sarif",
        Format.JUNIT: "report.junit.xml",
    }
    assert all(p.stat().st_size > 0 for p in written.values())
    assert sorted(os.listdir(tmp_path / "out")) == sorted(p.name for p in written.values())  # no temp files left


def test_write_all_with_a_subset(tmp_path):
    written = write_all(make_report(), tmp_path, "md,json")
    assert list(written) == [Format.MD, Format.JSON]
    assert sorted(os.listdir(tmp_path)) == ["report.json", "report.md"]


def test_write_returns_the_path_and_accepts_strings(tmp_path):
    path = write(make_report(), "json", str(tmp_path / "nested" / "r.json"))
    assert path == tmp_path / "nested" / "r.json"
    assert json.loads(path.read_text(encoding="utf-8"))["schema"] == "redline.report/1"
    with pytest.raises(UsageError):
        write(make_report(), "docx", tmp_path / "r.docx")


def test_report_convenience_methods_dispatch_to_the_writers(tmp_path):
    report = make_report()
    assert report.to_markdown(tmp_path / "r.md").read_text(encoding="utf-8").startswith("# redline report")
    assert report.to_html(tmp_path / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert json.loads(report.to_sarif(tmp_path / "r.sarif").read_text(encoding="utf-8"))["version"] == "2.1.0"
    assert report.to_junit(tmp_path / "r.xml").read_text(encoding="utf-8").startswith("<?xml")
    assert report.to_json(tmp_path / "r.json").exists()


def test_rendering_is_deterministic():
    for fmt in Format:
        assert render(make_report(), fmt) == render(make_report(), fmt)


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write(make_report(), "json", target)
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["report.json"]


def test_importing_the_report_package_stays_light():
    code = (
        "import sys, redline.report\n"
        "names = ('torch', 'sklearn', 'matplotlib', 'scipy', 'onnxruntime', 'jsonschema')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
