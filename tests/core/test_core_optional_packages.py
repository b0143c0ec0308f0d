"""A missing optional package is a one-line error naming it and the extra that installs it."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

import redline.checks.commands
from redline.cli import EXIT_USAGE, main
from redline.util.extras import OPTIONAL_PACKAGES, install_hint, missing_package_message

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_table_matches_the_extras_of_pyproject():
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    # An extra may pull in another (``redline[guard]``); that is not a package of its own.
    declared = {re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0]: extra
                for extra in ("ml", "data", "crypto", "ray", "agents", "guard", "registry")
                for req in extras[extra] if not req.startswith("redline[")}
    assert declared == {distribution: extra for distribution, extra in OPTIONAL_PACKAGES.values()}


def test_hints_and_messages():
    assert install_hint("sklearn") == install_hint("scikit-learn") == "pip install 'redline[ml]'"
    assert install_hint("statsmodels") == "pip install 'redline[data]'"
    missing = ModuleNotFoundError("No module named 'onnxruntime.capi'", name="onnxruntime.capi")
    assert missing_package_message(missing) == "this needs the optional package onnxruntime: pip install 'redline[ml]'"
    assert missing_package_message(ModuleNotFoundError("x", name="no_such_thing")) is None
    with pytest.raises(KeyError):
        install_hint("numpy")


def _command_failing_with(monkeypatch, exc):
    def run_checks(args):
        raise exc

    monkeypatch.setattr(redline.checks.commands, "run_checks", run_checks)


def test_the_cli_names_the_package_and_the_extra(monkeypatch, capsys):
    _command_failing_with(monkeypatch, ModuleNotFoundError("No module named 'torch'", name="torch"))
    assert main(["checks"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "redline: error: this needs the optional package torch: pip install 'redline[ml]'\n"


def test_any_other_missing_module_is_a_bug_and_not_hidden(monkeypatch):
    _command_failing_with(monkeypatch, ModuleNotFoundError("No module named 'redline.nope'", name="redline.nope"))
    with pytest.raises(ModuleNotFoundError):
        main(["checks"])
