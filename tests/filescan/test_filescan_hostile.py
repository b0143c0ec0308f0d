"""Files that attack the scanner (issue 22) and scan-files on ordinary folders (issue 19).

Every hostile scan runs in a child process capped at 1 GiB of address space and must end
within TIME_LIMIT seconds with a clear verdict: ``error`` (a limit was reached, fail closed)
or the correct ``unsafe``. Without the limits each of these files hangs the scanner or
takes it past the cap."""
from __future__ import annotations

import json
import os
import pickle
import socket
from pathlib import Path

import pytest
from filescan_asm import system
from hostile_files import (
    TIME_LIMIT,
    big_member_zip,
    dict_append_bomb,
    h5_search_bomb,
    joblib_dtype_bomb,
    keras_path_bomb,
    list_bomb,
    mark_bomb,
    memo_bomb,
    nested_zip,
    overlapping_zip,
    preview_bomb,
    run_capped,
)

from redline.cli import main
from redline.errors import UsageError
from redline.filescan import scan_path
from redline.filescan.limits import Limits
from redline.report.sarif import artifact_uri


def scan_json(path: Path, *extra: str, env: dict | None = None):
    out = run_capped(["scan-files", str(path), "--json", *extra], env=env)
    assert out.seconds < TIME_LIMIT
    assert out.returncode in (0, 1), out.stderr
    # reaching the address-space cap would surface as a MemoryError: the bound must come first
    assert "MemoryError" not in out.stdout + out.stderr, out.stdout[-2000:]
    return out


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------ pickles
def test_preview_bomb_is_unsafe_and_fast(tmp_path):
    data = preview_bomb()
    assert len(data) < 1000
    out = scan_json(write(tmp_path, "bomb.pkl", data))
    assert out.verdicts() == {"bomb.pkl": "unsafe"}
    calls = [i["detail"] for i in out.doc["files"][0]["issues"] if i["kind"] == "unsafe-call"]
    assert calls and all(d.startswith("calls os.system(((((") and len(d) < 400 for d in calls), calls
    assert "parse-error" not in out.kinds()


def test_mark_bomb_is_an_error_not_safe(tmp_path):
    out = scan_json(write(tmp_path, "marks.pkl", mark_bomb()))
    assert out.verdicts() == {"marks.pkl": "error"}
    assert "too-large" in out.kinds() and "max_marks" in out.stdout


def test_mark_bomb_without_a_protocol_header_is_still_read_as_a_pickle(tmp_path):
    out = scan_json(write(tmp_path, "marks.txt", mark_bomb(proto=False)))
    assert out.verdicts() == {"marks.txt": "error"}
    assert out.doc["files"][0]["format"] == "pickle"


def test_stack_bomb_ends_in_error(tmp_path):
    out = scan_json(write(tmp_path, "b.pkl", list_bomb()))
    assert out.verdicts() == {"b.pkl": "error"}
    assert "too-large" in out.kinds() and "max_stack" in out.stdout


def test_memo_bomb_ends_in_error(tmp_path):
    """Millions of memo keys; the limit is lowered so that the test stays quick on a busy machine."""
    out = scan_json(write(tmp_path, "b.pkl", memo_bomb(300_000)), env={"REDLINE_SCAN_LIMITS": "max_memo=200000"})
    assert out.verdicts() == {"b.pkl": "error"}
    assert "too-large" in out.kinds() and "max_memo" in out.stdout


def test_memory_guard_stops_a_pickle_that_grows_without_holding_a_stack(tmp_path):
    """Dicts appended to one list: no stack, memo or mark limit applies, memory grows with
    every opcode. The memory guard (lowered here so the test stays fast) stops it."""
    out = scan_json(write(tmp_path, "b.pkl", dict_append_bomb()), env={"REDLINE_SCAN_LIMITS": "max_memory_bytes=96M"})
    assert out.verdicts() == {"b.pkl": "error"} and "max_memory_bytes" in out.stdout


def test_time_guard(tmp_path):
    nones = b"\x80\x02" + b"N0" * 20_000_000 + b"N."  # 40M cheap opcodes: only the clock stops them
    path = write(tmp_path, "b.pkl", nones)
    report = scan_path(path, Limits(max_seconds=1, max_opcodes=10**9))
    assert report.verdict == "error" and any("max_seconds" in i.detail for i in report.issues)


def test_shared_joblib_dtype_fields_are_read_once(tmp_path):
    out = scan_json(write(tmp_path, "model.joblib", joblib_dtype_bomb()))
    assert out.verdicts() == {"model.joblib": "safe"}, out.stdout  # a plain numeric array, read in full
    assert out.doc["files"][0]["format"] == "joblib"


