"""Fixtures for the target adapter tests: small data, small models, ONNX export, scanner control."""

from __future__ import annotations

import io
import types
import warnings

import numpy as np
import pytest

from redline.targets import gate


@pytest.fixture(autouse=True)
def without_scanner(monkeypatch):
    """Gate tests must not depend on whether redline.filescan is finished: use the fallback.

    Tests that need a scanner install one with ``fake_scanner``.
    """
    monkeypatch.setattr(gate, "_scanner", lambda: None)


@pytest.fixture
def fake_scanner(monkeypatch):
    """Install a stand-in scanner answering ``verdict`` for every file."""

    def install(verdict: str, detail: str = "opcode GLOBAL os.system") -> list:
        scanned = []
        issue = types.SimpleNamespace(severity="critical", kind="code-execution", detail=detail)

        def scan_path(path):
            scanned.append(path)
            return types.SimpleNamespace(verdict=verdict, format="pickle", issues=[] if verdict == "safe" else [issue])

        module = types.SimpleNamespace(scan_path=scan_path)
        monkeypatch.setattr(gate, "_scanner", lambda: module)
        return scanned

    return install


@pytest.fixture
def tabular():
    """Three well separated classes in six features."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=2.0, size=(3, 6))
    y = rng.integers(0, 3, size=240)
    x = centres[y] + rng.normal(size=(240, 6))
    return x, y


def export_onnx(module, example, *, dynamic: bool = True, opset: int = 17) -> bytes:
    """Export with torch's TorchScript-based exporter (the dynamo one needs onnxscript)."""
    import torch

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "n"}, "y": {0: "n"}} if dynamic else None,
        )
    return buffer.getvalue()


@pytest.fixture
def onnx_export():
    return export_onnx
