"""util.safe_text: control and bidi characters become visible escapes; JSON keeps its meaning."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from redline.util.safe_text import UNSAFE_CHARACTERS, echo, one_line, terminal_text


def test_escapes_are_visible_and_layout_is_kept():
    assert terminal_text("a\x1b[31mb") == "a\\x1b[31mb"
    assert terminal_text("x\u202ey") == "x\\u202ey"
    assert terminal_text("x\x9by\x7f") == "x\\u009by\\u007f"
    assert terminal_text("line\r") == "line\\x0d"
    assert terminal_text("keep\ttabs\nand lines") == "keep\ttabs\nand lines"
    assert terminal_text(42) == "42"
    assert one_line("two\nlines\x1b") == "two lines\\x1b"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_nothing_unsafe_survives(text):
    assert not UNSAFE_CHARACTERS.search(terminal_text(text))
    assert not UNSAFE_CHARACTERS.search(one_line(text))


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.text() | st.integers(), lambda kids: st.lists(kids) | st.dictionaries(st.text(), kids)))
def test_json_stays_json_with_the_same_meaning(value):
    for ensure_ascii in (True, False):
        encoded = json.dumps(value, ensure_ascii=ensure_ascii)
        assert json.loads(terminal_text(encoded)) == value


def test_echo_prints_escaped(capsys):
    echo("SAFE\x1b[2K")
    assert capsys.readouterr().out == "SAFE\\x1b[2K\n"
