"""Where the bypass fixes (issue 21) meet the scanner's own limits (issue 22): each test here
covers a behaviour that only exists because both are present."""
from __future__ import annotations

import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest
from filescan_asm import BUILD, EMPTY_DICT, MARK, POP, PROTO, REDUCE, STOP, binget, binput, glob, sstr
from hostile_files import TIME_LIMIT, run_capped
from test_filescan_formats import _onnx_model

from redline.filescan import scan_path, scan_tree
from redline.filescan.limits import Limits

LAMBDA_CONFIG = json.dumps([{"class_name": "Lambda", "config": {"function": "abc"}}]).encode()


def _safe_tar(name_field: bytes) -> bytes:
    """A tar holding one harmless pickle, whose first header's name field is ``name_field``."""
    out = io.BytesIO()
    payload = PROTO(2) + b"K\x01" + STOP
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("x.pkl")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    data = bytearray(out.getvalue())
    data[0:100] = name_field + bytes(100 - len(name_field))
    data[148:156] = b"        "
    data[148:156] = f"{sum(data[:512]):06o}\x00 ".encode()
    return bytes(data)


def test_a_pickle_reading_stopped_by_a_limit_is_not_taken_for_no_pickle(tmp_path):
    path = tmp_path / "archive.tar"
    path.write_bytes(_safe_tar(MARK * 20))  # protocol 0 needs no header: the tar is recognised first
    # read as a pickle the header runs into a zero byte: not a pickle, the tar is safe
    assert scan_path(path).verdict == "safe"
    # with fewer MARKs allowed the same reading stops at the limit before it can tell: fail closed
    report = scan_path(path, Limits(max_marks=5))
    assert report.verdict == "error"
    assert any("may also be a pickle" in n for n in report.notes)
    assert any(i.kind == "too-large" and "max_marks" in i.detail for i in report.issues)


def test_trial_pickle_readings_run_on_the_file_clock():
    from redline.filescan.buffer import Buf
    from redline.filescan.limits import Budget
    from redline.filescan.pickles import looks_like_pickle, stopped_by_limit

    stream = Buf.of(PROTO(2) + b"N0" * 40_000 + b"N" + STOP)  # 80,000 opcodes: one clock check
    assert looks_like_pickle(stream, Limits(max_seconds=1)).end is not None
    spent = Budget(Limits(max_seconds=1))
    spent.started -= 10  # the file's scan has already used its time
    assert stopped_by_limit(looks_like_pickle(stream, Limits(max_seconds=1), spent))


def _rebuild_bomb(keys: int, builds: int, key: str = "k{}") -> bytes:
    """One dict state of ``keys`` entries BUILT onto the same object ``builds`` times."""
    holder = glob("collections", "OrderedDict") + b")" + REDUCE + binput(0)
    state = EMPTY_DICT + MARK + b"".join(sstr(key.format(i)) + b"N" for i in range(keys)) + b"u" + binput(1) + POP
    return PROTO(2) + holder + state + (binget(0) + binget(1) + BUILD + POP) * builds + STOP


def test_one_big_state_built_many_times_costs_its_size_once(tmp_path):
    path = tmp_path / "rebuild.pkl"
    path.write_bytes(_rebuild_bomb(200_000, 200_000))
    out = run_capped(["scan-files", str(path), "--json"])
    assert out.seconds < TIME_LIMIT and out.returncode == 0, out.stderr
    assert out.verdicts() == {"rebuild.pkl": "safe"}
    # the keys are still checked: a special attribute in the state is found
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(_rebuild_bomb(10, 3, key="__k{}__"))
    report = scan_path(bad)
    assert report.verdict == "unsafe" and any(i.kind == "attribute-write" for i in report.issues)


def test_a_joblib_dtype_that_contains_itself_is_refused():
    from redline.filescan.joblib_arrays import dtype_layout
    from redline.filescan.pickle_vm import PickleError
    from redline.filescan.values import Obj, PDict, Ref

    dtype = Obj("dtype", cls=Ref("numpy", "dtype", None), args=("V8", False, True))
    dtype.state = (3, "|", None, ("a",), PDict([("a", (dtype, 0))]), 8, 1, 0)
    with pytest.raises(PickleError, match="contains itself"):
        dtype_layout(dtype)


