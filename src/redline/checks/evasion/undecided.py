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
