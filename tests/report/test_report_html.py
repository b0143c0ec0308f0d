"""report.html: self-contained, escaped, every finding and all 17 coverage rows, plots embedded."""
from __future__ import annotations

import base64
import re
import types
from html.parser import HTMLParser

import pytest
from report_samples import HOSTILE

from redline.catalog import MODE_CODES
from redline.errors import UsageError
from redline.report import modes, render, write
from redline.report.html import e, image_data_uri


class _Collector(HTMLParser):
    """Collects tags with their attributes, and the visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> _Collector:
    parser = _Collector()
    parser.feed(html)
    return parser


@pytest.fixture
def page(report, artifacts_dir):
    return write(report, "html", artifacts_dir / "report.html").read_text(encoding="utf-8")


def test_page_is_self_contained(page, artifacts_dir):
    doc = parse(page)
    for tag, attrs in doc.tags:
        assert tag not in ("script", "link", "iframe", "object", "embed")
        for name in ("src", "href", "srcset", "action"):
            value = attrs.get(name) or ""
            assert not re.match(r"\s*(https?:)?//", value), (tag, name, value)
    assert "@import" not in page and "url(" not in page
    images = [attrs["src"] for tag, attrs in doc.tags if tag == "img"]
    assert len(images) == 3  # roc.png, curve.png, examples.png
    assert all(src.startswith("data:image/png;base64,") for src in images)
    png = base64.b64decode(images[0].split(",", 1)[1])
    assert png == (artifacts_dir / "artifacts" / "roc.png").read_bytes()


def test_content_security_policy_forbids_scripts_and_remote_loads(page):
    csp = next(
        a["content"] for t, a in parse(page).tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in csp and "img-src data:" in csp and "script-src" not in csp


def test_hostile_text_is_escaped(page):
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    visible = "".join(parse(page).text)
    assert HOSTILE in visible  # shown to the reader exactly as it was
    assert "\x1b" not in page and "\x00" not in page


def test_every_finding_is_shown_with_its_facts(report, page):
    visible = "".join(parse(page).text)
    for f in report.findings:
        assert e(f.check) in page and f.title in visible
    assert page.count('<details class="finding ') == len(report.findings)
    for label in ("Rationale.", "Not applicable:", "Error:", "Metrics", "Run", "Parameters", "Evidence", "Traceback"):
        assert label in visible
    for fact in ("seed", "queries", "evaluation_queries", "seconds", "12345", "0123456789abcdef", "n_shadow"):
        assert fact in visible
    assert '<details class="tb"><summary>Traceback</summary><pre>' in page
    assert "NaN" in visible and "inf" in visible


def test_header_names_target_data_time_and_version(page):
    visible = " ".join(parse(page).text)
    for text in ("zoo:digits_overfit", "builtin:digits", "2024-05-01T10:00:00+00:00", "redline 0.1.0", "1 min 05 s"):
        assert text in visible


def test_severity_and_status_summaries(page):
    assert page.count('class="badge sev-critical"') >= 3  # worst card bar, mode table, index, finding
    assert '<div class="card worst sev-critical"><div class="n">Critical</div>' in page
    counts = re.findall(r'<div class="n">(\d+)</div><div class="l">([^<]+)</div>', page)
    assert dict((label, int(n)) for n, label in counts) == {
        "Vulnerable": 2,
        "Not vulnerable": 1,
        "Inconclusive": 1,
        "Not applicable": 1,
        "Error": 1,
    }


def test_coverage_table_lists_all_17_modes(page):
    coverage = page.split('id="coverage"', 1)[1]
    codes = re.findall(r'<tr><td class="mono">(FM\d\d)</td><td>([^<]*)</td><td><span class="pill cov-(\w+)"', coverage)
    assert [c for c, _, _ in codes] == list(MODE_CODES)
    by_code = {c: (name, status) for c, name, status in codes}
    assert by_code["FM04"][1] == "tested" and by_code["FM03"][1] == "not_applicable"
    assert by_code["FM02"][1] == "not_covered"
    assert by_code["FM04"][0] == e(modes.mode_name("FM04"))


def test_plots_resolve_against_out_dir_even_when_written_elsewhere(report, tmp_path):
    page = write(report, "html", tmp_path / "elsewhere" / "r.html").read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3


def test_plots_resolve_against_the_output_folder_without_out_dir(report, artifacts_dir):
    report.out_dir = None
    assert render(report, "html", artifacts_dir).count("data:image/png;base64,") == 3
    assert "image not embedded" in render(report, "html")  # no folder known: nothing is read


@pytest.mark.parametrize(
    "path", ["../secret.png", "/etc/passwd", "artifacts/missing.png", "https://evil.example/x.png"]
)
def test_unsafe_or_missing_images_are_not_embedded(report, artifacts_dir, path):
    report.findings[1].evidence = {"plots": [path]}
    page = render(report, "html")
    assert page.count("data:image/png;base64,") == 1  # only the ROC plot of the first finding
    assert "image not embedded" in page
    assert not any(a.get("src") == path or a.get("href") == path for _, a in parse(page).tags)


def test_image_type_is_sniffed_not_trusted(artifacts_dir):
    fake = artifacts_dir / "artifacts" / "fake.png"
    fake.write_text("<html>not an image</html>", encoding="utf-8")
    assert image_data_uri("artifacts/fake.png", artifacts_dir) is None
    svg = artifacts_dir / "artifacts" / "shape.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>', encoding="utf-8")
    assert image_data_uri("artifacts/shape.svg", artifacts_dir).startswith("data:image/svg+xml;base64,")


def test_other_evidence_is_listed_with_relative_links(page):
    links = [a["href"] for t, a in parse(page).tags if t == "a" and not a["href"].startswith("#")]
    assert links == ["artifacts/FM04.lira.npz"]


def test_mode_names_fall_back_to_the_code_the_catalog_does_not_know(report, monkeypatch):
    def unknown(code):  # a report written by a version with other modes
        raise UsageError(f"unknown failure mode {code!r}")

    monkeypatch.setattr(modes, "get_mode", unknown)
    modes.mode_info.cache_clear()
    try:
        assert modes.mode_name("FM99") == "FM99"
    finally:
        modes.mode_info.cache_clear()


def test_mode_names_come_from_the_catalog(report, monkeypatch):
    fake = lambda code: types.SimpleNamespace(name=f"Mode <{code}>", summary="",
                                              bug_bar=types.SimpleNamespace(threat=""))
    monkeypatch.setattr(modes, "get_mode", fake)
    modes.mode_info.cache_clear()
    try:
        page = render(report, "html")
    finally:
        modes.mode_info.cache_clear()
    assert '<tr><td class="mono">FM02</td><td>Mode &lt;FM02&gt;</td>' in page


def test_passing_findings_start_collapsed_and_problems_open(page):
    opened = re.findall(r'<details class="finding f-(\w+)[^"]*" id="finding-\d+"( open)?>', page)
    assert {status: bool(flag) for status, flag in opened} == {
        "vulnerable": True,
        "error": True,
        "inconclusive": True,  # undecided is not a pass: shown open, with its reason
        "not_vulnerable": False,
        "not_applicable": False,
    }


def test_scan_without_findings_renders(report):
    report.findings = []
    page = render(report, "html")
    assert "No checks ran." in page and "Findings in detail" not in page
    assert len(re.findall(r'<tr><td class="mono">FM\d\d</td>', page)) == len(MODE_CODES)


def test_an_inconclusive_finding_shows_its_badge_and_reason(page):
    assert '<span class="pill st-inconclusive">Inconclusive</span>' in page
    assert '<strong>Inconclusive:</strong> 25 non-members cannot measure' in page
    assert "could not decide: 25 non-members" in page  # in the findings index, instead of metrics
