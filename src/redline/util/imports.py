"""Import a user's Python object named as ``module:attr`` or ``path/to/file.py:attr``.

Environments (``env:module:factory``) and policies (``py:module:attr``) are named this
way. A module is looked up on ``sys.path`` and then in the current folder, so a file next
to where ``redline`` runs can be named by its module name.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any


class ImportRefused(Exception):
    """The reference cannot be imported; the message says why, in one line."""


def import_attr(ref: str) -> Any:
    """The object ``ref`` names (``module:attr``, ``pkg.module:attr.sub`` or ``file.py:attr``)."""
    where, sep, name = ref.rpartition(":")
    if not sep or not where or not name:
        raise ImportRefused(f"{ref!r} does not name an object as module:attr")
    try:
        if where.endswith(".py") or "/" in where or os.sep in where:
            module = _from_file(Path(where))
        else:
            module = _from_module(where)
    except ImportRefused:
        raise
    except Exception as exc:  # importing user code can fail in any way; say which and where
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise ImportRefused(f"cannot import {where!r} ({type(exc).__name__}: {text})") from None
    obj: Any = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise ImportRefused(f"{where!r} has no attribute {name!r}")
        obj = getattr(obj, part)
    return obj


def _from_module(name: str) -> Any:
    if importlib.util.find_spec(name.split(".")[0]) is None and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # a module beside the caller, as `python -m` would find it
    return importlib.import_module(name)


def _from_file(path: Path) -> Any:
    if not path.is_file():
        raise ImportRefused(f"{path} does not exist")
    spec = importlib.util.spec_from_file_location(f"redline_user_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise ImportRefused(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
