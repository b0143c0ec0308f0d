"""Shared pieces of the poisoning checks: the victim's training pipeline, rates and curves.

A poisoning check never attacks the deployed model directly: it retrains the target's own
recipe (``target.retrain``) on poisoned data and measures the model that comes out. Those
retrained models are charged to the target's query ledger, so a finding's ``queries`` and
``evaluation_queries`` cover every row any model of the pipeline answered: rows used to
*choose* poison points are attack queries (budgeted), rows used to *measure* a model
(accuracy, victims' predictions) are evaluation queries.
"""
from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ...defences.training.sanitisers import (
    loss_sanitize,
    reject_on_negative_impact,
    sphere_filter,
)
from ...targets.base import Target
from ...util.evidence import save_arrays, try_plot

#: The classifier defences :func:`measure_defences` measures, in the order it reports them by default.
CLASSIFIER_DEFENCES = ("sanitize", "sphere", "roni")
#: What the parameters of the checks that optimise added poison rows mean (availability, regression).
ADDED_ROWS_PARAM_DOCS = {
    "rates": "poison rates (shares of the training set) on the damage curve",
    "report_rate": "the poison rate the verdict is judged at (added to rates)",
    "step_size": "poison update size, relative to the input range",
}
#: What the parameters of the classifier checks judged by accuracy drop, with the defences of
#: :func:`measure_defences`, mean (availability, label_flip).
ACCURACY_DROP_PARAM_DOCS = {
    "drop_threshold": "accuracy drop at or above which the pipeline is called vulnerable",
    "defences": "defences to measure against the poison (sanitize, sphere, roni; empty for none)",
    "roni_groups": "groups the training rows are split into for reject-on-negative-impact",
}


#: Significance at which a poisoned model counts as worse than the clean one (:func:`judge_drop`).
DROP_ALPHA = 0.01