def test_pickle_limits_are_configurable(tmp_path):
    path = write(tmp_path, "list.pkl", pickle.dumps(list(range(3000)), protocol=2))
    assert scan_path(path).verdict == "safe"
    small = Limits(max_opcodes=1000)
    report = scan_path(path, small)
    assert report.verdict == "error" and "max_opcodes" in report.issues[0].detail
    assert main(["scan-files", str(path), "--limit", "max_opcodes=1000"]) == 1
    assert main(["scan-files", str(path), "--limit", "max_opcodes=1M"]) == 0
    os.environ["REDLINE_SCAN_LIMITS"] = "max_opcodes=1000"
    try:
        assert scan_path(path).verdict == "error"
    finally:
        del os.environ["REDLINE_SCAN_LIMITS"]


def test_bad_limit_settings_are_usage_errors():
    with pytest.raises(UsageError, match="max_opcodes"):
        Limits().with_settings(["max_opcode=5"])
    with pytest.raises(UsageError, match="positive number"):
        Limits().with_settings(["max_opcodes=lots"])
    assert Limits().with_settings("max_member_bytes=2G, max_entries=10").max_member_bytes == 2 << 30


# ------------------------------------------------------------------ archives
def test_gigabyte_member_in_a_small_zip(tmp_path):
    data = big_member_zip()
    assert len(data) < 2 << 20
    out = scan_json(write(tmp_path, "big.zip", data))
    assert out.verdicts() == {"big.zip": "error"}
    assert "too-large" in out.kinds() and "max_ratio" in out.stdout


def test_gigabyte_member_can_be_allowed(tmp_path):
    """Raising the ratio and size limits lets the member through in bounded memory... to be
    held it must fit max_member_bytes, which is refused here at 64M instead of 1 GiB."""
    path = write(tmp_path, "big.zip", big_member_zip(usize=256 << 20))
    out = scan_json(path, "--limit", "max_ratio=100000", "--limit", "max_member_bytes=64M")
    assert out.verdicts() == {"big.zip": "error"} and "max_member_bytes" in out.stdout


