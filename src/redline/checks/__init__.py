"""The check registry. Check modules are listed here and imported only when asked for,
so ``import redline`` never pulls in torch or scikit-learn."""
from __future__ import annotations

import importlib

from ..catalog import MODE_CODES
from ..errors import UsageError
from .base import Check, CheckContext, Inconclusive, Needs, NotApplicable, Outcome

# One module per check (or per family); each defines one or more Check subclasses.
CHECK_MODULES = (
    "redline.checks.evasion.fm01_pgd",
    "redline.checks.evasion.fm01_min_norm",
    "redline.checks.evasion.fm01_square",
    "redline.checks.evasion.fm01_decision",
    "redline.checks.evasion.fm01_transfer",
    "redline.checks.evasion.fm06_reprogramming",
    "redline.checks.evasion.fm07_eot",
    "redline.checks.training_time.fm02_availability",
    "redline.checks.training_time.fm02_clean_label",
    "redline.checks.training_time.fm02_feedback_loop",
    "redline.checks.training_time.fm02_label_flip",
    "redline.checks.training_time.fm02_regression",
    "redline.checks.privacy.fm04_membership",
    "redline.checks.privacy.fm04_lira",
    "redline.checks.privacy.fm04_rmia",
    "redline.checks.extraction.fm05_equation_solving",
    "redline.checks.extraction.fm05_path_finding",
    "redline.checks.extraction.fm05_learning",
    "redline.checks.supply_chain.fm11_fuzz",
    "redline.checks.privacy.fm03_attribute_inference",
    "redline.checks.privacy.fm03_reconstruction",
    "redline.checks.extraction.fm08_exfiltration",
    "redline.checks.extraction.fm08_capacity_abuse",
    "redline.checks.training_time.fm10_injection",
    "redline.checks.training_time.fm10_neural_cleanse",
    "redline.checks.training_time.fm10_max_margin",
    "redline.checks.training_time.fm10_activation_clustering",
    "redline.checks.training_time.fm10_spectral_signatures",
    "redline.checks.training_time.fm10_strip",
)

# FM09 has no registered check: the static scan of a model file tests it, before loading.
STATIC_SCAN_MODE = "FM09"

__all__ = ["STATIC_SCAN_MODE", "Check", "CheckContext", "Inconclusive", "Needs", "NotApplicable", "Outcome", "all_checks", "get_check", "plan"]


def all_checks() -> dict[str, type[Check]]:
    """Every registered check class by id, in catalog order (mode code, then id)."""
    found: dict[str, type[Check]] = {}
    for name in CHECK_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Check) and obj is not Check and getattr(obj, "id", None):
                if obj.__module__ == module.__name__:
                    found[obj.id] = obj
    return dict(sorted(found.items(), key=lambda kv: (kv[1].mode, kv[0])))


def get_check(check_id: str) -> type[Check]:
    checks = all_checks()
    if check_id not in checks:
        raise UsageError(f"unknown check {check_id!r} (known: {', '.join(checks)})")
    return checks[check_id]


def plan(select: str | list[str] | None) -> list[type[Check]]:
    """Checks chosen by ``--select``: mode codes (FM04) and/or check ids (FM04.lira); None = all."""
    checks = all_checks()
    if not select:
        return list(checks.values())
    tokens = select.split(",") if isinstance(select, str) else list(select)
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


def _no_checks_message(mode: str, checks: dict[str, type[Check]]) -> str:
    """A selected mode that no check tests: say which modes can be selected instead."""
    modes = sorted({cls.mode for cls in checks.values()} | {STATIC_SCAN_MODE})
    return (f"--select {mode}: no check tests {mode} yet; modes with checks: {', '.join(modes)} "
            f"({STATIC_SCAN_MODE} is the static scan of a model file)")
