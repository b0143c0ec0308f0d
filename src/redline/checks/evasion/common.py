"""The metrics every evasion check reports (DESIGN.md: FM01/FM07/FM15 family)."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...util.norms import l2, linf, median_or_none
from ...util.stats import with_intervals


def evasion_metrics(
    norm: str,
    epsilon: float,
    x: np.ndarray,
    x_adv: np.ndarray,
    success: np.ndarray,
    correct: np.ndarray,
    queries_to_success: np.ndarray | None,
    units=None,
) -> dict[str, Any]:
    """``success`` marks attacked inputs (rows of ``x``) the target now gets wrong; ``correct``
    marks which sampled inputs it got right before the attack (only those were attacked).

    With ``units`` (:class:`redline.util.epsilon.FeatureUnits`) ``epsilon`` and the median
    sizes are in range units, and the effective per-feature epsilon is summarised."""
    success = np.asarray(success, dtype=bool)
    success_rate = float(success.mean()) if success.size else 0.0
    clean_accuracy = float(np.mean(correct)) if len(correct) else 0.0
    delta = (np.asarray(x_adv, np.float64) - x)[success]
    if units is not None:
        sizes = {"linf": units.size(delta, "linf"), "l2": units.size(delta, "l2")}
    else:
        sizes = {"linf": linf(delta), "l2": l2(delta)}
    median_queries = median_or_none(np.asarray(queries_to_success)[success]) if queries_to_success is not None else None
    metrics = {
        "norm": norm,
        "epsilon": float(epsilon),
        "success_rate": success_rate,
        "clean_accuracy": clean_accuracy,
        "robust_accuracy": clean_accuracy * (1.0 - success_rate),
        "median_queries": median_queries,
        "median_linf": median_or_none(sizes["linf"]),
        "median_l2": median_or_none(sizes["l2"]),
        "attacked_inputs": int(len(x)),
    }
    if units is not None:
        metrics.update(units.describe(epsilon)[0])
    # Rates carry their exact 95% intervals: on 5 attacked inputs 60% means 15% to 95%.
    return with_intervals(metrics, {"success_rate": success.size, "clean_accuracy": len(correct)})
