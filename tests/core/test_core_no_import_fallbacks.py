"""redline's own packages are always there: no ``except ModuleNotFoundError`` (or ImportError)
may guard an import of one of them, as if a sibling package might be missing. Guards around
optional third-party packages (torch, onnxruntime, matplotlib...) stay allowed."""
from __future__ import annotations

import ast
from pathlib import Path

import redline

PACKAGE = Path(redline.__file__).resolve().parent
GUARDS = {"ModuleNotFoundError", "ImportError"}
DYNAMIC_IMPORTS = {"import_module", "find_spec", "__import__"}


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in GUARDS for t in caught)


def _names_redline(text: object) -> bool:
    return isinstance(text, str) and (text == "redline" or text.startswith(("redline.", ".")))


def _imports_redline(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or _names_redline(node.module)
    if isinstance(node, ast.Import):
        return any(_names_redline(alias.name) for alias in node.names)
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if isinstance(node.args[0], ast.Constant):
            return name in DYNAMIC_IMPORTS and _names_redline(node.args[0].value)
        # A module named by a variable (a registry's list) is redline's own as far as anyone
        # can tell; find_spec(name) alone only asks whether some package exists.
        return name in DYNAMIC_IMPORTS - {"find_spec"}
    return False


def guarded_own_imports(source: str) -> list[int]:
    """Line numbers of try statements whose import-error handler guards redline's own code:
    the try imports a redline module, or the handler tells redline modules apart by name."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Try):
            continue
        handlers = [h for h in node.handlers if h.type is not None and _catches_import_errors(h)]
        if not handlers:
            continue
        in_body = any(_imports_redline(n) for stmt in node.body for n in ast.walk(stmt))
        # e.g. ``if not exc.name.startswith("redline.checks."): raise``
        in_handler = any(isinstance(n, ast.Constant) and isinstance(n.value, str) and n.value.startswith("redline.")
                         for h in handlers for n in ast.walk(h))
        if in_body or in_handler:
            lines.append(node.lineno)
    return lines


def test_no_fallback_for_redline_own_packages():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line}"
                 for path in sorted(PACKAGE.rglob("*.py"))
                 for line in guarded_own_imports(path.read_text(encoding="utf-8"))]
    assert not offenders, "import errors of redline's own packages are caught at: " + ", ".join(offenders)


def test_the_detector_tells_own_packages_from_third_party_ones():
    own = [
        "try:\n    from ..filescan import scan_path\nexcept ModuleNotFoundError:\n    scan_path = None\n",
        "try:\n    import redline.zoo\nexcept ImportError:\n    pass\n",
        "try:\n    m = importlib.import_module('redline.zoo')\nexcept (ValueError, ModuleNotFoundError):\n    m = None\n",
        "try:\n    module = importlib.import_module(name)\nexcept ModuleNotFoundError:\n    continue\n",
        "try:\n    registry = all_checks()\nexcept ModuleNotFoundError as exc:\n"
        "    if not exc.name.startswith('redline.checks.'):\n        raise\n    registry = {}\n",
    ]
    third_party = [
        "try:\n    import torch\nexcept ImportError:\n    torch = None\n",
        "try:\n    import onnxruntime\nexcept ModuleNotFoundError:\n"
        "    raise TargetError('needs onnxruntime: pip install redline[ml]')\n",
        "try:\n    from . import helper\nexcept KeyError:\n    pass\n",
        "try:\n    found = importlib.util.find_spec(top) is not None\nexcept (ImportError, ValueError):\n    found = False\n",
    ]
    assert all(guarded_own_imports(code) == [1] for code in own)
    assert all(guarded_own_imports(code) == [] for code in third_party)
