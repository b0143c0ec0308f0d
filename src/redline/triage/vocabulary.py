"""The metric vocabulary: the metric names findings may carry, as their producers declare them.

Every check declares the metrics it reports (``Check.metrics``, read here through the check
registry); the two producers of findings that are not checks declare theirs beside the code
that measures them: the static scan of a model file (FM09, ``filescan.findings``) and the
dependency audit (FM11, ``deps.auditor``). Triage (the names its rules and remediation steps
may read), the report writers (the metrics that head a finding) and the incident reader (the
metrics an incident may state) read this one vocabulary, so none of them keeps a list.

Declarations may be shell-style patterns (``damage_undone_*``); a rate may carry its
confidence interval as ``<name>_ci``.
"""
from __future__ import annotations

import fnmatch
import functools
import importlib
import types
from collections.abc import Iterator, Mapping

__all__ = [
    "HEADLINE_METRICS", "LIST_METRICS", "PRODUCERS", "MetricTypes", "declarations", "is_declared",
    "metric_names", "metric_types",
]

# Modules that make findings outside the check registry; each declares MODE and METRICS.
PRODUCERS = ("redline.filescan.findings", "redline.deps.auditor")

# Metrics whose value is a list (every other metric is read as a number). Check declarations
# carry names only, so the few list-valued ones are typed here; each must be declared.
LIST_METRICS = frozenset({"flagged_classes"})

# Of the declared metrics, those that sum a finding up best, in the order the human-readable
# reports show them (others follow in the check's own order); each must be declared.
HEADLINE_METRICS = (
    "success_rate", "robust_accuracy", "auc", "tpr_at_fpr_0.001", "advantage", "fidelity",
    "max_abs_param_error", "attack_accuracy", "baseline_accuracy", "accuracy_drop",
    "target_success_rate", "prediction_shift", "flagged_classes", "anomaly_index",
)


@functools.cache
def declarations() -> Mapping[str, tuple[str, ...]]:
    """Declared metric names and patterns by mode code, checks first, then the other producers."""
    # The registry imports the check modules, which import no torch at their top.
    from ..checks import all_checks

    by_mode: dict[str, list[str]] = {}
    for cls in all_checks().values():
        by_mode.setdefault(cls.mode, []).extend(cls.metrics)
    for name in PRODUCERS:
        module = importlib.import_module(name)
        by_mode.setdefault(module.MODE, []).extend(module.METRICS)
    return types.MappingProxyType({mode: tuple(dict.fromkeys(names)) for mode, names in by_mode.items()})


@functools.cache
def _declared(mode: str | None) -> tuple[frozenset[str], tuple[str, ...]]:
    """(plain names, patterns) declared for ``mode``, or for any mode when it is None."""
    names = declarations().get(mode, ()) if mode is not None else _all_names()
    plain = frozenset(n for n in names if not _is_pattern(n))
    return plain, tuple(n for n in names if _is_pattern(n))


def _all_names() -> tuple[str, ...]:
    return tuple(dict.fromkeys(name for names in declarations().values() for name in names))


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def is_declared(name: str, mode: str | None = None) -> bool:
    """True when a producer (of ``mode``, or of any mode) declares ``name``."""
    plain, patterns = _declared(mode)
    base = name.removesuffix("_ci")
    if name in plain or base in plain:
        return True
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(base, p) for p in patterns)


@functools.cache
def metric_names() -> tuple[str, ...]:
    """Every declared metric name that is not a pattern, in declaration order."""
    return tuple(n for n in _all_names() if not _is_pattern(n))


class MetricTypes(Mapping[str, str]):
    """Declared metric name -> ``"number"`` or ``"list"``, for the rule language.

    Lookups follow the declarations, patterns included; iteration lists the plain names.
    """

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str) or not is_declared(name):
            raise KeyError(name)
        return "list" if name in LIST_METRICS else "number"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and is_declared(name)

    def __iter__(self) -> Iterator[str]:
        return iter(metric_names())

    def __len__(self) -> int:
        return len(metric_names())


@functools.cache
def metric_types() -> MetricTypes:
    return MetricTypes()
