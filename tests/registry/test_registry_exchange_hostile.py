"""Hostile and malformed exchange files: one-line errors, quickly, and nothing executed."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from redline.errors import DataError, RedlineError, UsageError
from redline.registry import FailureCase
from redline.registry.exchange import export_case, import_file
from redline.registry.exchange.files import MAX_BYTES, MAX_DEPTH
from redline.registry.exchange.schemas import SCHEMAS, _validator

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True, scope="module")
def _warm_validators():
    """Import jsonschema and build the validators once, so the time bound below measures the file."""
    for name in SCHEMAS:
        _validator(name)


def _refused(path: Path, match: str, kind: type[RedlineError] = DataError) -> str:
    started = time.monotonic()
    with pytest.raises(kind, match=match) as info:
        import_file(path)
    assert time.monotonic() - started < 5, "refusing a hostile file must be quick"
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    return message


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _avid() -> dict:
    return json.loads((DATA / "avid_adversarial_sign.json").read_text())


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:
        fh.write(b'{"data_type": "AVID", "description": {"lang": "eng", "value": "')
        fh.write(b"x" * (MAX_BYTES + 10))
        fh.write(b'"}}')
    _refused(path, "larger than")


def test_deeply_nested_json_is_refused(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000  # beyond the interpreter's recursion limit
    _refused(_write(tmp_path, "deep.json", deep), "nested")
    moderately = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)  # parses, but past our depth limit
    _refused(_write(tmp_path, "deep2.json", moderately), f"more than {MAX_DEPTH} levels")


def test_deeply_nested_yaml_is_refused(tmp_path):
    _refused(_write(tmp_path, "deep.yaml", "a: " + "[" * 5000 + "]" * 5000), "nested")


def test_billion_laughs_is_refused_before_expansion(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("object-type: case-study")
    _refused(_write(tmp_path, "laughs.yaml", "\n".join(lines)), "values once its aliases are expanded")


def test_a_self_referencing_alias_is_refused(tmp_path):
    _refused(_write(tmp_path, "cycle.yaml", "a: &x\n  b: *x\n"), "alias")


def test_python_tags_are_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = ("!!python/object/apply:os.system ['touch " + str(marker) + "']\n")
    _refused(_write(tmp_path, "exec.yaml", text), "not valid YAML")
    text = "id: X.1\nname: !!python/name:os.system\n"
    _refused(_write(tmp_path, "exec2.yaml", text), "not valid YAML")
    assert not marker.exists()


def test_yaml_values_json_has_no_form_for_are_refused(tmp_path):
    _refused(_write(tmp_path, "set.yaml", "object-type: case-study\nname: !!set {a, b}\n"), "set value")
    _refused(_write(tmp_path, "bin.yaml", "object-type: case-study\nname: !!binary aGVsbG8=\n"), "bytes value")
    _refused(_write(tmp_path, "key.yaml", "object-type: case-study\n1: one\n"), "key that is not text")


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(affects="everyone"), r"affects must be of type object"),
    (lambda d: d["affects"]["artifacts"][0].update(type="Modle"), r"affects.artifacts\[0\].type must be one of"),
    (lambda d: d["impact"]["avid"].update(sep_view=["S0999: Made up"]), r"impact.avid.sep_view\[0\] must be one of"),
    (lambda d: d["problemtype"].pop("description"), r"description is a required property"),
    (lambda d: d.update(reported_date=20990701), r"reported_date must be of type"),
    (lambda d: d.update(extra_field=1), r"extra_field"),
    (lambda d: d["problemtype"]["description"].update(value="x" * 100_000, lang=["eng"]), r"lang must be of type"),
])
def test_wrong_types_in_an_avid_report_give_one_line(tmp_path, edit, match):
    doc = _avid()
    edit(doc)
    message = _refused(_write(tmp_path, "bad.json", json.dumps(doc)), match)
    assert "xxxxxxxxxx" not in message  # the offending value is never quoted


def test_wrong_types_in_an_atlas_study_and_a_redline_block(tmp_path):
    doc = yaml.safe_load((DATA / "atlas_price_model_clone.yaml").read_text())
    doc["procedure"][0]["technique"] = "T1059"
    _refused(_write(tmp_path, "a.yaml", yaml.safe_dump(doc)), r"procedure\[0\].technique does not match")
    doc = yaml.safe_load((DATA / "atlas_price_model_clone.yaml").read_text())
    doc["procedure"] = []
    _refused(_write(tmp_path, "b.yaml", yaml.safe_dump(doc)), "procedure violates minItems")
    doc = yaml.safe_load((DATA / "atlas_price_model_clone.yaml").read_text())
    doc["x-redline"] = {"mode": "FM42"}
    _refused(_write(tmp_path, "c.yaml", yaml.safe_dump(doc)), "redline block.*mode does not match")
    doc["x-redline"] = {"mode": "FM05", "seed": "zero"}
    _refused(_write(tmp_path, "d.yaml", yaml.safe_dump(doc)), "seed must be of type")


def test_a_redline_case_with_wrong_types_is_refused(tmp_path):
    doc = FailureCase(title="t", mode="FM02").to_dict()
    doc["tags"] = "not-a-list"
    _refused(_write(tmp_path, "c.json", json.dumps(doc)), "tags must be of type array")
    doc = FailureCase(title="t", mode="FM02").to_dict()
    doc["status"] = "closed"
    _refused(_write(tmp_path, "d.json", json.dumps(doc)), "status must be one of")


def test_an_unmappable_file_is_refused_unless_it_names_a_mode(tmp_path):
    doc = _avid()
    doc["impact"]["avid"]["sep_view"] = ["E0301: Toxicity"]  # no failure mode cites it
    message = _refused(_write(tmp_path, "tox.json", json.dumps(doc)), "cannot tell which failure mode")
    assert "E0301" in message
    doc["metrics"] = [{"name": "FM15", "detection_method": {"type": "Static Threshold", "name": "redline FM15"},
                       "results": {"mode": "FM15"}}]
    [case] = import_file(_write(tmp_path, "named.json", json.dumps(doc)))
    assert case.mode == "FM15" and not any(t.startswith("mode-inferred") for t in case.tags)


@pytest.mark.parametrize("text, match", [
    ("", "empty"),
    ("[1, 2", "not valid JSON"),
    ("just a sentence", "must hold a mapping"),
    ("{}", "neither an AVID report"),
    ('{"hello": "world"}', "neither an AVID report"),
    ("[]", "holds no case"),
    ('{"n": 1' + "0" * 20000 + "}", "not valid JSON"),  # an integer too long to convert
    ("key: [unclosed\n", "not valid YAML"),
])
def test_malformed_files_give_one_line(tmp_path, text, match):
    _refused(_write(tmp_path, "f.txt", text), match)


def test_non_utf8_and_odd_paths(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"data_type": "AVID", "x": "\xe9"}')
    _refused(path, "not UTF-8")
    _refused(tmp_path / "missing.json", "does not exist", UsageError)
    _refused(tmp_path, "folder", UsageError)
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    _refused(fifo, "not a regular file", UsageError)  # would block forever if opened


def test_too_many_documents_in_one_file(tmp_path):
    _refused(_write(tmp_path, "many.json", json.dumps([{}] * 1001)), "at most 1,000")


def test_control_characters_in_an_imported_title_do_not_reach_an_error_line(tmp_path):
    doc = _avid()
    doc["problemtype"]["description"]["value"] = "evil\x1b[2J\nsecond line"
    doc["impact"]["avid"]["sep_view"] = []
    message = _refused(_write(tmp_path, "ctl.json", json.dumps(doc)), "cannot tell")
    assert "\x1b" not in message
    [case] = import_file(_write(tmp_path, "ok.json", json.dumps(_avid())))
    case.title = "evil\x1b[2J\nsecond line"
    assert "\x1b" not in export_case(case, "md")


def test_long_references_and_titles_are_handled_in_linear_time(tmp_path):
    doc = _avid()
    doc["references"] = [{"type": "source", "label": "a" + " " * 300_000 + "b", "url": "https://example.org/x"},
                         {"type": "source", "label": "<" * 200_000, "url": "ftp://" + " " * 100_000}]
    doc["problemtype"]["description"]["value"] = "t" + " \t" * 200_000 + "<"
    path = _write(tmp_path, "long.json", json.dumps(doc))
    started = time.monotonic()
    [case] = import_file(path)
    for fmt in ("avid", "atlas", "json", "md"):
        export_case(case, fmt)
    assert time.monotonic() - started < 10


def test_reference_strings_split_into_title_and_url():
    from redline.registry.exchange.block import format_reference, parse_reference

    assert parse_reference("Paper <https://a.org/p>") == ("Paper", "https://a.org/p")
    assert parse_reference("https://a.org/p") == ("https://a.org/p", "https://a.org/p")
    assert parse_reference("x<https://a.org/p>") == ("x<https://a.org/p>", None)  # no space: plain text
    assert parse_reference("a <b> <https://a.org/p>") == ("a <b>", "https://a.org/p")
    assert parse_reference("see <javascript:alert(1)>") == ("see <javascript:alert(1)>", None)
    assert format_reference("Paper", "https://a.org/p") == "Paper <https://a.org/p>"
    assert format_reference("Paper", "ftp://x y") == "Paper (ftp://x y)"
    assert format_reference(None, "https://a.org") == "https://a.org"
