"""How closely a stolen model copies the target: label agreement on held-out and on random inputs.

``fidelity``, the verdict's measure, is taken on the held-out test rows (``data.evaluation_data()``:
all test rows beside a pool, else the half the attacker does not own), i.e. on the task's data,
wherever the attacker's own inputs came from. ``fidelity_uniform`` is taken on random inputs
over the domain the check explored (for tables, the attacker's data range) and only reported.

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

#: A copy must remove at least this share of the disagreements a guess of the target's most
#: common answer would make (``fidelity_beyond_majority``) to count as stolen: a model that
#: answers one class almost everywhere is "copied" by that guess alone.
MIN_BEYOND_MAJORITY = 0.5
#: Fewest held-out rows with another answer than the most common one that can show it.
MIN_OTHER_ANSWERS = 10

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
        **majority_metrics(t_heldout, s_heldout),
    }
    if t_heldout.ndim == 2 and s_heldout.ndim == 2 and len(t_heldout):
        metrics["max_abs_probability_error"] = float(np.abs(t_heldout - s_heldout).max())
    return with_intervals(metrics, {"fidelity": len(t_heldout), "fidelity_uniform": len(t_uniform)})


def majority_metrics(target_answers: np.ndarray, copy_answers: np.ndarray) -> dict[str, Any]:
    """How often the target gives its most common held-out answer (``majority_share``), on how
    many rows it gives another (``other_answers``), and how much of what a guess of that answer
    gets wrong the copy gets right (``fidelity_beyond_majority``: 1 a perfect copy, 0 no better
    than the guess, None when the target gives one answer only)."""
    if not len(target_answers):
        return {"majority_share": None, "other_answers": 0, "fidelity_beyond_majority": None}
    labels = labels_of(target_answers)
    share = float(np.bincount(labels).max() / len(labels))
    agreement = float(np.mean(labels == labels_of(copy_answers)))
    beyond = (agreement - share) / (1.0 - share) if share < 1.0 else None
    return {"majority_share": share, "other_answers": int(round((1.0 - share) * len(labels))),
            "fidelity_beyond_majority": beyond}


def judge_copy(metrics: dict[str, Any], threshold: float, unfinished: str = "") -> tuple[bool, str]:
    """(stolen, inconclusive reason). Stolen: held-out fidelity at ``threshold`` or above and
    at least :data:`MIN_BEYOND_MAJORITY` of the way from a guess of the target's most common
    answer to a perfect copy. A target with fewer than :data:`MIN_OTHER_ANSWERS` other
    answers on the held-out rows cannot show the difference: inconclusive when the copy
    otherwise meets the threshold (a constant model agrees with any constant guess).

    ``unfinished``: why the attack stopped before its copy was finished (the budget ran out),
    '' when it finished. A copy the attack did not finish that falls short is inconclusive
    with that reason, never a pass: the finished copy might have been stolen."""
    if not metrics["fidelity"] >= threshold:
        return False, unfinished
    if metrics["other_answers"] < MIN_OTHER_ANSWERS:
        share = metrics["majority_share"]
        return False, (f"the target gave one answer on {share:.1%} of the held-out rows, and only "
                       f"{metrics['other_answers']} other answers (fewer than {MIN_OTHER_ANSWERS}): a guess of that "
                       "answer agrees as well as the copy, so agreement cannot show that its decisions were copied; "
                       "held-out rows on which it answers otherwise would decide")
    stolen = metrics["fidelity_beyond_majority"] >= MIN_BEYOND_MAJORITY
    return stolen, "" if stolen else unfinished


#: Where the random inputs of ``fidelity_uniform`` lie, as a summary says it.
ATTACKER_RANGE = "random inputs within the attacker's data range"
INPUT_RANGE = "random inputs over the input range"


def random_inputs_phrase(spec) -> str:
    """Where :func:`measure_fidelity`'s random inputs lie for a domain from
    :func:`~.input_domain.infer_domain`: within the attacker's data range for tables (each
    feature narrowed to what the attacker's rows take, or to its declared range), over the
    input range for images."""
    return ATTACKER_RANGE if len(spec.shape) <= 1 else INPUT_RANGE


def agreement_phrase(metrics: dict[str, Any], random_inputs: str = ATTACKER_RANGE) -> str:
    """How the copy's ``fidelity`` and ``fidelity_uniform`` read in a summary. ``fidelity`` is
    measured on the held-out test rows (the task's data, never the attacker's) and decides;
    ``random_inputs`` says where the random inputs of ``fidelity_uniform`` were drawn: from
    an attacker's pool unlike the test rows that number can be far higher or lower."""
    said = (f"agrees with the target on {metrics['fidelity']:.1%} of the held-out test rows, which decide, "
            f"and on {metrics['fidelity_uniform']:.1%} of {random_inputs}")
    beyond, share = metrics.get("fidelity_beyond_majority"), metrics.get("majority_share")
    if beyond is not None and share is not None and share >= 0.5:
        said += (f" (a guess of the target's most common answer would agree on {share:.1%}; the copy removes "
                 f"{max(beyond, 0):.0%} of that guess's disagreements)")
    return said


def copy_evidence(ctx: Any, check_id: str, save: Callable[[Path], Any]) -> dict[str, str]:
    """Evidence holding the stolen copy: ``save(path)`` writes it as ``<check id>.onnx`` when
    the run writes artifacts (the report names it ``model``); nothing otherwise."""
    path, rel = ctx.artifact(f"{check_id}.onnx")
    if path is None:
        return {}
    from ...util.atomic import writing_output

    with writing_output(path, remove_partial=True):  # a full disk stops the scan (OutputError)
        save(path)
    return {"model": rel}


def labels_of(out: np.ndarray) -> np.ndarray:
    out = np.asarray(out)
    return out.argmax(axis=1) if out.ndim == 2 else out.astype(int)


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    if not len(a):
        return float("nan")
    return float(np.mean(labels_of(a) == labels_of(b)))
