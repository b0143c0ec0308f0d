"""The layering contract in ``.importlinter`` holds: no module imports a layer above its own
(lazy imports inside functions included), and a planted upward import breaks it."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import redline

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
SRC = Path(redline.__file__).resolve().parents[1]  # the tree under test, not an installed copy
RUN_LINTER = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"


def _lint(src: Path, config: Path) -> subprocess.CompletedProcess:
    if importlib.util.find_spec("importlinter") is None:
        pytest.fail("import-linter is not installed: pip install -e '.[test]'")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(
        [sys.executable, "-c", RUN_LINTER, str(config), "--no-cache", "--no-logo"],
        cwd=src, env=env, capture_output=True, text=True, timeout=600,
    )


def test_the_layers_contract_is_kept():
    result = _lint(SRC, CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken" in result.stdout


def test_a_lazy_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(SRC / "redline", copy / "redline", ignore=shutil.ignore_patterns("__pycache__"))
    norms = copy / "redline" / "util" / "norms.py"
    norms.write_text(norms.read_text() + "\n\ndef _planted():\n    from ..api import scan\n\n    return scan\n")
    result = _lint(copy, CONFIG)
    assert result.returncode != 0
    assert "redline.util is not allowed to import redline.api" in result.stdout
    assert "redline.util.norms -> redline.api" in result.stdout


# Imports of redline modules by a name in a string (importlib.import_module("redline.x"),
# find_spec("redline.x")) are invisible to the contract: none are allowed in the source.
HIDDEN_IMPORTS: set[tuple[str, str]] = set()

# The adapter table names the loaders it imports by "module:function"; two of them sit above
# the targets layer on purpose (plugin points the table declares): the zoo's loader for
# zoo:NAME and the static scanner every model file passes. No other entry may reach up.
TABLE_PLUGINS_ABOVE_TARGETS = {"redline.zoo.build", "redline.filescan"}


def test_the_adapter_table_reaches_up_only_through_its_declared_plugin_points():
    from redline.targets import adapters

    named = {a.loader.partition(":")[0] for a in adapters.ADAPTERS} | {adapters.SCANNER}
    below = ("redline.targets.", "redline.data.", "redline.defences.")
    assert {m for m in named if not m.startswith(below)} == TABLE_PLUGINS_ABOVE_TARGETS


def _hidden_imports() -> set[tuple[str, str]]:
    import ast

    found = set()
    for path in sorted((SRC / "redline").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str) and node.args[0].value.startswith("redline")
                    and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "find_spec")):
                found.add((path.relative_to(SRC).as_posix(), node.args[0].value))
    return found


def test_redline_modules_are_imported_where_the_contract_sees_it():
    assert _hidden_imports() == HIDDEN_IMPORTS
