"""JSON, Markdown, HTML and the data-flow diagram of a threat model."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from redline.threatmodel import build_threat_model
from redline.threatmodel._files import schema_errors
from redline.threatmodel.html import render_html
from redline.threatmodel.render import render_markdown, render_text

NAMES = ("image-api", "spam-feedback", "downloaded-zoo", "medical-risk", "cleaning-robot", "traffic-sign-car")
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def model_of(examples, fixed_registry):
    return lambda name: build_threat_model(examples / f"{name}.system.yaml")


@pytest.mark.parametrize("name", NAMES)
def test_json_follows_its_schema_and_holds_all_modes(model_of, name):
    document = json.loads(json.dumps(model_of(name).to_dict()))
    assert schema_errors(document, "threat-model") == []
    assert [m["code"] for m in document["modes"]] == [f"FM{i:02d}" for i in range(1, 18)]
    assert document["summary"]["applicable"] == sum(m["applicable"] for m in document["modes"])


def test_json_cites_facts_with_their_source(model_of):
    fm03 = next(m for m in model_of("image-api").to_dict()["modes"] if m["code"] == "FM03")
    facts = {f["fact"]: f for r in fm03["reasons"] for f in r["facts"]}
    assert facts["outputs"] == {
        "fact": "outputs",
        "value": "probabilities",
        "source": "serving.returns",
        "stated": True,
    }


def test_markdown_has_every_mode_the_diagram_and_the_commands(model_of):
    text = render_markdown(model_of("image-api"))
    for i in range(1, 18):
        assert f"FM{i:02d}" in text
    assert "```mermaid\nflowchart LR" in text
    assert "`redline scan https://tagger.example.com/v1/predict --select FM05" in text
    assert "- [x] Validate inputs" in text  # sanitisation is in place
    assert "no check for FM03" in text


def test_text_summary_lists_every_mode(model_of):
    text = render_text(model_of("cleaning-robot"))
    assert text.startswith("Threat model: Home cleaning robot navigation")
    for i in range(1, 18):
        assert re.search(rf"^FM{i:02d}\s", text, re.MULTILINE)
    assert "FM12 Reward hacking [Critical]" in text


@pytest.mark.parametrize("name", NAMES)
def test_html_is_self_contained(model_of, name):
    page = render_html(model_of(name))
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page
    lowered = page.lower()
    assert "<script" not in lowered and "src=" not in lowered and "@import" not in lowered
    # Nothing is fetched: no attribute or style points anywhere but inside the page.
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*(https?:|//)""", lowered)
    assert "url(http" not in lowered and "url(//" not in lowered
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    ET.fromstring(svg)  # well-formed


def test_user_text_is_escaped_everywhere(fixed_registry):
    evil = '<script>alert("x")</script> | **bold** [link](http://evil)'
    model = build_threat_model(
        {"name": evil, "description": evil, "decisions": {"drives": evil}, "serving": {"clients": ["public"]}}
    )
    page = render_html(model)
    assert "<script>" not in page and "&lt;script&gt;" in page
    markdown = render_markdown(model)
    assert "<script>" not in markdown and "\\<script\\>" in markdown
    assert "[link](http://evil)" not in markdown
    mermaid = model.diagram().mermaid()
    assert "<script>" not in mermaid


def _edge(diagram, src, dst):
    return next(e for e in diagram.edges if (e.src, e.dst) == (src, dst))


def test_diagram_marks_poisoning_on_the_untrusted_source_only(model_of):
    diagram = model_of("spam-feedback").diagram()
    assert "FM02" in _edge(diagram, "src_user_feedback", "training").codes
    assert "FM02" not in _edge(diagram, "src_curated", "training").codes
    assert "FM02" in _edge(diagram, "clients", "src_user_feedback").codes  # the feedback loop itself
    assert "FM05" in _edge(diagram, "deploy", "clients").codes and "FM01" in _edge(diagram, "clients", "deploy").codes


def test_diagram_places_physical_supply_chain_and_agent_threats(model_of):
    car = model_of("traffic-sign-car").diagram()
    assert "FM07" in _edge(car, "world", "deploy").codes
    assert {"FM09", "FM10"} <= set(_edge(car, "training", "model").codes)  # delivered by the supplier
    zoo = model_of("downloaded-zoo").diagram()
    assert "FM09" in _edge(zoo, "zoo", "training").codes
    robot = model_of("cleaning-robot").diagram()
    assert {"FM12", "FM13"} <= set(_edge(robot, "deploy", "env").codes)
    assert "clients" not in {n.id for n in robot.nodes}  # nobody can query it


def test_every_applicable_mode_appears_in_the_diagram_once_per_place(model_of):
    for name in NAMES:
        model = model_of(name)
        diagram = model.diagram()
        placed = [c for item in [*diagram.nodes, *diagram.edges] for c in item.codes]
        assert set(placed) == {a.code for a in model.applicable}, name
        mermaid = diagram.mermaid()
        for code in set(placed):
            assert code in mermaid


def test_svg_draws_every_node_and_edge(model_of):
    diagram = model_of("image-api").diagram()
    root = ET.fromstring(diagram.svg())
    assert len(root.findall(f"{SVG}rect")) >= len(diagram.nodes)
    assert len(root.findall(f"{SVG}path")) == len(diagram.edges)
    texts = " ".join(t.text or "" for t in root.iter(f"{SVG}text"))
    assert "Serving API (internet)" in texts and "FM03 FM04 FM05" in texts
