"""Keras model configurations (``config.json`` of a ``.keras`` archive, the ``model_config``
attribute of a legacy ``.h5`` file, ``model.to_json()`` output): find layers that carry Python
code and references to functions or modules outside Keras."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .policy_table import DENIED

Sink = Callable[[str, str, str], None]

KERAS_MODULE_ROOTS = ("keras", "tf_keras", "keras_hub", "keras_nlp", "keras_cv")
# Modules whose functions are plain math (activations, losses...) and may be named by a config.
SAFE_FUNCTION_MODULES = (
    "keras.activations", "keras.src.activations", "keras.losses", "keras.src.losses",
    "keras.metrics", "keras.src.metrics", "keras.initializers", "keras.src.initializers",
    "keras.regularizers", "keras.src.regularizers", "keras.constraints", "keras.src.constraints",
    "keras.ops", "keras.src.ops",
)
CODE_LAYERS = {"Lambda": "runs marshalled Python bytecode", "__lambda__": "is a marshalled Python lambda"}
TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
RISKY_NAME_PARTS = ("unsafe", "get_file", "load_model", "load_weights", "save", "file", "exec", "eval",
                    "system", "popen", "import", "pickle")
_DENIED_ROOTS = frozenset(m.split(".")[0] for m, n, _c, _r in DENIED if n == "*")


def looks_like_keras(obj: Any) -> bool:
    """A Keras config has ``class_name`` and ``config`` at its top (possibly under ``config``)."""
    return isinstance(obj, dict) and "class_name" in obj and ("config" in obj or "module" in obj)


def _is_keras_module(module: str) -> bool:
    return any(module == root or module.startswith(root + ".") for root in KERAS_MODULE_ROOTS)


class _Path:
    """Where a node sits in the config, spelled out only when an issue names it: building
    every path eagerly costs (depth x width) memory, gigabytes for a small hostile config."""

    __slots__ = ("key", "parent")

    def __init__(self, parent: _Path | str, key: object) -> None:
        self.parent = parent
        self.key = key

    def __str__(self) -> str:
        parts: list[str] = []
        node: _Path | str = self
        while isinstance(node, _Path):
            parts.append(f"[{node.key}]" if isinstance(node.key, int) else f".{node.key}")
            node = node.parent
        if len(parts) > 12:  # keep messages readable: the root, "...", then the last steps
            parts = parts[:8] + ["..."] + parts[-3:]
        return str(node) + "".join(reversed(parts))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def check_config(obj: Any, sink: Sink, where: str = "config", budget: Any = None) -> int:
    """Walk a decoded JSON config; returns how many objects were inspected. ``budget`` (a
    ``limits.Budget``) is charged with the objects walked."""
    seen = 0
    stack: list[tuple[Any, _Path | str]] = [(obj, where)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, list):
            if budget is not None:
                budget.spend_json_nodes(1)
            stack.extend((v, _Path(path, i)) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        seen += 1
        if budget is not None:
            budget.spend_json_nodes(1)
        _check_object(node, path, sink)
        stack.extend((v, _Path(path, k)) for k, v in node.items())
    return seen


def _layer_name(node: dict) -> str:
    cfg = node.get("config")
    if isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
        return cfg["name"]
    return "?"


def _check_object(node: dict, path: str, sink: Sink) -> None:
    class_name = node.get("class_name")
    if isinstance(class_name, str):
        if class_name in CODE_LAYERS:
            sink("Critical", "code-layer",
                 f"{class_name} layer {_layer_name(node)!r} at {path} {CODE_LAYERS[class_name]}")
        elif class_name in TF_OP_LAYERS:
            cfg = node.get("config") if isinstance(node.get("config"), dict) else {}
            fn = cfg.get("function", "?")
            if not isinstance(fn, str) or any(p in fn.lower() for p in RISKY_NAME_PARTS) or fn.startswith(("io.", "compat.")):
                sink("Critical", "code-layer", f"{class_name} layer at {path} calls TensorFlow function {fn!r}")
    cfg = node.get("config")
    if isinstance(cfg, dict) and cfg.get("function_type") == "lambda":
        sink("Critical", "code-layer", f"layer at {path} stores a marshalled Python lambda")
    module = node.get("module")
    registered = node.get("registered_name")
    if isinstance(module, str):
        root = module.split(".")[0]
        if not _is_keras_module(module):
            severity = "Critical" if root in _DENIED_ROOTS or root == "builtins" else "High"
            sink(severity, "foreign-reference",
                 f"{path} makes Keras import {module}.{class_name if isinstance(class_name, str) else '?'}")
        elif class_name == "function" or registered == "function":
            fn = cfg if isinstance(cfg, str) else "?"
            if not any(module == m or module.startswith(m + ".") for m in SAFE_FUNCTION_MODULES):
                risky = any(p in f"{module}.{fn}".lower() for p in RISKY_NAME_PARTS)
                sink("Critical" if risky else "High", "foreign-reference",
                     f"{path} calls Keras function {module}.{fn}, which is not an activation, loss or initializer")
    if isinstance(registered, str) and ">" in registered:
        sink("High", "custom-object", f"{path} needs custom code registered as {registered!r}")
