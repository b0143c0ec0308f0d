"""How closely a stolen model copies the target: label agreement on held-out and on random inputs.

The target's answers here are the auditor's measurement, so they are sent inside
``ledger.evaluating()`` and count as evaluation queries, not against the attack budget.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...util.stats import with_intervals
from .input_domain import InputDomain


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


def labels_of(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out)
    return out.argmax(axis=1) if out.ndim == 2 else out.astype(int)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a):
        return float("nan")
    return float(np.mean(labels_of(a) == labels_of(b)))
