"""When a budget-limited attack's "not vulnerable" is really "not yet": the reason to say
inconclusive instead, with the budget that would decide.

Two ways a small budget can decide a verdict for an attack judged by its success rate:

- still improving (checked first: a larger budget is the cheaper fix): the success rate rose
  between half the queries and all of them, and continuing that rise (the rate grows roughly
  linearly in log-queries for these attacks) would cross the cut-off within a few doublings
  of the budget;
- too few inputs, when the budget is what limited them: the rate's exact 95% interval still
  reaches the cut-off, so the inputs judged cannot rule out a vulnerable model (5 inputs at
  20% span 0.5% to 72%). When the check's own ``n_inputs`` set the sample, that is the
  check's documented design, not the budget's doing, and the verdict stands.

A run where neither holds is a real "not vulnerable" at this budget.
"""
from __future__ import annotations

import math

import numpy as np

from ...util.stats import clopper_pearson

#: Budgets more than this many times larger are not suggested: the trend is not that reliable.
MAX_GROWTH = 16


def inputs_to_decide(rate: float, threshold: float, most: int = 100_000) -> int:
    """The fewest inputs at which an observed ``rate`` (below ``threshold``) would have a 95%
    upper bound under ``threshold``."""
    n = 1
    while n <= most:
        if clopper_pearson(int(round(rate * n)), n)[1] < threshold:
            return n
        n = n + 1 if n < 64 else int(n * 1.15) + 1
    return most


def undecided_evasion(
    *,
    rate: float,
    n: int,
    threshold: float,
    budget: int,
    per_input: int,
    curve: dict[str, list[float]] | None = None,
    reachable: float | None = None,
    budget_limited: bool = False,
) -> str:
    """The reason a not-vulnerable run is inconclusive, or '' when the budget did not decide it.

    ``rate``: success within epsilon over ``n`` attacked inputs; ``threshold``: the check's
    cut-off; ``per_input``: queries each input got; ``curve``: success against queries
    (``{"queries": [...], "success_rate": [...]}``, as AttackTrace gives); ``reachable``: the
    share of inputs flipped at any size (a rise cannot go beyond it); ``budget_limited``: the
    budget, not ``n_inputs`` or the data, set how many inputs were attacked.
    """
    if rate >= threshold or n <= 0:
        return ""
    if curve and len(curve.get("queries", [])) >= 2:
        queries, rates = curve["queries"], curve["success_rate"]
        half = max(i for i, q in enumerate(queries) if q <= queries[-1] / 2) if queries[0] <= queries[-1] / 2 else 0
        gain = rates[-1] - rates[half]  # rise over the last doubling of queries
        ceiling = 1.0 if reachable is None else reachable
        if gain > 0 and ceiling >= threshold:
            doublings = math.ceil((threshold - rate) / gain)
            growth = 2 ** doublings
            if growth <= MAX_GROWTH:
                return (
                    f"the attack was still improving when the budget ran out ({rates[half]:.0%} of inputs within "
                    f"epsilon at half the queries, {rate:.0%} at all {per_input} per input); at that pace a budget "
                    f"of about {budget * growth:,} queries would decide"
                )
    high = clopper_pearson(int(round(rate * n)), n)[1]
    if budget_limited and high >= threshold:
        need = max(inputs_to_decide(rate, threshold), n + 1)
        return (
            f"the budget let only {n} inputs be attacked: a success rate of {rate:.0%} (95% CI up to {high:.0%}) cannot rule out "
            f"the {threshold:.0%} cut-off; about {need} inputs (n_inputs={need}, a budget of about "
            f"{need * max(per_input, 1):,} queries) would decide"
        )
    return ""


def margins_still_falling(*, start: np.ndarray, half: np.ndarray, end: np.ndarray, threshold: float, budget: int,
                          per_input: int) -> str:
    """The reason a not-vulnerable run is inconclusive when no input broke yet but the attack
    was still pushing them towards an error, or ''.

    ``start``, ``half``, ``end``: each attacked input's margin (how far it is from an error;
    at most 0 once broken) after the first query, at half of its queries and at the end. The
    margin an unbroken input lost over the second half, continued at that pace (optimistic:
    the search slows down as it goes, so this errs towards inconclusive), says how many more
    queries it would need; when a budget up to ``MAX_GROWTH`` times larger would turn at
    least ``threshold`` of the inputs, the budget decided the verdict. A success curve that is
    flat at 0 cannot show this (the rise the other rule reads has not begun)."""
    start, half, end = (np.asarray(a, dtype=np.float64) for a in (start, half, end))
    if not len(end) or per_input < 4:
        return ""
    broken = end <= 0
    pace = (half - end) / max(per_input / 2, 1.0)  # margin per query, second half
    with np.errstate(divide="ignore", invalid="ignore"):
        more = np.where(~broken & (pace > 0), end / pace, np.inf)
    for growth in (2, 4, 8, MAX_GROWTH):
        share = float(np.mean(broken | (more <= (growth - 1) * per_input)))
        if share >= threshold:
            alive = ~broken & (start > 0)
            lost = float(np.median(1.0 - end[alive] / start[alive])) if alive.any() else 1.0
            return (f"the attack was still closing in when the budget ran out (the inputs it had not broken lost a "
                    f"median {lost:.0%} of their margin, and they were still losing it in the last half of the "
                    f"{per_input} queries each); at that pace a budget of about {budget * growth:,} queries would "
                    f"turn {share:.0%} of them, so this budget cannot decide")
    return ""
