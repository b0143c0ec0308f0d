"""How closely a stolen model copies the target: label agreement on held-out and on random inputs.

The target's answers here are the auditor's measurement, so they are sent inside
``ledger.evaluating()`` and count as evaluation queries, not against the attack budget.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ...util.stats import with_intervals
from .input_domain import InputDomain

#: What the parameters of the checks judged by :func:`measure_fidelity` mean.
FIDELITY_PARAM_DOCS = {
    "fidelity_threshold": "agreement with the target at or above which the copy counts as stolen",
    "n_uniform": "random inputs from the input domain on which fidelity is also measured",
}


def measure_fidelity(
    target,
    stolen: Callable[[np.ndarray], np.ndarray],
    x_heldout: np.ndarray,
    domain: InputDomain,
    rng: np.random.Generator,
    n_uniform: int = 500,
) -> dict[str, float]:
    """``fidelity`` (agreement of predicted labels on ``x_heldout``), ``fidelity_uniform``
    (on ``n_uniform`` inputs drawn uniformly over ``domain``) and, when both sides answer
    probabilities, ``max_abs_probability_error`` on the held-out inputs.

    ``stolen`` maps a batch shaped like the target's inputs to probabilities (n, k) or labels (n,).
    """
    spec = target.input_spec
    x_heldout = np.asarray(x_heldout).reshape(-1, *spec.shape).astype(spec.dtype)
    x_uniform = domain.sample(rng, int(n_uniform)).reshape(-1, *spec.shape).astype(spec.dtype)
    with target.ledger.evaluating():
        t_heldout = np.asarray(target.predict(x_heldout))
        t_uniform = np.asarray(target.predict(x_uniform))
    s_heldout, s_uniform = np.asarray(stolen(x_heldout)), np.asarray(stolen(x_uniform))
    metrics = {
        "fidelity": _agreement(t_heldout, s_heldout),
        "fidelity_uniform": _agreement(t_uniform, s_uniform),
    }
    if t_heldout.ndim == 2 and s_heldout.ndim == 2 and len(t_heldout):
        metrics["max_abs_probability_error"] = float(np.abs(t_heldout - s_heldout).max())
    return with_intervals(metrics, {"fidelity": len(t_heldout), "fidelity_uniform": len(t_uniform)})


def agreement_phrase(metrics: dict[str, Any]) -> str:
    """How the copy's ``fidelity`` and ``fidelity_uniform`` read in a summary."""
    return (f"agrees with the target on {metrics['fidelity']:.1%} of held-out and "
            f"{metrics['fidelity_uniform']:.1%} of random inputs")


def copy_evidence(ctx: Any, check_id: str, save: Callable[[Path], Any]) -> dict[str, str]:
    """Evidence holding the stolen copy: ``save(path)`` writes it as ``<check id>.onnx`` when
    the run writes artifacts (the report names it ``model``); nothing otherwise."""
    path, rel = ctx.artifact(f"{check_id}.onnx")
    if path is None:
        return {}
    save(path)
    return {"model": rel}


def labels_of(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out)
    return out.argmax(axis=1) if out.ndim == 2 else out.astype(int)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a):
        return float("nan")
    return float(np.mean(labels_of(a) == labels_of(b)))
