"""The model under test behind one small interface (see :mod:`redline.targets.base`).

Importing this package is cheap: the adapters that need torch, scikit-learn or onnxruntime
load them only when one is used. ``load_target`` is the entry point for everything else.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import (
    Capabilities,
    FeatureConstraints,
    InputSpec,
    QueryLedger,
    Target,
)
from .config import TargetConfig, load_target_config
from .resolve import load_target

__all__ = [
    "CallableTarget",
    "Capabilities",
    "FeatureConstraints",
    "HttpTarget",
    "InputSpec",
    "OnnxTarget",
    "QueryLedger",
    "SklearnTarget",
    "Target",
    "TargetConfig",
    "TorchTarget",
    "load_target",
    "load_target_config",
]

# Adapters, imported on first access because some of them import heavy frameworks.
_ADAPTERS = {
    "CallableTarget": ".callable",
    "HttpTarget": ".http",
    "OnnxTarget": ".onnx",
    "SklearnTarget": ".sklearn",
    "TorchTarget": ".torch",
}


def __getattr__(name: str) -> Any:
    module = _ADAPTERS.get(name)
    if module is None:
        raise AttributeError(f"module 'redline.targets' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