def test_numeric_npy_members_are_streamed_not_held(tmp_path):
    """np.savez_compressed of zeros has a huge ratio but is harmless: its data is counted, not held."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, w=np.zeros((16, 1 << 20), dtype=np.float32))  # 64 MiB of zeros
    out = scan_json(write(tmp_path, "zeros.npz", buf.getvalue()))
    assert out.verdicts() == {"zeros.npz": "safe"}, out.stdout


@pytest.mark.parametrize("entries", [200, 5000])
def test_overlapping_entries(tmp_path, entries):
    data = overlapping_zip(entries)
    assert len(data) < 1_000_000
    out = scan_json(write(tmp_path, "overlap.zip", data))
    assert out.verdicts() == {"overlap.zip": "error"}
    assert "overlaps the previous member" in out.stdout
    assert out.seconds < 10


def test_entries_sharing_one_extent_are_read_once(tmp_path):
    from filescan_asm import duplicate_central, zip_bytes

    data = zip_bytes({"a.pkl": system("touch /nonexistent")})
    for i in range(300):
        data = duplicate_central(data, "a.pkl", f"{i:05d}".encode())
    out = scan_json(write(tmp_path, "shared.zip", data))
    assert out.verdicts() == {"shared.zip": "unsafe"}  # the payload is still found
    assert "scanned once" in out.stdout


def test_nested_zips(tmp_path):
    data = nested_zip()
    assert len(data) < 300_000
    out = scan_json(write(tmp_path, "nested.zip", data))
    assert out.verdicts()["nested.zip"] == "safe"  # 16**5 harmless leaves, each distinct archive read once
    assert "scanned once" in out.stdout


def test_archive_entry_limit(tmp_path):
    from hostile_files import zip_of

    path = write(tmp_path, "many.zip", zip_of({f"m{i}.pkl": b"\x80\x04N." for i in range(50)}))
    assert scan_path(path).verdict == "safe"
    report = scan_path(path, Limits(max_entries=10))
    assert report.verdict == "error" and any("max_entries" in i.detail for i in report.issues)


def test_keras_config_path_bomb(tmp_path):
    data = keras_path_bomb()
    assert len(data) < 400_000
    out = scan_json(write(tmp_path, "bomb.keras", data))
    assert out.verdicts()["bomb.keras"] == "safe"  # a harmless config, read in full


def test_hdf5_member_json_search_is_bounded(tmp_path):
    # an HDF5 member Keras might read a config from is searched, and the search gives up loudly
    out = scan_json(write(tmp_path, "search.keras", h5_search_bomb(name="assets/extra.h5")))
    assert out.verdicts()["search.keras"] == "error"
    # model.weights.h5 of a .keras archive only fills variables: it is not searched at all
    out = scan_json(write(tmp_path, "weights.keras", h5_search_bomb()))
    assert out.verdicts()["weights.keras"] == "safe"


def test_raw_hdf5_search_stops_at_its_work_limit(monkeypatch):
    """The byte search used without h5py: a file of unfinished configs is given up on, loudly."""
    from redline.filescan import hdf5_format
    from redline.filescan.buffer import Buf

    monkeypatch.setattr(hdf5_format, "_configs_with_h5py", lambda source: None)
    member = h5_search_bomb(blocks=50, depth=50)
    data = member[member.index(b"\x89HDF"):]
    configs, problems = hdf5_format.find_configs(Buf.of(data), None, max_work=100_000)
    assert any("decoded more than 100000 characters" in p for p in problems)
    configs, problems = hdf5_format.find_configs(Buf.of(data), None, max_work=10**12)
    assert not any("decoded more than" in p for p in problems)


def test_keras_config_node_limit(tmp_path):
    path = write(tmp_path, "bomb.keras", keras_path_bomb(depth=10, key=5, width=100))
    assert scan_path(path).verdict == "safe"
    report = scan_path(path, Limits(max_json_nodes=5))
    assert report.verdict == "error" and any("max_json_nodes" in i.detail for i in report.issues)


# ------------------------------------------------------------------ special files and links
@pytest.fixture
def hostile_folder(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    write(root, "good.pkl", pickle.dumps({"w": [1.0]}, protocol=4))
    os.mkfifo(root / "pipe.pkl")
    os.symlink("/dev/zero", root / "zero.pkl")
    os.symlink("/dev/urandom", root / "random.bin")
    outside = write(tmp_path, "outside.pkl", system("touch /nonexistent"))
    os.symlink(outside, root / "link-out.pkl")
    os.symlink(root / "good.pkl", root / "link-in.pkl")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.pkl"))
    yield root
    sock.close()


def test_folder_with_special_files_and_links(hostile_folder):
    out = scan_json(hostile_folder)
    verdicts = out.verdicts()
    assert verdicts["good.pkl"] == "safe" and verdicts["link-in.pkl"] == "safe"
    assert verdicts["pipe.pkl"] == "error" and verdicts["sock.pkl"] == "error"
    skipped = {Path(s["path"]).name: s["reason"] for s in out.doc["skipped"]}
    assert set(skipped) == {"zero.pkl", "random.bin", "link-out.pkl"}
    assert all("--follow-links" in reason for reason in skipped.values())
    assert "special-file" in out.kinds()


def test_follow_links_still_refuses_devices(hostile_folder):
    out = scan_json(hostile_folder, "--follow-links")
    verdicts = out.verdicts()
    assert verdicts["zero.pkl"] == "error" and verdicts["random.bin"] == "error"
    assert verdicts["link-out.pkl"] == "unsafe"  # followed on request, and scanned
    assert out.doc["skipped"] == []


def test_strict_makes_unfollowed_links_errors(hostile_folder):
    out = scan_json(hostile_folder, "--strict")
    assert out.verdicts()["link-out.pkl"] == "error" and out.doc["skipped"] == []


def test_named_fifo_and_device_do_not_block(hostile_folder):
    for name in ("pipe.pkl", "zero.pkl"):
        out = scan_json(hostile_folder / name)
        assert out.verdicts() == {name: "error"}
        assert "special-file" in out.kinds()


def test_proc_files_are_read_to_their_stated_size(tmp_path):
    report = scan_path("/proc/self/status")
    assert report.verdict in ("safe", "error")  # a zero-size file: nothing to load, and no endless read


# ------------------------------------------------------------------ ordinary folders (issue 19 item 5)
@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "runs" / "out").mkdir(parents=True)
    write(root, "model.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=4))
    write(root, "plot.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    write(root, "train.log", b"epoch 1 loss 0.5\nepoch 2 loss 0.4\n")
    write(root / "runs" / "out", "events.jsonl", b'{"event": "scan_started"}\n{"event": "scan_finished"}\n')
    write(root, "package.json", b'{"name": "x", "version": "1"}')
    write(root, "README.md", b"# notes\n")
    # model content under names that do not say so: never skipped
    write(root, "weights.dat", pickle.dumps([1, 2, 3], protocol=2))
    write(root, "notes.txt", system("touch /nonexistent", proto=0))
    write(root, "empty.pt", b"")
    write(root, "architecture.json", json.dumps({"class_name": "Sequential", "config": {"layers": []}}).encode())
    return root


def test_real_folder_lists_non_model_files_as_skipped(project, capsys):
    assert main(["scan-files", str(project), "--json"]) == 1  # notes.txt is a payload
    doc = json.loads(capsys.readouterr().out)
    scanned = {Path(f["path"]).name: f["verdict"] for f in doc["files"]}
    assert scanned == {"model.pkl": "safe", "weights.dat": "safe", "notes.txt": "unsafe", "empty.pt": "safe",
                       "architecture.json": "safe"}
    skipped = {Path(s["path"]).name for s in doc["skipped"]}
    assert skipped == {"plot.png", "train.log", "events.jsonl", "package.json", "README.md"}
    assert doc["summary"] == {"scanned": 5, "safe": 4, "unsafe": 1, "error": 0, "skipped": 5}
    assert all(set(f) >= {"path", "format", "verdict", "issues"} for f in doc["files"])


def test_real_folder_table_and_exit_code(project, capsys):
    (project / "notes.txt").unlink()
    assert main(["scan-files", str(project)]) == 0
    table = capsys.readouterr().out
    assert "SKIPPED" in table and "plot.png" in table
    assert "4 file(s): 4 safe, 0 unsafe, 0 error, 5 skipped" in table


def test_strict_treats_unknown_files_as_errors(project, capsys):
    assert main(["scan-files", str(project), "--json", "--strict"]) == 1
    doc = json.loads(capsys.readouterr().out)
    verdicts = {Path(f["path"]).name: f["verdict"] for f in doc["files"]}
    assert verdicts["plot.png"] == "error" and verdicts["train.log"] == "error"
    assert doc["skipped"] == [] and doc["summary"]["skipped"] == 0


def test_files_named_explicitly_are_never_skipped(project, capsys):
    assert main(["scan-files", str(project / "plot.png"), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][0]["verdict"] == "error" and doc["skipped"] == []


# ------------------------------------------------------------------ SARIF
def test_sarif_uri_is_percent_encoded(tmp_path, capsys):
    path = write(tmp_path, "a b#1%?.pkl", system("touch /nonexistent"))
    assert main(["scan-files", str(path), "--format", "sarif"]) == 1
    doc = json.loads(capsys.readouterr().out)
    uri = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.startswith("file:///") and uri.endswith("/a%20b%231%25%3F.pkl")
    assert artifact_uri("dir/x y.pkl") == "dir/x%20y.pkl"
    assert artifact_uri("C:\\m\\a b.pkl") == "file:///C:/m/a%20b.pkl"


# ------------------------------------------------------------------ a fuzz run under the same ceilings
FUZZ = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from hypothesis import given, settings, HealthCheck, strategies as st
from hostile_files import (preview_bomb, nested_zip, overlapping_zip, keras_path_bomb, joblib_dtype_bomb,
                           h5_search_bomb, big_member_zip)
from filescan_asm import system, zip_bytes
from redline.filescan import scan_path
import tempfile, os

import gzip, pickle
SEEDS = [preview_bomb(60), nested_zip(4, 3), overlapping_zip(8, 1 << 20), keras_path_bomb(50, 20, 50),
         zip_bytes({"a/data.pkl": system("id"), "a/version": b"3\n"}), b"\x80\x02" + b"(" * 5000 + b"N.",
         gzip.compress(pickle.dumps({"w": list(range(50))}, protocol=2)), joblib_dtype_bomb(6),
         h5_search_bomb(3, 5), big_member_zip(4 << 20)]
folder = tempfile.mkdtemp()
slowest = 0.0

@settings(max_examples=int(sys.argv[2]), deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(st.sampled_from(range(len(SEEDS))), st.integers(0, 1 << 20), st.binary(min_size=1, max_size=16))
def fuzz(seed, where, patch):
    global slowest
    data = SEEDS[seed]
    where %= len(data)
    data = data[:where] + patch + data[where + len(patch):]
    path = os.path.join(folder, "f.bin")
    with open(path, "wb") as handle:
        handle.write(data)
    started = time.monotonic()
    verdict = scan_path(path).verdict
    slowest = max(slowest, time.monotonic() - started)
    assert verdict in ("safe", "unsafe", "error")

fuzz()
print(f"slowest {slowest:.2f}")
"""


def test_fuzzed_hostile_files_under_ceilings():
    here = str(Path(__file__).parent)
    out = run_capped([here, "120"], timeout=180, script=FUZZ)
    assert out.returncode == 0, out.stderr[-3000:]
    slowest = float(out.stdout.split()[-1])
    assert slowest < 10, out.stdout
