"""Static scanning of model files (FM09, ML supply chain).

``scan_path(path)`` reads a file the way model loaders would (pickle, PyTorch, joblib, numpy,
zip, Keras, ONNX, safetensors, TensorFlow SavedModel...) without importing or running anything
it contains, and says whether loading it is ``safe``, ``unsafe`` or could not be vouched for
(``error``). Only the standard library is used.
"""
from __future__ import annotations

from typing import Any

__all__ = ["FileReport", "Issue", "Limits", "scan_path", "scan_paths", "scan_tree"]


def __getattr__(name: str) -> Any:  # lazy, so that `redline scan-files --help` starts fast
    if name in ("scan_path", "scan_paths", "scan_tree", "Limits"):
        from . import scanner

        return getattr(scanner, name)
    if name in ("FileReport", "Issue"):
        from . import report

        return getattr(report, name)
    raise AttributeError(f"module 'redline.filescan' has no attribute {name!r}")