def _zip_with_shared_bytes(first: str, second: str, content: bytes) -> bytes:
    """Two central-directory entries that both point at the local entry of ``first``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(first, content)
        archive.writestr(second, content)
    data = bytearray(out.getvalue())
    central = data.find(b"PK\x01\x02")
    other = data.find(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, other + 42, 0)  # its local header offset: the first entry's
    return bytes(data)


def test_shared_bytes_are_read_once_per_way_the_loader_reads_them(tmp_path):
    path = tmp_path / "model.zip"
    path.write_bytes(_zip_with_shared_bytes("a.json", "config.json", LAMBDA_CONFIG))
    # a.json is plain JSON; the same bytes as config.json are a Keras config with a code layer
    report = scan_path(path)
    assert report.verdict == "unsafe" and any(i.kind == "code-layer" for i in report.issues)


def test_an_oversized_config_json_is_reported_and_the_archive_read_on(tmp_path):
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps({"pad": "x" * 5000}))
        archive.writestr("z.pkl", PROTO(2) + glob("os", "system") + sstr("id") + b"\x85" + REDUCE + STOP)
    report = scan_path(path, Limits(max_json_bytes=1000))
    assert any(i.kind == "too-large" and "config.json" in i.detail for i in report.issues)
    assert report.verdict == "unsafe"  # the member after it was still scanned


def _folder(tmp_path: Path, with_model: bool) -> Path:
    folder = tmp_path / ("with" if with_model else "without")
    folder.mkdir()
    (folder / "w.data").write_bytes(struct.pack("<f", 1.0))
    if with_model:
        (folder / "model.onnx").write_bytes(_onnx_model("w.data"))
    return folder


def test_folder_scan_adopts_onnx_external_data(tmp_path):
    tree = scan_tree([_folder(tmp_path, with_model=True)], strict=True)
    formats = {Path(r.path).name: (r.format, r.verdict) for r in tree.reports}
    assert formats == {"model.onnx": ("onnx", "safe"), "w.data": ("onnx-external-data", "safe")}
    assert tree.skipped == []
    # the same raw bytes with no model naming them are not a model file
    alone = _folder(tmp_path, with_model=False)
    assert [Path(s["path"]).name for s in scan_tree([alone]).skipped] == ["w.data"]
    assert [r.verdict for r in scan_tree([alone], strict=True).reports] == ["error"]


# ------------------------------------------------------------------ found while merging
def test_text_numbers_longer_than_python_converts_are_a_bad_int_not_a_crash(tmp_path):
    from redline.filescan.pickle_vm import PickleError, _parse_int

    with pytest.raises(PickleError, match="bad INT"):
        _parse_int(b"1" * 5000, 0)  # CPython: strtol overflows, int() refuses 4,300+ digits
    assert _parse_int(b"0" * 5000 + b"7", 0) == 7  # strtol skips leading zeros (octal 7)
    path = tmp_path / "long.pkl"
    path.write_bytes(PROTO(2) + b"I" + b"1" * 5000 + b"\n" + STOP)
    assert scan_path(path).verdict == "error"


def test_a_hidden_local_header_claiming_data_past_the_end_is_an_error_not_a_crash(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("x.pkl", PROTO(2) + b"K\x01" + STOP)
    data = bytearray(out.getvalue())
    # an unlisted local header between the member and the directory whose name length puts
    # its data 64 KiB past the end of the file
    hidden = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0, 0, 10, 10, 0xFFFF, 0)
    central = data.find(b"PK\x01\x02")
    data[central:central] = hidden
    struct.pack_into("<I", data, len(data) - 6, central + len(hidden))
    for name, content in (("far.zip", bytes(data)), ("far.bin", b"not a model; " + bytes(data))):
        path = tmp_path / name  # the second is read as an appended zip, outside the format readers
        path.write_bytes(content)
        report = scan_path(path)
        assert report.verdict == "error"
        assert not any("ValueError" in i.detail for i in report.issues), report.issues


def _joblib_naming_modules(count: int) -> bytes:
    """A joblib file with one empty inline array, then ``count`` globals of made-up modules."""
    state = (EMPTY_DICT + MARK + sstr("subclass") + glob("numpy", "ndarray") + sstr("shape") + b"K\x00\x85"
             + sstr("order") + sstr("C") + sstr("dtype") + glob("numpy", "dtype") + sstr("f8") + b"\x89\x88"
             + b"\x87" + REDUCE + sstr("allow_mmap") + b"\x89" + b"u")
    wrapper = glob("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + BUILD + POP
    names = b"".join(glob(f"zq{i}", "x") + POP for i in range(count))
    return PROTO(2) + wrapper + names + b"N" + STOP


def test_module_lookups_for_joblib_plain_reading_are_bounded(tmp_path):
    path = tmp_path / "names.joblib"
    path.write_bytes(_joblib_naming_modules(400_000))
    out = run_capped(["scan-files", str(path), "--json"])
    assert out.seconds < TIME_LIMIT and out.returncode in (0, 1), out.stderr
    assert out.verdicts() == {"names.joblib": "unsafe"}
