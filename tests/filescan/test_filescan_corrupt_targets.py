"""Issue 19 item 8: a corrupt or truncated model file given to `redline scan` is an input error
(exit 2, one line naming the file and what is wrong), never a finding-less pass."""
from __future__ import annotations

import io
import zipfile

import pytest

from redline.cli import main


def _skops_bytes() -> bytes:
    skops_io = pytest.importorskip("skops.io")
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=50).fit([[0.0, 1.0], [1.0, 0.0], [0.5, 0.2], [0.1, 0.9]], [0, 1, 1, 0])
    return skops_io.dumps(model)


def _torchscript_bytes() -> bytes:
    torch = pytest.importorskip("torch")
    module = torch.jit.trace(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)), torch.zeros(1, 64))
    out = io.BytesIO()
    torch.jit.save(module, out)
    return out.getvalue()


def _random_bytes(n: int = 4000) -> bytes:
    import random

    return random.Random(0).randbytes(n)


CASES = {
    "onnx:corrupt.onnx": _random_bytes,
    "sklearn:truncated.skops": lambda: _skops_bytes()[: len(_skops_bytes()) // 2],
    "torch:truncated.pt": lambda: _torchscript_bytes()[:-200],
}


@pytest.mark.parametrize("spec", sorted(CASES))
def test_corrupt_model_file_is_an_input_error(spec, tmp_path, monkeypatch, capsys):
    name = spec.split(":", 1)[1]
    (tmp_path / name).write_bytes(CASES[spec]())
    monkeypatch.chdir(tmp_path)
    assert main(["scan", spec, "--data", "builtin:digits", "--select", "FM09,FM01"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"redline: error: {name}: not loaded") and "cannot be read to its end" in lines[0]
    assert "Traceback" not in captured.err


def test_intact_files_still_pass_the_gate(tmp_path):
    """The negative control: the untruncated archives are read as safe by the same scan."""
    from redline.filescan import scan_path

    (tmp_path / "ok.skops").write_bytes(_skops_bytes())
    (tmp_path / "ok.pt").write_bytes(_torchscript_bytes())
    assert scan_path(tmp_path / "ok.skops").verdict == "safe"
    assert scan_path(tmp_path / "ok.pt").verdict == "safe"
    assert zipfile.is_zipfile(tmp_path / "ok.pt")


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_special_file_targets_do_not_block(special, tmp_path, monkeypatch, capsys):
    import os

    monkeypatch.chdir(tmp_path)  # the scan's default --out is relative
    path = special
    if special == "fifo":
        path = str(tmp_path / "model.onnx")
        os.mkfifo(path)
    assert main(["scan", f"onnx:{path}", "--data", "builtin:digits", "--select", "FM09"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "is not read: only regular files are scanned" in err[0]
