"""One look for every HTML page: the scan report, the threat model and the demo index share the
theme's layout, its one stylesheet and its one palette, and bring no colours of their own."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_samples import HOSTILE, make_report

import redline
from redline.findings import Finding, Status
from redline.report import render, theme
from redline.severity import Severity

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SRC = Path(redline.__file__).resolve().parent
# Modules that write HTML, or draw what it shows: none may hold a colour literal of its own.
PAGE_MODULES = ("report/html.py", "threatmodel/html.py", "threatmodel/diagram.py", "demo/index.py", "util/plots.py")
# A colour literal as CSS or SVG would hold it: #rgb / #rrggbb after a quote, colon, space or
# paren and not ended by ";" (so character references such as &#10003; or Mermaid's #124; do not
# count), or an rgb()/hsl() call.
COLOUR = re.compile(r"""(?<=["':(\s,])#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?\b(?!;)|\b(?:rgba?|hsla?)\(""")


def _palette_values() -> set[str]:
    values: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, str) and node.startswith("#"):
            values.add(node.lower())

    walk(theme.palette())
    return values


def _demo_page(findings: list[Finding], info: dict | None = None) -> str:
    from redline import zoo
    from redline.demo.index import _index_html
    from redline.demo.tour import Stop

    report = make_report()
    report.findings = findings
    name = "fair_logreg_labels"
    stop = Stop(target=name, checks=tuple(f.check for f in findings), budgets={}, params={}, notes={},
                shows=("the tour's words for this stop",), check_seconds={}, build_seconds=0.0)
    info = info if info is not None else zoo.describe(name)
    return _index_html([(stop, info, report)], kind="tour", timing={"wall_seconds": 1.0, "cpu_seconds": 1.0})


def _threat_model_page() -> str:
    from redline.threatmodel import build_threat_model
    from redline.threatmodel.html import render_html

    return render_html(build_threat_model(EXAMPLES / "image-api.system.yaml"))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return {
        "report": render(make_report(), "html"),
        "threat model": _threat_model_page(),
        "demo": _demo_page(make_report().findings),
    }


class _Styles(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.in_style = False
        self.blocks: list[str] = []
        self.style_attributes: list[str] = []
        self.headers: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "style":
            self.in_style = True
            self.blocks.append("")
        if attrs.get("style"):
            self.style_attributes.append(attrs["style"])
        if tag == "header":
            self.headers.append(attrs.get("class") or "")

    def handle_endtag(self, tag):
        if tag == "style":
            self.in_style = False

    def handle_data(self, data):
        if self.in_style:
            self.blocks[-1] += data


def _styles(page: str) -> _Styles:
    parser = _Styles()
    parser.feed(page)
    return parser


@pytest.mark.parametrize("name", ["report", "threat model", "demo"])
def test_every_page_embeds_the_one_stylesheet_in_the_one_layout(pages, name):
    parsed = _styles(pages[name])
    assert parsed.blocks == [theme.stylesheet()], f"{name} brings its own <style>"
    assert parsed.headers == ["top"]
    assert f'content="{theme.CSP}"' in pages[name]  # the same Content-Security-Policy everywhere


@pytest.mark.parametrize("name", ["report", "threat model", "demo"])
def test_pages_bring_no_colours_of_their_own(pages, name):
    page = pages[name]
    outside = page.replace(theme.stylesheet(), "")
    foreign = {c.lower() for c in COLOUR.findall(outside)} - _palette_values()
    assert not foreign, f"{name} uses colours that are not in the palette: {sorted(foreign)}"
    for style in _styles(page).style_attributes:  # inline styles size things, never colour them
        assert not re.search(r"color|background|border|fill|stroke", style), (name, style)


@pytest.mark.parametrize("module", PAGE_MODULES)
def test_page_modules_hold_no_colour_table(module):
    source = (SRC / module).read_text(encoding="utf-8")
    assert not COLOUR.findall(source), f"{module} has colour literals; add them to util/palette.json"


def test_the_stylesheet_takes_every_colour_from_the_palette():
    base = (SRC / "report" / "templates" / "base.css").read_text(encoding="utf-8")
    assert not COLOUR.findall(base)
    sheet = theme.stylesheet()
    declared = set(re.findall(r"(--[\w-]+):", sheet))
    used = set(re.findall(r"var\((--[\w-]+)", sheet))
    assert used <= declared, sorted(used - declared)
    for label, colour in theme.palette()["severity"].items():
        assert f"--sev-{label.lower()}:{colour}" in sheet
        assert f".sev-{label.lower()}{{--sev:var(--sev-{label.lower()})}}" in sheet
    for status in (s.value for s in Status):  # every status and coverage value has its pill colours
        assert f".st-{status}" in sheet
    for coverage in ("tested", "not_applicable", "inconclusive", "not_covered"):
        assert f".cov-{coverage}" in sheet
    assert json.loads(json.dumps(theme.palette())) == theme.palette()  # plain data a web UI can load too


def test_a_severity_is_the_same_badge_on_every_page(pages):
    critical = '<span class="badge sev-critical">Critical</span>'
    assert critical in pages["report"] and critical in pages["demo"]
    badges = re.findall(r'<span class="badge (sev-\w+)">(\w+)</span>', pages["threat model"])
    assert badges and all(cls == f"sev-{label.lower()}" for cls, label in badges)
    for page in pages.values():
        assert 'class="sev ' not in page and "class='sev'" not in page  # the old per-page badges


def test_demo_index_escapes_hostile_names(tmp_path):
    finding = Finding(id="6" * 16, mode="FM05", check=f"FM05.x{HOSTILE}\x1b[2J", title=HOSTILE,
                      status=Status.VULNERABLE, severity=Severity.IMPORTANT)
    page = _demo_page([finding, Finding(id="7" * 16, mode="FM03", check=HOSTILE, title="t",
                                        status=Status.ERROR, reason=HOSTILE)],
                      info={"description": HOSTILE, "weakness": "</td><img src=x onerror=alert(1)>"})
    assert "<script>" not in page and "<img" not in page and "\x1b" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "\\x1b[2J" in page
    assert '<span class="badge sev-important">Important</span>' in page


def test_layout_escapes_its_plain_text_slots():
    page = theme.page(title="<t>", brand="<b>", heading='<h1 x="y">', body="<p>kept</p>")
    assert "<t>" not in page and "&lt;t&gt;" in page and "&lt;h1 x=&quot;y&quot;&gt;" in page
    assert "<p>kept</p>" in page  # the body is markup the caller escaped