class TrainingPipeline:
    """The target's training recipe with a fixed seed, its models charged to one ledger."""

    def __init__(self, target: Target, seed: int):
        self.target = target
        self.seed = int(seed)
        self.fits = 0

    @property
    def ledger(self):
        return self.target.ledger

    def fit(self, x: np.ndarray, y: np.ndarray) -> Target:
        """A model trained by the target's recipe on (x, y); its queries go to the target's ledger."""
        with one_thread():
            model = self.target.retrain(np.asarray(x), np.asarray(y), self.seed)
        model.ledger = self.target.ledger
        self.fits += 1
        return model

    def accuracy(self, model: Target, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy of ``model`` on (x, y), counted as evaluation."""
        if not len(x):
            return 0.0
        with self.ledger.evaluating():
            return float(np.mean(model.predict_labels(x) == np.asarray(y)))

    def values(self, model: Target, x: np.ndarray) -> np.ndarray:
        """What ``model`` answers for ``x`` (values of a regressor), counted as evaluation."""
        with self.ledger.evaluating():
            return np.asarray(model.predict(x), dtype=np.float64)

    def labels(self, model: Target, x: np.ndarray) -> np.ndarray:
        with self.ledger.evaluating():
            return model.predict_labels(x)

    def confidences(self, model: Target, x: np.ndarray, *, evaluating: bool = True) -> np.ndarray | None:
        """Class probabilities of ``model`` on ``x``, or None if it answers labels only."""
        if model.capabilities.outputs != "probabilities":
            return None
        if evaluating:
            with self.ledger.evaluating():
                return np.asarray(model.predict(x), dtype=np.float64)
        return np.asarray(model.predict(x), dtype=np.float64)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run small numeric work (retraining small models, optimising a few poison rows) on one
    thread: it is too small to gain from threads, and threads competing for a few busy cores
    slow each step down many times over. Restores the previous settings afterwards."""
    with contextlib.ExitStack() as stack:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # scikit-learn brings threadpoolctl; without it, keep the defaults
            pass
        else:
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        torch = sys.modules.get("torch")  # only if something already uses torch
        if torch is not None:
            previous = torch.get_num_threads()
            torch.set_num_threads(1)
            stack.callback(torch.set_num_threads, previous)
        yield


def judge_drop(pipeline: TrainingPipeline, clean_model: Target, poisoned_model: Target,
               evaluation: tuple[np.ndarray, np.ndarray], threshold: float) -> tuple[bool, str, float, list[float], float]:
    """(vulnerable, why undecided, drop, its 95% interval, p-value): the accuracy the poison
    costs on the evaluation rows, paired row by row. Vulnerable when the drop reaches
    ``threshold`` and an exact one-sided McNemar test (rows the poison turned wrong against
    rows it turned right) says the poisoned model is worse at :data:`DROP_ALPHA`; undecided
    when the drop reaches the threshold but the test does not (on ten rows, one row turned
    wrong was a 10-point "drop" and the verdict moved with the seed); not vulnerable below
    the threshold. The interval (:func:`~redline.checks.robustness.base.paired_drop`) is
    reported beside it."""
    from ...util.stats import mcnemar_greater
    from ..robustness.base import paired_drop

    x_eval, y_eval = evaluation
    y_eval = np.asarray(y_eval)
    clean_ok = pipeline.labels(clean_model, x_eval) == y_eval
    poisoned_ok = pipeline.labels(poisoned_model, x_eval) == y_eval
    drop, interval = paired_drop(clean_ok, poisoned_ok)
    turned_wrong, turned_right = int((clean_ok & ~poisoned_ok).sum()), int((~clean_ok & poisoned_ok).sum())
    p_value = mcnemar_greater(clean_ok, poisoned_ok)  # the clean model right more often
    if drop < threshold:
        return False, "", drop, interval, p_value
    if p_value <= DROP_ALPHA:
        return True, "", drop, interval, p_value
    return False, (f"the accuracy drop of {drop:.0%} on {len(y_eval)} evaluation rows ({turned_wrong} turned wrong, "
                   f"{turned_right} turned right; McNemar p = {p_value:.2g} > {DROP_ALPHA:g}) cannot be told from "
                   "chance; more test rows would decide"), drop, interval, p_value


def check_rates(rates: Sequence[float], report_rate: float) -> list[float]:
    """Sorted poisoning rates with the reporting rate among them; ValueError when out of range."""
    values = sorted({float(r) for r in rates} | {float(report_rate)})
    if not values or values[0] <= 0 or values[-1] >= 0.5:
        raise ValueError(f"poisoning rates must lie in (0, 0.5), got {values}")
    return values


def added_count(n_clean: int, rate: float) -> int:
    """Poison points to add so that they make up ``rate`` of the poisoned training set."""
    return max(1, math.ceil(rate * n_clean / (1.0 - rate) - 1e-9))


def replaced_count(n: int, rate: float) -> int:
    """Training rows to tamper with (e.g. labels to flip) for a poisoning rate ``rate``."""
    return max(1, round(rate * n))


def split_holdout(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """Held-out data in two halves: a trusted validation set for defences, and the rows the
    result is measured on (so no defence is tuned on the rows that score it)."""
    order = rng.permutation(len(x))
    half = len(x) // 2
    a, b = order[:half], order[half:]
    return (x[a], y[a]), (x[b], y[b])


def damage_undone(drop: float, drop_defended: float) -> float | None:
    """The fraction of an accuracy drop (or shift) a defence takes back, at most 1; negative when
    the defence makes things worse; None when there was no damage to undo."""
    if drop <= 1e-12:
        return None
    return float(min(1.0, (drop - drop_defended) / drop))


def flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(len(x), -1)


def flat_rows(data: Any, label_dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training rows and the attacker's own rows, flattened to float64 features, with
    their labels (or regression targets) as ``label_dtype``."""
    x, y = flat(data.x_train), np.asarray(data.y_train, dtype=label_dtype)
    x_att, y_att = data.attacker_data()
    return x, y, flat(x_att), np.asarray(y_att, dtype=label_dtype)


class PoisonCurve:
    """The damage of added poison rows at each poisoning rate, and the rows behind each point."""

    def __init__(self, rates: list[float], damage: list[float], poisons: dict[float, tuple[np.ndarray, np.ndarray]]):
        self.rates = rates
        self.damage = damage
        self.poisons = poisons

    def at(self, rate: float) -> tuple[float, np.ndarray, np.ndarray]:
        """The damage at ``rate`` (one of ``rates``) and the poison rows and labels that did it."""
        xp, yp = self.poisons[rate]
        return self.damage[self.rates.index(rate)], xp, yp


def added_poison_curve(
    pipeline: TrainingPipeline,
    x: np.ndarray,
    y: np.ndarray,
    shape: Sequence[int],
    rates: list[float],
    optimise: Callable[[int], tuple[np.ndarray, np.ndarray]],
    damage: Callable[[Target], float],
    ctx: Any,
) -> PoisonCurve:
    """For each rate, in order: ``optimise(count)`` makes the poison rows that are that share
    of the poisoned training set, the recipe retrains on the clean rows plus them, and
    ``damage(model)`` measures the retrained model. Progress counts one step per rate and
    leaves one for what the check does afterwards (its defences)."""
    curve, poisons = [], {}
    for i, rate in enumerate(rates):
        xp, yp = optimise(added_count(len(x), rate))
        poisons[rate] = (xp, yp)
        model = pipeline.fit(np.vstack([x, xp]).reshape(-1, *shape), np.concatenate([y, yp]))
        curve.append(damage(model))
        ctx.progress(i + 1, len(rates) + 1)
    return PoisonCurve(rates, curve, poisons)


def measure_defences(
    pipeline: TrainingPipeline,
    defences: Sequence[str],
    x: np.ndarray,
    y: np.ndarray,
    rate: float,
    val: tuple[np.ndarray, np.ndarray],
    evaluation: tuple[np.ndarray, np.ndarray],
    clean_accuracy: float,
    drop: float,
    *,
    roni_groups: int,
    roni_tolerance: float,
    rng: np.random.Generator,
) -> dict[str, float | None]:
    """Each classifier defence (sanitize, sphere, roni) filters the poisoned training set
    (x, y), the recipe retrains on the rows it keeps, and the accuracy drop left on
    ``evaluation`` is reported as ``accuracy_drop_with_<defence>``, with the share of
    ``drop`` it takes back as ``damage_undone_<defence>``. RONI is tuned on ``val``."""
    metrics: dict[str, float | None] = {}
    for defence in defences:
        if defence == "sanitize":
            keep = loss_sanitize(pipeline, x, y, rate)
        elif defence == "sphere":
            keep = sphere_filter(x, y, rate)
        else:
            keep = reject_on_negative_impact(pipeline, x, y, *val, groups=roni_groups, tolerance=roni_tolerance, rng=rng)
        defended = clean_accuracy - pipeline.accuracy(pipeline.fit(x[keep], y[keep]), *evaluation)
        metrics[f"accuracy_drop_with_{defence}"] = float(defended)
        metrics[f"damage_undone_{defence}"] = damage_undone(drop, defended)
    return metrics


def curve_evidence(
    ctx: Any,
    check_id: str,
    rates: list[float],
    curves: dict[str, list[float]],
    *,
    series: Sequence[str],
    title: str,
    ylabel: str,
    skipped: dict[str, str] | None = None,
    poisons: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """A poisoning check's evidence: its damage ``curves`` (named as in the report) over
    ``rates``, the strategies it ``skipped`` and why, the ``poisons`` arrays at the reported
    rate (saved as ``<check>-poisons.npz``) and a plot with one line per curve, labelled
    by ``series``."""
    from ...util import plots

    evidence: dict[str, Any] = {"curve": {"poison_rate": rates, **curves}}
    if skipped:
        evidence["skipped_strategies"] = skipped
    if poisons is not None:
        rel = save_arrays(ctx, f"{check_id}-poisons.npz", **poisons)
        if rel:
            evidence["examples"] = rel
    plot = try_plot(
        ctx, f"{check_id}-curve.png", plots.line_plot,
        {label: (rates, curve) for label, curve in zip(series, curves.values())},
        title=title, xlabel="poisoning rate", ylabel=ylabel,
    )
    if plot:
        evidence["plots"] = [plot]
    return evidence
