"""The corpus is made of working exploits: a few payloads are loaded by the real loaders in a
child process (never in the test process) to show that they do create the canary, while the
scanner flags every one of them."""
import subprocess
import sys
import textwrap

import pytest
from filescan_asm import (
    MARK,
    MEMOIZE,
    PROTO,
    REDUCE,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    binget,
    call,
    glob,
    patch_member,
    sstr,
    stack_global,
    system,
    ustr,
)
from test_filescan_archives import _joblib_wrapper, object_npy, torch_zip

from redline.filescan import scan_path


def load_in_child(folder, code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=folder, capture_output=True, timeout=120, check=False)


def payloads(command: str) -> dict:
    memo = (PROTO(4) + sstr("os") + MEMOIZE + b"0" + sstr("system") + MEMOIZE + b"0" + binget(0) + binget(1)
            + STACK_GLOBAL + MARK + ustr(command) + TUPLE + REDUCE + STOP)
    body = call(glob("os", "system"), ustr(command)) + STOP
    return {
        "plain.pkl": system(command),
        "memo.pkl": memo,
        "dotted.pkl": PROTO(4) + call(stack_global("gettext", "os.system"), ustr(command)) + STOP,
        "straddle.pkl": PROTO(4) + b"\x95" + (5).to_bytes(8, "little") + body,
        "broken.pkl": PROTO(2) + call(glob("os", "system"), ustr(command)) + b"\xff garbage",
    }


@pytest.mark.parametrize("name", ["plain.pkl", "memo.pkl", "dotted.pkl", "straddle.pkl", "broken.pkl"])
def test_pickle_payloads_are_live(tmp_path, name):
    canary = tmp_path / "CANARY"
    (tmp_path / name).write_bytes(payloads(f"touch {canary}")[name])
    assert scan_path(tmp_path / name).verdict == "unsafe"
    assert not canary.exists()
    load_in_child(tmp_path, f"import pickle; pickle.load(open({name!r}, 'rb'))")
    assert canary.exists(), "the payload should work against pickle.load"


def test_numpy_object_array_is_live(tmp_path):
    canary = tmp_path / "CANARY"
    (tmp_path / "x.npy").write_bytes(object_npy(system(f"touch {canary}")))
    assert scan_path(tmp_path / "x.npy").verdict == "unsafe"
    load_in_child(tmp_path, "import numpy; numpy.load('x.npy', allow_pickle=True)")
    assert canary.exists()


def test_joblib_object_array_is_live(tmp_path):
    pytest.importorskip("joblib")
    canary = tmp_path / "CANARY"
    data = PROTO(2) + MARK + _joblib_wrapper("O8", b"K\x01\x85", 63) + system(f"touch {canary}") + b"l" + STOP
    (tmp_path / "m.joblib").write_bytes(data)
    assert scan_path(tmp_path / "m.joblib").verdict == "unsafe"
    load_in_child(tmp_path, "import joblib; joblib.load('m.joblib')")
    assert canary.exists()


def test_torch_ignores_a_bad_crc(tmp_path):
    pytest.importorskip("torch")
    canary = tmp_path / "CANARY"
    data = patch_member(torch_zip(system(f"touch {canary}")), "archive/data.pkl", crc=0xDEADBEEF)
    (tmp_path / "m.pt").write_bytes(data)
    report = scan_path(tmp_path / "m.pt")
    assert report.verdict == "unsafe" and any("CRC" in i.detail for i in report.issues)
    load_in_child(tmp_path, "import torch; torch.load('m.pt', weights_only=False)")
    assert canary.exists(), "PyTorch loads members whose CRC is wrong"
