"""The check registry. A check module is a file named ``fmNN_<name>.py`` (its failure mode
and a name) in a family folder under ``redline/checks/`` (evasion, privacy, ...): the registry
finds it there, so adding a check touches no list. Modules are imported only when asked for,
and this package imports nothing heavy itself, so ``import redline`` and the CLI's start-up
never pull in numpy, torch or scikit-learn."""
from __future__ import annotations

import functools
import importlib
import os
import pkgutil
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..catalog import MODE_CODES
from ..errors import UsageError

if TYPE_CHECKING:
    from .base import Check

# What makes a module in a family folder a check module (helpers there have other names).
CHECK_MODULE_NAME = re.compile(r"fm\d\d_\w+")

# FM09 has no registered check: the static scan of a model file tests it, before loading,
# and its findings carry this check id.
STATIC_SCAN_MODE = "FM09"
STATIC_SCAN_CHECK = "FM09.static_scan"

# The check contract (redline.checks.base), re-exported lazily: the registry must stay light.
_BASE_NAMES = ("Check", "CheckContext", "Inconclusive", "Needs", "NotApplicable", "Outcome")

__all__ = ["STATIC_SCAN_CHECK", "STATIC_SCAN_MODE", *_BASE_NAMES, "all_checks", "check_modules", "checks_by_mode", "get_check", "plan", "selection_names"]


def __getattr__(name: str) -> Any:
    if name in _BASE_NAMES:
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def check_modules() -> tuple[str, ...]:
    """The dotted names of every check module: ``fmNN_*.py`` in each family folder, sorted."""
    found = []
    for family in pkgutil.iter_modules(__path__):
        if not family.ispkg:
            continue
        folders = [os.path.join(path, family.name) for path in __path__]
        for module in pkgutil.iter_modules(folders):
            if not module.ispkg and CHECK_MODULE_NAME.fullmatch(module.name):
                found.append(f"{__name__}.{family.name}.{module.name}")
    return tuple(sorted(found))


def all_checks() -> dict[str, type[Check]]:
    """Every registered check class by id, in catalog order (mode code, then id)."""
    from .base import Check

    found: dict[str, type[Check]] = {}
    for name in check_modules():
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Check) and obj is not Check and getattr(obj, "id", None):
                if obj.__module__ == module.__name__:
                    found[obj.id] = obj
    return dict(sorted(found.items(), key=lambda kv: (kv[1].mode, kv[0])))


def checks_by_mode() -> dict[str, list[type[Check]]]:
    """Registered check classes grouped by mode code, in catalog order."""
    grouped: dict[str, list[type[Check]]] = {}
    for cls in all_checks().values():
        grouped.setdefault(cls.mode, []).append(cls)
    return grouped


def get_check(check_id: str) -> type[Check]:
    checks = all_checks()
    if check_id not in checks:
        raise UsageError(f"unknown check {check_id!r} (known: {', '.join(checks)})")
    return checks[check_id]


def plan(select: str | list[str] | None) -> list[type[Check]]:
    """Checks chosen by ``--select``: mode codes (FM04) and/or check ids (FM04.lira); None = all."""
    checks = all_checks()
    if select is None:
        return list(checks.values())
    tokens = select.split(",") if isinstance(select, str) else list(select)
    if not any(str(token).strip() for token in tokens):
        # "--select ," or "--select ''": a selection of nothing is a mistake, not a full scan
        raise UsageError(f"--select {','.join(map(str, tokens))!r} names no mode code or check id "
                         "(leave --select out to run every check)")
    chosen: dict[str, type[Check]] = {}
    for raw in tokens:
        token = raw.strip()
        if not token:
            continue
        upper = token.upper()
        if "." in token:
            mode, _, name = token.partition(".")
            key = f"{mode.upper()}.{name}"
            if key not in checks:
                raise UsageError(f"unknown check {token!r} (known: {', '.join(checks)})")
            chosen[key] = checks[key]
        elif upper in MODE_CODES:
            matches = [cid for cid, cls in checks.items() if cls.mode == upper]
            if not matches and upper != STATIC_SCAN_MODE:
                raise UsageError(_no_checks_message(upper, checks))
            for cid in matches:
                chosen[cid] = checks[cid]
        else:
            raise UsageError(f"--select takes mode codes (FM01..FM17) or check ids (FM04.lira), not {token!r}")
    return [checks[c] for c in checks if c in chosen]


def selection_names(select: str | Sequence[str] | None) -> dict[str, set[str]]:
    """The check ids (``"checks"``) and mode codes (``"modes"``) a ``--select`` names, as
    written and normalised, without checking that they exist (:func:`plan` does)."""
    tokens = [] if not select else (select.split(",") if isinstance(select, str) else list(select))
    out: dict[str, set[str]] = {"checks": set(), "modes": set()}
    for token in (t.strip() for t in tokens):
        if "." in token:
            mode, _, name = token.partition(".")
            out["checks"].add(f"{mode.upper()}.{name}")
        elif token:
            out["modes"].add(token.upper())
    return out


def _no_checks_message(mode: str, checks: dict[str, type[Check]]) -> str:
    """A selected mode that no check tests: say which modes can be selected instead."""
    modes = sorted({cls.mode for cls in checks.values()} | {STATIC_SCAN_MODE})
    return (f"--select {mode}: no check tests {mode} yet; modes with checks: {', '.join(modes)} "
            f"({STATIC_SCAN_MODE} is the static scan of a model file)")
