"""The model under test behind one small interface (see :mod:`redline.targets.base`).

Importing this package is cheap: every name below is imported on first use, so the adapters
that need torch, scikit-learn or onnxruntime load them only when one is used, and the adapter
table (:mod:`redline.targets.adapters`) can be read without numpy. ``load_target`` is the
entry point for everything else.
"""

from __future__ import annotations

import importlib
from typing import Any

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

# Where each name lives, imported on first access: the adapters import heavy frameworks,
# and even the base needs numpy, which the CLI's start-up (it reads the adapter table) avoids.
_HOMES = {
    "Capabilities": ".base",
    "FeatureConstraints": ".base",
    "InputSpec": ".base",
    "QueryLedger": ".base",
    "Target": ".base",
    "TargetConfig": ".config",
    "load_target_config": ".config",
    "load_target": ".resolve",
    "CallableTarget": ".callable",
    "HttpTarget": ".http",
    "OnnxTarget": ".onnx",
    "SklearnTarget": ".sklearn",
    "TorchTarget": ".torch",
}


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'redline.targets' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
