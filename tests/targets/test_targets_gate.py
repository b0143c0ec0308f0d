"""The load gate: scanner verdicts when a scanner exists, a small format allowlist when not."""

from __future__ import annotations

import json
import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from redline.errors import TargetError, UnsafeModelError
from redline.targets import formats
from redline.targets.gate import require_safe


class Payload:
    def __reduce__(self):  # what a malicious pickle does: call something at load time
        return (print, ("pwned",))


@pytest.fixture
def onnx_file(tmp_path):
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
    )
    path = tmp_path / "model.bin"  # no telling extension: content decides
    path.write_bytes(helper.make_model(g).SerializeToString())
    return path


def test_pickle_is_refused_without_scanner(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Payload()))
    assert formats.detect_format(path) == formats.PICKLE
    with pytest.raises(UnsafeModelError, match="refused to load a pickle file.*scanner"):
        require_safe(path)


def test_torch_save_archive_is_refused_without_scanner(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    assert formats.detect_format(path) == formats.TORCH_PICKLE
    with pytest.raises(UnsafeModelError, match="torch-pickle"):
        require_safe(path)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_is_refused_without_scanner(tmp_path):
    path = tmp_path / "model.bin"
    torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)).save(str(path))
    assert formats.detect_format(path) == formats.TORCHSCRIPT
    with pytest.raises(UnsafeModelError, match="torchscript"):
        require_safe(path)


def test_onnx_is_accepted_without_scanner(onnx_file):
    assert formats.detect_format(onnx_file) == formats.ONNX
    require_safe(onnx_file)


def test_skops_and_safetensors_are_accepted_without_scanner(tmp_path):
    skops = tmp_path / "model.skops"
    with zipfile.ZipFile(skops, "w") as z:
        z.writestr("schema.json", "{}")
    header = json.dumps({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    safetensors = tmp_path / "model.safetensors"
    safetensors.write_bytes(struct.pack("<Q", len(header)) + header + np.zeros(1, np.float32).tobytes())
    assert formats.detect_format(skops) == formats.SKOPS
    assert formats.detect_format(safetensors) == formats.SAFETENSORS
    require_safe(skops)
    require_safe(safetensors)


def test_unknown_content_is_refused_without_scanner(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"\x00\x01garbage")
    with pytest.raises(UnsafeModelError, match="unknown"):
        require_safe(path)


def test_missing_file_is_a_target_error(tmp_path):
    with pytest.raises(TargetError, match="no such model file"):
        require_safe(tmp_path / "absent.onnx")


def test_scanner_verdict_decides_when_present(tmp_path, onnx_file, fake_scanner):
    scanned = fake_scanner("unsafe", detail="external data escapes the model folder")
    with pytest.raises(UnsafeModelError) as err:
        require_safe(onnx_file)
    assert str(onnx_file) in str(err.value) and "unsafe" in str(err.value)
    assert "external data escapes the model folder" in str(err.value)
    assert scanned == [onnx_file]


def test_scanner_error_verdict_is_refused(onnx_file, fake_scanner):
    fake_scanner("error")
    with pytest.raises(UnsafeModelError, match="scan verdict error"):
        require_safe(onnx_file)


def test_scanner_can_clear_formats_the_fallback_refuses(tmp_path, fake_scanner):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"plain": "data"}))
    fake_scanner("safe")
    require_safe(path)  # the scanner looked inside and found nothing that runs
