"""FM01 perturbation with labels only: a HopSkipJump-style minimum-norm decision-based attack.

Works from the predicted label alone and minimises the L2 norm (``norm="l2"``, the default)
or the L-inf norm (``norm="linf"``) of the perturbation. For each input it keeps the
closest adversarial point found so far, sitting on the decision boundary, and repeats three
moves:

1. estimate the boundary's normal there from the labels of random probes around the point:
   antithetic pairs (u, -u) drawn in a low-frequency DCT subspace for images, the label
   average subtracted as a baseline (HopSkipJump's variance reduction), more probes as the
   attack proceeds, blended with the previous round's estimate (the boundary moves little
   between rounds, so past queries keep informing the direction), and a probe radius that
   adapts until roughly half the probes land on each side;
2. step into the adversarial region, halving the step until the label confirms it
   (geometric step search): along the normal for L2, along its sign for L-inf (the
   steepest direction under an L-inf step, as in HopSkipJump's L-inf version);
3. project back onto the boundary by bisection, to a tolerance relative to the current
   distance (coarse, since the next probes only need the boundary to within their own
   radius): for L2 along the segment to the original input, for L-inf on the size of the box
   around the original that the point is clipped into (the L-inf projection).

Initialisation reuses data the attacker owns: the nearest (L2) pool inputs of another class
are labelled in one batch and the nearest one the model puts in another class is bisected
onto the boundary; inputs with none fall back to blended uniform noise.

The low-frequency probes pay for L-inf too: the sign of a smooth normal estimate is a
blocky pattern rather than per-pixel noise (on the zoo MNIST CNN, full-space probes leave a
median L-inf 1.1-1.25x larger at the same budget; see benchmarks/bench_fm01_blackbox.py).

All inputs advance in lock-step, so every round is one batched ``predict`` call. Each input
gets ``budget // n`` queries (``n`` = the attacked inputs, at most ``n_inputs``) and stops
when they are spent. Every point sent is first mapped onto what an attacker may submit
(input bounds and the target's feature constraints), and the attack keeps only points whose
label it has seen, so every reported example is one the model actually misclassified.
Success is judged in the attack's norm against ``epsilon`` (default per
:mod:`redline.util.epsilon`). Distances, ``epsilon`` and the probes are in units of each
feature's range: the attack runs on inputs divided by their ranges, so a raw-unit column
4000 wide does not swamp one 0.05 wide.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ...util.epsilon import EPSILON_METRICS, FeatureUnits, units_note
from ...util.norms import l2, linf, median_or_none
from ...util.stats import with_intervals
from ...util.wording import count
from ..base import Needs, NotApplicable
from .attack_trace import AttackTrace, success_vs_size
from .base import (
    EPSILON_DOC, EVASION_METRICS, N_INPUTS_DOC, NORM_DOC, THRESHOLD_DOC, Attempt, EvasionCheck,
    EvasionRun, Plan, require_at_least_one, require_choice,
)
from .feasible import make_feasible
from .lowfreq import DirectionSampler

_NOISE_TRIES = 8  # blended-uniform-noise initialisation rounds for inputs the pool cannot start
_MAX_HALVINGS = 8  # geometric step search: at most this many halvings of the step per round
_LABELS = {"l2": "L2", "linf": "L-inf"}


_SIZES = {"l2": l2, "linf": linf}  # perturbation size per row, in the attack's norm


class _Budgeted:
    """The labels oracle: sends feasible candidates for some inputs, charges each its queries.

    The attack works in range units (each feature divided by its own range, see
    :mod:`redline.util.epsilon`): ``x0`` and every candidate are in those units, and the
    oracle maps them back to the target's units to make them feasible and to send them.
    For [0, 1] images the map is the identity.
    """

    def __init__(self, target, x0: np.ndarray, y: np.ndarray, per_input: int):
        self.target, self.y = target, y
        self.spec = target.input_spec
        self.units = FeatureUnits.from_spec(self.spec)
        self.x0_target = x0
        self.x0 = self.to_unit(x0)
        self.per_input = per_input
        self.used = np.zeros(len(x0), dtype=np.int64)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.units.to_unit(x), dtype=np.float32)

    def to_target(self, z: np.ndarray) -> np.ndarray:
        return self.units.from_unit(z, self.x0_target.dtype)

    def noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Uniform random inputs in range units, within every feature's bounds."""
        shape = (n, *self.x0.shape[1:])
        if self.units.identity and self.units.shared is not None:
            return rng.uniform(self.spec.lower, self.spec.upper, size=shape).astype(np.float32)
        lo, hi = self.units.unit_bounds()
        return rng.uniform(lo, hi, size=shape).astype(np.float32)

    def remaining(self, rows: np.ndarray) -> np.ndarray:
        return self.per_input - self.used[rows]

    def feasible(self, cand: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``cand`` mapped onto what may be sent; may reuse ``cand``'s memory (callers pass fresh arrays)."""
        cand = np.asarray(cand, dtype=np.float32)
        if self.units.identity and self.units.shared is not None and not self.spec.constraints:
            # Without feature constraints only the bounds apply, and they need no originals.
            return np.clip(cand, self.spec.lower, self.spec.upper, out=cand)
        x = self.to_target(cand)
        if self.spec.constraints:
            x = make_feasible(x, self.x0_target[rows], self.spec, units=self.units)
        else:
            x = self.units.clip(x)
        return self.to_unit(x)

    def is_adversarial(self, cand: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Labels of ``cand`` (already feasible), one row of ``rows`` each; True where not y."""
        if len(rows) == 0:
            return np.zeros(0, dtype=bool)
        counts = np.bincount(rows, minlength=len(self.used))
        if (self.used + counts > self.per_input).any():  # a planning bug, never a user error
            raise RuntimeError("decision attack planned past an input's query budget")
        labels = self.target.predict_labels(self.to_target(cand))
        self.used += counts
        return labels != self.y[rows]


class DecisionAttack(EvasionCheck):
    id = "FM01.decision"
    mode = "FM01"
    title = "Black-box decision-based (labels only) minimum-norm evasion (L2 or L-inf)"
    needs = Needs(roles=("test",), attacker=True, disjoint=False)  # other-class rows seed the search
    minimizes = True
    default_budget = 20_000
    # EPSILON_METRICS: the budget in target units, per feature (util/epsilon.FeatureUnits.describe)
    metrics = (*EVASION_METRICS, "queries_per_input", "success_rate_unbounded", *EPSILON_METRICS)
    param_docs = {
        "norm": NORM_DOC.format("l2"),
        "epsilon": EPSILON_DOC,
        "n_inputs": N_INPUTS_DOC,
        "success_threshold": THRESHOLD_DOC,
        "init_probes": "random probes per boundary-normal estimate in the first round (grows with the rounds)",
        "max_probes": "upper limit on probes per boundary-normal estimate",
        "subspace": "share of the low-frequency DCT subspace the image probes are drawn from, in (0, 1]",
        "momentum": "weight of the previous round's normal estimate, in [0, 1)",
        "tolerance": "bisection tolerance relative to the current distance, in (0, 0.5)",
        "init_candidates": "nearest pool inputs of another class tried as starting points (0: noise only)",
    }

    def __init__(
        self,
        norm: str = "l2",
        epsilon: float | None = None,
        n_inputs: int = 20,
        success_threshold: float = 0.3,
        init_probes: int = 24,
        max_probes: int = 200,
        subspace: float = 0.5,
        momentum: float = 0.5,
        tolerance: float = 0.01,
        init_candidates: int = 8,
    ):
        self.norm = norm
        self.epsilon = epsilon
        self.n_inputs = n_inputs
        self.success_threshold = success_threshold
        self.init_probes = init_probes
        self.max_probes = max_probes
        self.subspace = subspace
        self.momentum = momentum
        self.tolerance = tolerance
        self.init_candidates = init_candidates

    def _validate(self, target=None) -> float | None:
        require_choice(self, "norm", ("l2", "linf"))
        require_at_least_one(self, "n_inputs", "init_probes", "max_probes")
        if int(self.init_candidates) < 0:
            raise ValueError("init_candidates must be 0 or more")
        if not 0 < self.subspace <= 1:
            raise ValueError("subspace must be in (0, 1]")
        if not 0 <= self.momentum < 1:
            raise ValueError("momentum must be in [0, 1)")
        if not 0 < self.tolerance < 0.5:
            raise ValueError("tolerance must be in (0, 0.5)")
        return self.ball_epsilon(target)

    def attack_epsilon(self, target) -> float:
        try:
            return self._validate(target)
        except (TypeError, ValueError) as exc:  # a bad parameter is the user's to fix: one line, no traceback
            raise UsageError(str(exc)) from None

    def plan(self, run: EvasionRun) -> Plan:
        # An input needs a handful of queries to get anywhere: fewer inputs beat starved ones.
        n = min(len(run.xa), run.budget // 8)
        if len(run.xa) and n == 0:
            raise NotApplicable(f"a budget of {run.budget} queries is too small for a decision-based attack")
        return Plan(n, per_input=run.budget // n if n else 0)

    def run_attack(self, run: EvasionRun) -> Attempt:
        oracle = _Budgeted(run.target, run.xa, run.ya, run.plan.per_input)
        x_adv, found, trace = self._attack(oracle, run.data, run.rng, run.ctx)
        x_adv = oracle.to_target(x_adv)
        constraints = run.target.input_spec.constraints
        if constraints and found.any():  # exact immutable and integer values in target units
            x_adv[found] = constraints.project(x_adv[found], run.xa[found])
        to_reach = trace.queries_to_reach(run.epsilon)
        return Attempt(x_adv, queries=to_reach, found=found, curve_queries=trace.success_vs_queries(run.epsilon),
                       state=trace)

    def metrics_for(self, run, attempt) -> dict:
        # Sizes are summarised over every input broken at any size (the attack minimises
        # them), not only those within epsilon.
        n, eps, units, found, within = run.n, run.epsilon, run.units, run.found, run.success
        delta, to_reach = attempt.x_adv - run.xa, attempt.queries
        success_rate = float(within.mean()) if n else 0.0
        clean_accuracy = float(run.correct.mean()) if len(run.correct) else 0.0
        metrics = {
            "norm": self.norm,
            "epsilon": eps,
            "success_rate": success_rate,
            "success_rate_unbounded": float(found.mean()) if n else 0.0,
            "clean_accuracy": clean_accuracy,
            "robust_accuracy": clean_accuracy * (1.0 - success_rate),
            "median_queries": median_or_none(to_reach[within & (to_reach >= 0)]),
            "median_l2": median_or_none(units.size(delta[found], "l2")),
            "median_linf": median_or_none(units.size(delta[found], "linf")),
            "attacked_inputs": int(n),
            "queries_per_input": int(run.plan.per_input),
            **units.describe(eps)[0],
        }
        return with_intervals(metrics, {"success_rate": n, "success_rate_unbounded": n,
                                        "clean_accuracy": len(run.correct)})

    def reachable(self, run, metrics) -> float:
        return metrics["success_rate_unbounded"]

    def _size_curve(self, run) -> dict:
        dist, eps = run.sizes, run.epsilon
        top = float(np.max(dist[run.found])) if run.found.any() else 2 * eps
        return success_vs_size(dist, np.linspace(0, max(top, eps) * 1.05, 21)[1:])

    def attack_evidence(self, run, attempt) -> dict:
        return {"curve": self._size_curve(run), "curve_queries": attempt.curve_queries}

    def example_arrays(self, run, attempt) -> dict:
        # The trace holds sizes in the attack's norm and is named after it.
        trace = attempt.state
        return {"found": run.found, "trace_queries": trace.queries, f"trace_{self.norm}": trace.sizes}

    def summary(self, run, attempt, metrics) -> str:
        label = _LABELS[self.norm]
        med = metrics[f"median_{self.norm}"]
        return (
            f"With labels only and {count(run.plan.per_input, 'query')} per input, the attack found adversarial "
            f"inputs within {label} {run.epsilon:.3g}{units_note(run.units)} for {int(run.success.sum())} of {run.n} "
            f"correctly classified inputs ({metrics['success_rate']:.0%})"
            + (f"; median {label} of the smallest found {med:.3g}." if med is not None else ".")
        )

    # -- the attack -------------------------------------------------------------------
    def _attack(self, oracle: _Budgeted, data, rng, ctx):
        """(closest adversarial per input, whether one was found, trace of its size against queries)."""
        x0 = oracle.x0
        n = len(x0)
        trace = AttackTrace(n)
        if n == 0:
            return x0.copy(), np.zeros(0, dtype=bool), trace
        flat0 = x0.reshape(n, -1).astype(np.float32)
        best, found = self._initialise(oracle, data, rng)
        dist = np.where(found, _SIZES[self.norm](best - flat0), np.inf)
        steps = max(1, int(np.ceil(np.log2(1.0 / self.tolerance)))) + 1
        rows = np.flatnonzero(found & (oracle.remaining(np.arange(n)) > 0))
        best[rows], dist[rows] = self._bisect(oracle, rows, best[rows], dist[rows], steps + 4)
        trace.record(oracle.used, dist)

        sampler = DirectionSampler(oracle.spec.shape, self.subspace)
        radius = np.full(n, 0.05)  # probe radius relative to the current distance
        direction = np.zeros_like(flat0)
        has_direction = np.zeros(n, dtype=bool)
        step_size = np.full(n, np.inf)
        # Reserve per round: one step query and a full bisection.
        reserve = steps + 1
        for rnd in range(10**9):
            want = min(int(self.max_probes), round(self.init_probes * np.sqrt(rnd + 1)))
            left = oracle.remaining(np.arange(n))
            probes = np.minimum(want, left - reserve) // 2 * 2
            rows = np.flatnonzero(found & (probes >= 2))
            if rows.size == 0:
                break
            # Probes are L2-sized directions, so their radius follows the perturbation's L2 size.
            scale = dist[rows] if self.norm == "l2" else l2(best[rows] - flat0[rows])
            g, frac = self._estimate(oracle, sampler, rows, best[rows], scale * radius[rows], probes[rows], rng)
            # Aim for about half the probes adversarial: all on one side means the radius is off.
            radius[rows] = np.clip(np.where((frac > 0.9) | (frac < 0.1), radius[rows] * 2,
                                            np.where(np.abs(frac - 0.5) < 0.2, radius[rows] * 0.8, radius[rows])),
                                   1e-3, 0.5)
            prior = has_direction[rows, None]
            g = np.where(prior, g + self.momentum * direction[rows], g)
            g /= np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
            direction[rows], has_direction[rows] = g, True
            start = np.minimum(dist[rows] / np.sqrt(rnd + 1), 2 * step_size[rows])
            # L-inf: the steepest ascent under an L-inf step is the sign of the normal.
            ascent = g if self.norm == "l2" else np.sign(g)
            moved, point, size = self._step(oracle, rows, best[rows], ascent, start)
            step_size[rows[moved]] = size[moved]
            step_size[rows[~moved]] = start[~moved] / 2**_MAX_HALVINGS
            mrows = rows[moved]
            if mrows.size:
                new, new_dist = self._bisect(oracle, mrows, point[moved], _SIZES[self.norm](point[moved] - flat0[mrows]),
                                             steps, reference=dist[mrows])
                better = new_dist < dist[mrows]
                best[mrows[better]], dist[mrows[better]] = new[better], new_dist[better]
            trace.record(oracle.used, dist)
            ctx.progress(int(oracle.used.sum()), oracle.per_input * n)
        return best.reshape(x0.shape), found, trace

    def _initialise(self, oracle: _Budgeted, data, rng):
        """A first adversarial point per input: nearest other-class pool inputs, else noise."""
        x0, y = oracle.x0, oracle.y
        n = len(x0)
        flat0 = x0.reshape(n, -1).astype(np.float32)
        best = flat0.copy()
        found = np.zeros(n, dtype=bool)
        k = min(int(self.init_candidates), max(0, oracle.per_input // 4))
        pool_x, pool_y = data.attacker_data(disjoint=False)
        if k and pool_x is not None and len(pool_x):
            pool = oracle.to_unit(np.asarray(pool_x, dtype=np.float32)).reshape(len(pool_x), -1)
            d2 = (flat0**2).sum(1)[:, None] + (pool**2).sum(1)[None] - 2 * flat0 @ pool.T
            # Pool inputs labelled with the input's own class would rarely be adversarial.
            d2[np.asarray(pool_y)[None, :] == y[:, None]] = np.inf
            k = min(k, pool.shape[0])
            nearest = np.argsort(d2, axis=1)[:, :k]
            valid = np.isfinite(np.take_along_axis(d2, nearest, axis=1))
            rows = np.repeat(np.arange(n), k)[valid.ravel()]
            cand = oracle.feasible(pool[nearest.ravel()[valid.ravel()]].reshape(-1, *x0.shape[1:]), rows)
            adv = oracle.is_adversarial(cand, rows)
            cflat = cand.reshape(len(cand), flat0.shape[1])  # also when no pool row has another class
            dists = np.where(adv, l2(cflat - flat0[rows]), np.inf)
            order = np.lexsort((dists, rows))  # per input, nearest adversarial candidate first
            first = np.unique(rows[order], return_index=True)[1]
            pick = order[first]
            ok = np.isfinite(dists[pick])
            best[rows[pick[ok]]] = cflat[pick[ok]]
            found[rows[pick[ok]]] = True
        for _ in range(_NOISE_TRIES):
            rows = np.flatnonzero(~found & (oracle.remaining(np.arange(n)) > 4))
            if rows.size == 0:
                break
            noise = oracle.noise(rng, len(rows))
            cand = oracle.feasible(noise, rows)
            adv = oracle.is_adversarial(cand, rows)
            best[rows[adv]] = cand[adv].reshape(int(adv.sum()), flat0.shape[1])
            found[rows[adv]] = True
        return best, found

    def _estimate(self, oracle, sampler, rows, point, delta, probes, rng):
        """Boundary normal at ``point`` (rows, features) from labels of antithetic probes."""
        m, top = len(rows), int(probes.max())
        u = sampler.sample(m, top // 2, rng)
        u = np.concatenate([u, -u], axis=1)  # (m, top, features): antithetic pairs
        # Rows with fewer probes use the first pairs of each half.
        k = np.arange(top)[None, :] % (top // 2)
        keep = k < (probes[:, None] // 2)
        every = bool(keep.all())
        scale = delta.astype(np.float32)[:, None, None]
        cand = u  # the probes are built, sent and turned back into directions in this one buffer
        cand *= scale
        cand += point[:, None, :]
        which = np.repeat(np.arange(m), top).reshape(m, top)[keep]
        shape = oracle.spec.shape
        if every:
            sent = oracle.feasible(cand.reshape(-1, *shape), rows[which])
        else:
            sent = oracle.feasible(cand[keep].reshape(-1, *shape), rows[which])
        adv = oracle.is_adversarial(sent, rows[which])
        # Directions as actually sent (bounds and constraints may have bent them).
        if every:
            cand = sent.reshape(m, top, -1)
        else:
            cand[keep] = sent.reshape(len(which), -1)
        cand -= point[:, None, :]
        cand /= np.maximum(scale, 1e-12)
        phi = np.zeros((m, top), dtype=np.float32)
        phi[keep] = np.where(adv, 1.0, -1.0)
        count = keep.sum(axis=1)
        mean = phi.sum(axis=1) / np.maximum(count, 1)
        frac = (mean + 1) / 2
        one_sided = np.abs(mean) == 1.0
        weight = np.where(keep, phi - np.where(one_sided, 0.0, mean)[:, None], 0.0).astype(np.float32)
        g = (weight[:, None, :] @ cand)[:, 0, :].astype(np.float64)
        return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12), frac

    def _step(self, oracle, rows, point, g, start):
        """Geometric step search along ``g``: (moved, adversarial point, step size used)."""
        m = len(rows)
        size = start.astype(np.float64).copy()
        moved = np.zeros(m, dtype=bool)
        out = point.copy()
        pending = np.ones(m, dtype=bool)
        for _ in range(_MAX_HALVINGS + 1):
            pending &= oracle.remaining(rows) > 0
            act = np.flatnonzero(pending)
            if act.size == 0:
                break
            cand = point[act] + (size[act, None] * g[act]).astype(np.float32)
            cand = oracle.feasible(cand.reshape(-1, *oracle.spec.shape), rows[act]).reshape(len(act), -1)
            adv = oracle.is_adversarial(cand.reshape(-1, *oracle.spec.shape), rows[act])
            hit = act[adv]
            out[hit], moved[hit] = cand[adv], True
            pending[hit] = False
            size[act[~adv]] /= 2
        return moved, out, size

    def _bisect(self, oracle, rows, hi_point, hi_dist, steps, reference=None):
        """Bisect from the original towards an adversarial point onto the boundary.

        L2 bisects the segment between them; L-inf bisects the size of the box around the
        original that the adversarial point is clipped into (the L-inf projection), so a
        candidate's L-inf distance is the box size. Stops per input once the bracket
        is shorter than ``tolerance`` times ``reference`` (default: the starting distance),
        or when its queries run out.
        """
        m = len(rows)
        if m == 0:
            return hi_point, hi_dist
        flat0 = oracle.x0[rows].reshape(m, -1).astype(np.float32)
        span = hi_point - flat0
        ref = hi_dist if reference is None else np.minimum(reference, hi_dist)
        lo, hi = np.zeros(m), np.ones(m)
        out = hi_point.copy()
        need = np.ceil(np.log2(np.maximum(hi_dist / np.maximum(self.tolerance * ref, 1e-12), 1.0)))
        need = np.minimum(need, steps)
        for k in range(int(need.max()) if m else 0):
            act = np.flatnonzero((k < need) & (oracle.remaining(rows) > 0))
            if act.size == 0:
                break
            mid = (lo[act] + hi[act]) / 2
            if self.norm == "l2":
                cand = flat0[act] + (mid[:, None] * span[act]).astype(np.float32)
            else:
                box = (mid * hi_dist[act]).astype(np.float32)[:, None]
                cand = flat0[act] + np.clip(span[act], -box, box)
            cand = oracle.feasible(cand.reshape(-1, *oracle.spec.shape), rows[act]).reshape(len(act), -1)
            adv = oracle.is_adversarial(cand.reshape(-1, *oracle.spec.shape), rows[act])
            hi[act[adv]] = mid[adv]
            out[act[adv]] = cand[adv]
            lo[act[~adv]] = mid[~adv]
        return out, _SIZES[self.norm](out - flat0)

    # -- evidence ---------------------------------------------------------------------
    def extra_plots(self, run, attempt) -> list[str]:
        curve_q, curve_e, label = attempt.curve_queries, self._size_curve(run), _LABELS[self.norm]
        within = f"{label} <= {run.epsilon:.3g}"
        out = self.curve_plot(run, "queries", {within: (curve_q["queries"], curve_q["success_rate"])},
                              title="Decision-based attack: success against queries per input",
                              xlabel="queries per input") if curve_q["queries"] else []
        return out + self.curve_plot(run, "size", {"success rate": (curve_e["epsilon"], curve_e["success_rate"])},
                                     title="Decision-based attack: success against perturbation size (full budget)",
                                     xlabel=f"epsilon ({label})")
