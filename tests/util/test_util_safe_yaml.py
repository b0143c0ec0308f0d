"""util.safe_yaml: bounded size, depth and alias expansion; one-line errors; fuzzed."""

from __future__ import annotations

import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redline.errors import UsageError
from redline.util.safe_yaml import YamlLimits, load_yaml_file, load_yaml_text


def test_ordinary_documents_load_as_safe_load_does():
    text = "a: 1\nb: [x, {c: 2.5}]\nd: &d {k: v}\ne: *d\nf:\n  <<: *d\n  g: null\n"
    assert load_yaml_text(text, "doc") == yaml.safe_load(text)
    assert load_yaml_text("", "doc") is None


def test_limits_are_enforced_and_named():
    small = YamlLimits(max_bytes=100, max_depth=3, max_values=10)
    with pytest.raises(UsageError, match="larger than 100 bytes"):
        load_yaml_text("a: " + "x" * 200, "doc", small)
    with pytest.raises(UsageError, match="nested more than 3 levels"):
        load_yaml_text("[[[[1]]]]", "doc", small)
    assert load_yaml_text("[[1]]", "doc", small) == [[1]]
    with pytest.raises(UsageError, match="more than 10 values"):
        load_yaml_text("a: &a [1, 2, 3]\nb: [*a, *a, *a]", "doc", small)
    with pytest.raises(UsageError, match="refers to a collection containing it"):
        load_yaml_text("a: &a {b: *a}", "doc")


def test_python_tags_are_still_refused():
    with pytest.raises(UsageError, match="not valid YAML"):
        load_yaml_text("!!python/object/apply:os.system ['true']", "doc")


def test_errors_are_one_line_with_the_place(tmp_path):
    with pytest.raises(UsageError) as err:
        load_yaml_text("a: [1,\n b: }", "system description s.yaml")
    assert "\n" not in str(err.value) and "(line 2" in str(err.value)
    with pytest.raises(UsageError, match="not a regular file"):
        load_yaml_file("/dev/zero", "context file")
    with pytest.raises(UsageError, match="is a folder|not a regular file"):
        load_yaml_file(tmp_path, "context file")
    (tmp_path / "bad.yaml").write_bytes(b"a: \xff\xfe")
    with pytest.raises(UsageError, match="not UTF-8"):
        load_yaml_file(tmp_path / "bad.yaml", "context file")


def test_a_file_larger_than_the_limit_is_not_read_whole(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"a: " + b"x" * (1 << 20))
    with pytest.raises(UsageError, match="larger than"):
        load_yaml_file(path, "doc", YamlLimits(max_bytes=1000))


_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_VALUES = st.recursive(
    _SCALARS, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
    max_leaves=40,
)


@settings(max_examples=200, deadline=None)
@given(_VALUES)
def test_round_trip_of_ordinary_data(value):
    assert load_yaml_text(yaml.safe_dump(value), "doc") == value


_YAML_ALPHABET = st.sampled_from(list("ab:-[]{},&*! \n\t'\"|>#%@`?0123456789.") + ["*a", "&a ", "<<: "])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_YAML_ALPHABET, max_size=200).map("".join) | st.text(max_size=200))
def test_fuzz_any_text_loads_or_is_a_usage_error_quickly(text):
    started = time.perf_counter()
    try:
        load_yaml_text(text, "fuzz")
    except UsageError as exc:
        assert "\n" not in str(exc)
    assert time.perf_counter() - started < 2.0
