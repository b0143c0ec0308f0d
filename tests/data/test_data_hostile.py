"""CSV and npz readers on hostile files: linear in the header, bounded, fuzzed."""

from __future__ import annotations

import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redline.data import load_data
from redline.errors import DataError, UsageError

_CSV_ALPHABET = st.sampled_from(list("ab,y\"\n\r 0123456789.-e?\t;") + ["nan", "inf", "\ufeff", "\x00"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_CSV_ALPHABET, max_size=300).map("".join))
def test_fuzz_csv_reads_or_is_a_data_error(tmp_path, text):
    path = tmp_path / "fuzz.csv"
    path.write_text("a,b,y\n" + text, encoding="utf-8")
    started = time.perf_counter()
    try:
        load_data(f"csv:{path}#label=y")
    except (DataError, UsageError) as exc:
        assert "\n" not in str(exc)
    assert time.perf_counter() - started < 2.0


def test_duplicate_columns_in_a_wide_header_are_found_quickly(tmp_path):
    names = [f"c{i}" for i in range(50_000)] + ["c7", "y"]
    path = tmp_path / "dup.csv"
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n", encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(DataError, match="duplicate column names c7$"):
        load_data(f"csv:{path}#label=y")
    assert time.perf_counter() - started < 5


def test_missing_label_message_lists_few_columns(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i}" for i in range(1000)) + "\n" + ",".join("1" * 1000) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_data(f"csv:{path}#label=y")
    assert "(1000 columns)" in str(err.value) and len(str(err.value)) < 400


def test_csv_byte_limit(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text("a,y\n" + "1,0\n2,1\n" * 100, encoding="utf-8")
    monkeypatch.setenv("REDLINE_MAX_DATA_BYTES", "100")
    with pytest.raises(DataError, match="over the limit of 100"):
        load_data(f"csv:{path}#label=y")
    monkeypatch.setenv("REDLINE_MAX_DATA_BYTES", "lots")
    with pytest.raises(DataError, match="not a whole number"):
        load_data(f"csv:{path}#label=y")


def test_npz_with_object_arrays_or_too_many_members_is_refused(tmp_path, monkeypatch):
    objects = tmp_path / "obj.npz"
    np.savez(objects, x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match="object arrays"):
        load_data(f"npz:{objects}")
    many = tmp_path / "many.npz"
    np.savez(many, **{f"a{i}": np.zeros(1) for i in range(5)})
    monkeypatch.setenv("REDLINE_MAX_NPZ_MEMBERS", "4")
    with pytest.raises(DataError, match="holds 5 arrays"):
        load_data(f"npz:{many}")


def test_npz_member_that_is_not_npy_is_refused(tmp_path):
    path = tmp_path / "junk.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x.npy", b"not an array")
    with pytest.raises(DataError, match="is not a .npy array"):
        load_data(f"npz:{path}")
