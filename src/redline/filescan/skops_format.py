"""skops archives: ``schema.json`` names every type and function the loader will rebuild.
Each name is checked against the same policy as pickle globals, so a type that skops would
only load when told to trust it is reported."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import policy

Sink = Callable[[str, str, str], None]


def check_schema(schema: Any, sink: Sink) -> int:
    """Walk the schema; returns how many named types were checked."""
    checked = 0
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        stack.extend(node.values())
        module, name = node.get("__module__"), node.get("__class__")
        loader = node.get("__loader__")
        if loader == "FunctionNode" and isinstance(node.get("content"), dict):
            module = node["content"].get("module_path", module)
            name = node["content"].get("function", name)
        if not (isinstance(module, str) and isinstance(name, str)):
            continue
        checked += 1
        decision = policy.lookup(module, name)
        if not decision.allowed:
            kind = "unsafe-global" if decision.severity == "Critical" else "unknown-global"
            sink(decision.severity, kind,
                 f"schema names {module}.{name} ({decision.reason}); skops loads it only if told to trust it")
    return checked
