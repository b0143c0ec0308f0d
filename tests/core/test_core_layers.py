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
        [sys.executable, "-c", RUN_LINTER, "--config", str(config), "--no-cache", "--no-logo"],
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
