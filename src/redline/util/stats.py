"""Small-sample statistics behind verdicts: exact intervals for rates, and how many
observations a rate needs before it means anything.

A rate measured on a handful of rows is a guess with wide error bars; a verdict must be
judged against those bars, not the point estimate. Everything here is exact (binomial or
hypergeometric), so it stays valid at 20 records. scipy is imported lazily: ``import
redline`` must stay light.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Two-sided confidence level of every interval a check reports.
CONFIDENCE = 0.95


def clopper_pearson(successes: int, trials: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval for a binomial rate ``successes / trials``.

    Conservative: its coverage is at least ``confidence`` for every true rate. With no trials
    nothing is known and the interval is [0, 1].
    """
    k, n = int(successes), int(trials)
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= successes <= trials, got {k} of {n}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import beta

    tail = (1.0 - confidence) / 2.0
    low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - tail, k + 1, n - k))
    return low, high


def rate_interval(rate: float, trials: int, confidence: float = CONFIDENCE) -> list[float]:
    """[low, high] for a rate measured as a share of ``trials`` (the count is recovered by rounding)."""
    n = int(trials)
    k = int(round(float(rate) * n)) if n else 0
    low, high = clopper_pearson(min(max(k, 0), n), n, confidence)
    return [low, high]


def with_intervals(metrics: dict[str, Any], trials: Mapping[str, int], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Add ``<name>_ci = [low, high]`` to ``metrics`` for every rate named in ``trials``
    (name -> number of rows the rate was measured on); returns ``metrics``. Rates that are
    missing or not a number are left alone: there is nothing to bound. One line per check::

        with_intervals(metrics, {"success_rate": n_attacked, "clean_accuracy": n_eval})
    """
    for name, n in trials.items():
        value = metrics.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            continue
        metrics[f"{name}_ci"] = rate_interval(float(value), int(n), confidence)
    return metrics


def smallest_measurable_fpr(negatives: int) -> float:
    """The smallest false-positive rate other than zero that ``negatives`` rows can show: 1/n."""
    return 1.0 / negatives if negatives > 0 else 1.0


def negatives_needed(fpr: float, false_positives: int = 1) -> int:
    """How many negatives make a false-positive rate of ``fpr`` measurable: enough that
    ``false_positives`` of them fit under it (one at the least; a few give a steadier threshold)."""
    if not 0 < fpr < 1:
        raise ValueError("fpr must be in (0, 1)")
    return int(math.ceil(max(1, int(false_positives)) / fpr - 1e-9))


def fpr_measurable(fpr: float, negatives: int, false_positives: int = 1) -> bool:
    """Whether ``negatives`` rows can measure a true-positive rate at false-positive rate ``fpr``."""
    return int(negatives) >= negatives_needed(fpr, false_positives)


def trials_to_exceed(rate: float, baseline: float, confidence: float = CONFIDENCE) -> int:
    """The fewest trials at which an observed ``rate`` would have a Clopper-Pearson lower bound
    above ``baseline``: the sample size a check needs to tell ``rate`` from ``baseline``.
    Returns 0 when ``rate`` does not exceed ``baseline`` (no sample size will do)."""
    if not 0 <= baseline < rate <= 1:
        return 0
    n = 1
    while n <= 1_000_000:
        if clopper_pearson(int(math.floor(rate * n)), n, confidence)[0] > baseline:
            return n
        n = n + 1 if n < 64 else int(n * 1.1)
    return 0


def rank_tail_pvalue(hits: int, false_hits: int, positives: int, negatives: int) -> float:
    """Exact p-value that a score finds ``hits`` of ``positives`` with at most ``false_hits``
    of ``negatives`` above its threshold by chance alone.

    Under the null (positives and negatives exchangeable: the score knows nothing), the
    ranks of the positives among all rows are uniform. The threshold that admits at most
    ``k = false_hits`` negatives admits at least ``t = hits`` positives exactly when the top
    ``t + k`` rows hold at least ``t`` positives, a hypergeometric tail. This accounts for the
    noise of the threshold itself, which a binomial interval on the true-positive rate alone
    ignores (with 20 negatives, the threshold at zero false positives is their maximum).
    """
    t, k = int(hits), int(false_hits)
    if t <= 0:
        return 1.0
    from scipy.stats import hypergeom

    total = int(positives) + int(negatives)
    drawn = min(t + k, total)
    return float(hypergeom.sf(t - 1, total, int(positives), drawn))


def mann_whitney_pvalue(scores_pos, scores_neg) -> float:
    """One-sided p-value that positives score higher than negatives (AUC > 0.5), exact for
    small samples without ties, asymptotic with tie correction otherwise."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(scores_pos, scores_neg, alternative="greater", method="auto").pvalue)


__all__ = [
    "CONFIDENCE",
    "clopper_pearson",
    "fpr_measurable",
    "mann_whitney_pvalue",
    "negatives_needed",
    "rank_tail_pvalue",
    "rate_interval",
    "smallest_measurable_fpr",
    "trials_to_exceed",
    "with_intervals",
]


def adjust_p_values(p_values: Any, correction: str = "holm") -> Any:
    """p-values adjusted for testing them all at once (family-wise error rate at most alpha
    wherever the adjusted value is at most alpha, however the tests depend on each other).

    ``bonferroni`` multiplies by the number of tests; ``holm`` steps down (Holm 1979). Both
    reject *some* hypothesis exactly when ``min(p) * m <= alpha``; Holm's values are smaller
    for the rest and say more precisely which hypotheses to reject.
    """
    import numpy as np

    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    if correction == "bonferroni":
        return np.minimum(1.0, p * m)
    if correction != "holm":
        raise ValueError(f"correction must be bonferroni or holm, not {correction!r}")
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return adjusted


def mcnemar_greater(first_right: Any, second_right: Any) -> float:
    """Exact one-sided McNemar p-value for "the first is right more often than the second",
    on paired outcomes (booleans, one per case): the cases where only one of them is right
    are a binomial(0.5) sample under equality."""
    import numpy as np
    from scipy.stats import binom

    first_right, second_right = np.asarray(first_right, bool), np.asarray(second_right, bool)
    wins = int(np.sum(first_right & ~second_right))
    losses = int(np.sum(~first_right & second_right))
    return float(binom.sf(wins - 1, wins + losses, 0.5)) if wins else 1.0


def mean_t_interval(values: Any, confidence: float = CONFIDENCE) -> tuple[float, list[float]]:
    """The mean of ``values`` (one number per independent unit, e.g. per evaluation row) and
    its two-sided Student-t interval. One value, or values all equal, give a zero-width
    interval: nothing varied. For a positive, right-skewed measure (absolute changes) the
    t interval errs mostly at its upper end, so a verdict that needs its lower end to clear a
    threshold stays on the cautious side."""
    import numpy as np

    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not len(x):
        raise ValueError("need at least one value")
    mean = float(x.mean())
    spread = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    if spread == 0.0:
        return mean, [mean, mean]
    from scipy.stats import t

    half = float(t.ppf(1.0 - (1.0 - confidence) / 2.0, len(x) - 1)) * spread / math.sqrt(len(x))
    return mean, [mean - half, mean + half]
