"""Per-input progress of an iterative black-box attack, for success-vs-queries and
success-vs-epsilon curves.

After each round the attack records, for every input, the queries spent so far and the
size of the smallest adversarial perturbation found so far (``inf`` while none is known).
"""
from __future__ import annotations

import numpy as np

# Perturbations are built and stored in float32, so one projected onto the epsilon ball
# measures a hair above epsilon (0.20000002 for 0.2). Sizes within this relative slack of
# a level count as within it, or every curve of an L-inf attack would read 0 at epsilon.
_SLACK = 1e-5


def within(sizes: np.ndarray, level: float) -> np.ndarray:
    """``sizes <= level``, forgiving float32 rounding."""
    return np.asarray(sizes, dtype=np.float64) <= level * (1 + _SLACK) + 1e-9


class AttackTrace:
    def __init__(self, n_inputs: int):
        self.n_inputs = int(n_inputs)
        self._queries: list[np.ndarray] = []
        self._sizes: list[np.ndarray] = []
        self._stacked: tuple[np.ndarray, np.ndarray] | None = None  # (queries, sizes) until the next record

    def record(self, queries: np.ndarray, sizes: np.ndarray) -> None:
        self._queries.append(np.asarray(queries, dtype=np.int64).copy())
        self._sizes.append(np.asarray(sizes, dtype=np.float64).copy())
        self._stacked = None

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        # Stacked once per change (read-only): the curves read them once per level, and
        # stacking thousands of rounds costs more than the reading.
        if self._stacked is None:
            q = np.stack(self._queries) if self._queries else np.zeros((0, self.n_inputs), dtype=np.int64)
            s = np.stack(self._sizes) if self._sizes else np.full((0, self.n_inputs), np.inf)
            q.flags.writeable = s.flags.writeable = False
            self._stacked = (q, s)
        return self._stacked

    @property
    def queries(self) -> np.ndarray:
        """(rounds, inputs) queries spent by each input after each round."""
        return self._arrays()[0]

    @property
    def sizes(self) -> np.ndarray:
        """(rounds, inputs) best perturbation size after each round (inf: none yet)."""
        return self._arrays()[1]

    def best_within(self, query_budget: float) -> np.ndarray:
        """Each input's best perturbation size using at most ``query_budget`` of its queries."""
        q, s = self.queries, self.sizes
        if not len(q):
            return np.full(self.n_inputs, np.inf)
        return np.where(q <= query_budget, s, np.inf).min(axis=0)

    def queries_to_reach(self, eps: float) -> np.ndarray:
        """Queries each input needed until its perturbation was within ``eps`` (-1: never)."""
        q, s = self.queries, self.sizes
        hit = within(s, eps)
        first = hit.argmax(axis=0) if len(q) else np.zeros(self.n_inputs, dtype=int)
        reached = hit.any(axis=0) if len(q) else np.zeros(self.n_inputs, dtype=bool)
        out = np.full(self.n_inputs, -1, dtype=np.int64)
        out[reached] = q[first[reached], np.flatnonzero(reached)]
        return out

    def success_vs_queries(self, eps: float, points: int = 20) -> dict[str, list[float]]:
        """Fraction of inputs within ``eps`` after each of ``points`` query levels."""
        top = int(self.queries.max()) if len(self._queries) and self.n_inputs else 0
        levels = np.unique(np.linspace(0, top, points + 1)[1:].round().astype(int)) if top else np.zeros(0, int)
        rates = [float(within(self.best_within(q), eps).mean()) if self.n_inputs else 0.0 for q in levels]
        return {"queries": [int(q) for q in levels], "success_rate": rates}


def success_vs_size(sizes: np.ndarray, levels: np.ndarray) -> dict[str, list[float]]:
    """Fraction of inputs whose perturbation size is at most each level (failures: inf)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    rates = [float(within(sizes, e).mean()) if sizes.size else 0.0 for e in levels]
    return {"epsilon": [float(e) for e in levels], "success_rate": rates}
