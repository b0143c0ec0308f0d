"""FM01 perturbation: black-box Square Attack (Andriushchenko et al. 2020), L-inf and L2.

Needs probabilities only. Each round proposes, for every input that still resists, one
random change confined to a square window (a random subset of features for inputs that are
not images), keeps it when the margin loss ``log p_y - max_{j != y} log p_j`` drops, and
stops on an input as soon as the margin turns negative. Window sizes follow the paper's
schedule, shrinking as queries are spent. Every query is one batched call
for all the inputs still resisting.

``epsilon`` is in units of each feature's range (:mod:`redline.util.epsilon`); the search
runs on inputs divided by their ranges, so raw-unit columns of any width move alike.

Budget: the check attacks ``n_inputs`` correctly classified inputs (fewer if the budget is
smaller than that) and gives each ``budget // n`` queries.
"""
from __future__ import annotations

import bisect
import functools
import math

import numpy as np

from ...util.epsilon import EPSILON_METRICS, FeatureUnits, units_note
from ...util.norms import l2, linf
from ...util.wording import count
from ..base import Needs, NotApplicable
from .attack_trace import AttackTrace, success_vs_size
from .base import (
    EPSILON_DOC, EVASION_METRICS, N_INPUTS_DOC, NORM_DOC, THRESHOLD_DOC, Attempt, EvasionCheck,
    EvasionRun, Plan, require_at_least_one, require_choice,
)
from .feasible import make_feasible
from .undecided import margins_still_falling

# Queries after which the window area halves: the paper's schedule for a 10,000-query budget.
# Smaller budgets keep the same schedule (cut short), so a small budget is not spent on
# windows shrunk too early; larger budgets stretch it.
_HALVINGS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
_HORIZON = 10_000
_SIGNS = np.array([-1.0, 1.0])


def window_fraction(p_init: float, step: int, steps: int) -> float:
    """Fraction of the features a window covers at ``step`` of ``steps``."""
    scaled = int(step / max(steps, _HORIZON) * _HORIZON)
    return p_init / 2 ** bisect.bisect_left(_HALVINGS, scaled)  # halvings passed so far


def margin_loss(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log p_y - max over other classes of log p_j; negative once the input is misclassified."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-30, None))
    rows = np.arange(len(y))
    own = logp[rows, y]
    logp[rows, y] = -np.inf
    return own - logp.max(axis=1)


def _random_signs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random +-1.0 of ``shape``: the draws of ``rng.choice([-1.0, 1.0], size=shape)`` without
    its argument checks, which cost more than the draw at the sizes used here."""
    return _SIGNS[rng.integers(0, 2, size=shape)]


@functools.lru_cache(maxsize=64)
def _bump_pattern(side: int) -> np.ndarray:
    """bump's pattern before its random transpose (read-only: cached, one per side)."""
    def half(rows: int, cols: int) -> np.ndarray:
        r = np.abs(np.arange(rows) - rows // 2)[:, None]
        c = np.abs(np.arange(cols) - cols // 2)[None, :]
        ring = np.maximum(r, c)
        weights = 1.0 / (np.arange(max(rows, cols)) + 1.0) ** 2
        tail = np.cumsum(weights[::-1])[::-1]  # sum of weights from ring r outwards
        out = tail[ring]
        return out / np.linalg.norm(out)

    top = side // 2
    pattern = np.concatenate([half(top, side), -half(side - top, side)], axis=0) if top else half(side, side)
    pattern /= np.linalg.norm(pattern)
    pattern.flags.writeable = False
    return pattern


def bump(side: int, rng: np.random.Generator) -> np.ndarray:
    """The L2 attack's window pattern: two opposite-signed pseudo-Gaussian halves, unit norm.

    Each half weights a pixel by how many nested rectangles around the half's centre contain
    it, ring k counting 1/(k+1)^2, so mass concentrates in the middle.
    """
    pattern = _bump_pattern(side)
    return (pattern.T if rng.random() < 0.5 else pattern).copy()


class _Layout:
    """How windows are laid on an input: squares on (c, h, w) images, feature subsets otherwise.

    A window is drawn as a position (the flat index of its top-left pixel on images, its
    feature indices otherwise) and used through the flat indices of the features it covers,
    so a batch of candidates costs a few gathers and scatters of the windows' values rather
    than array passes over whole inputs.
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.image = len(shape) == 3 and min(shape[1], shape[2]) >= 4
        if self.image:
            self.c, self.h, self.w = shape
        else:
            self.c, self.h, self.w = 1, 1, int(np.prod(shape))
        self._offsets: dict[tuple[int, int], np.ndarray] = {}

    @property
    def area(self) -> int:
        return self.h * self.w

    def side(self, fraction: float, smallest: int) -> int:
        """Window side (images) or feature count (other inputs) covering ``fraction`` of the features."""
        if not self.image:
            return min(max(round(fraction * self.area), 1), self.area)
        s = max(round(math.sqrt(fraction * self.area)), smallest)
        return min(s, min(self.h, self.w) - 1)

    def draw(self, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """One random window per input: the flat index of its top-left pixel on images, (n,);
        its feature indices otherwise, (n, size)."""
        if not self.image:
            # The features of the ``size`` smallest of n uniform draws: a uniform random subset.
            return rng.random((n, self.w)).argsort(axis=1)[:, :size]
        rows = rng.integers(0, self.h - size + 1, n)
        cols = rng.integers(0, self.w - size + 1, n)
        return rows * self.w + cols

    def index(self, where: np.ndarray, size: int, channels: int) -> np.ndarray:
        """(n, m) flat indices, into an input's (channels, h, w), of the features its window
        covers, channel after channel."""
        if not self.image:
            return where
        offsets = self._offsets.get((size, channels))
        if offsets is None:  # the window's features relative to its top-left pixel
            span = np.arange(size)
            pixels = (span[:, None] * self.w + span).ravel()
            offsets = (np.arange(channels)[:, None] * self.area + pixels).ravel()
            self._offsets[(size, channels)] = offsets
        return where[:, None] + offsets

    def scatter(self, index: np.ndarray, values, channels: int, dtype) -> np.ndarray:
        """(n, channels, h * w) zeros holding ``values`` (a scalar or (n, m)) at ``index``."""
        n = len(index)
        out = np.zeros((n, channels * self.area), dtype=dtype)
        out.reshape(-1)[index + (np.arange(n) * out.shape[1])[:, None]] = values
        return out.reshape(n, channels, self.area)


def _norms(delta: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.sqrt((delta**2).sum(axis=axes, keepdims=True))


class _LinfValues:
    """The values an L-inf window gives a feature: ``raw`` is x0 + eps or x0 - eps clipped to
    the input range; ``final`` is that after make_feasible, looked up in a table of both
    choices for every feature (x0 - eps first, then x0 + eps). Without feature constraints
    make_feasible acts feature by feature, so a candidate made of ``final`` values needs no
    projection per query (``pixelwise``); with constraints, candidates are made of ``raw``
    values and projected."""

    def __init__(self, img: np.ndarray, eps: float, spec, feasible, bounds=None):
        self.x0 = img.reshape(-1)  # float64, flat
        self.eps = eps
        # Each feature's bounds in the units of ``img`` (numbers when all share one range;
        # the spec's shared range when not given).
        lower, upper = bounds if bounds is not None else (spec.lower, spec.upper)
        self.lower = lower if np.ndim(lower) == 0 else np.broadcast_to(np.reshape(lower, img.shape[1:]), img.shape).reshape(-1)
        self.upper = upper if np.ndim(upper) == 0 else np.broadcast_to(np.reshape(upper, img.shape[1:]), img.shape).reshape(-1)
        self.pixelwise = not spec.constraints
        if self.pixelwise:
            rows = np.arange(len(img))
            raw = (np.clip(self.x0 + eps * sign, self.lower, self.upper).reshape(img.shape) for sign in _SIGNS)
            self.final_table = np.concatenate([feasible(values, rows).reshape(-1) for values in raw])

    def raw(self, at: np.ndarray, up: np.ndarray) -> np.ndarray:
        """x0 +- eps at flat positions ``at`` (+ where ``up`` is 1), clipped to the input range."""
        lower = self.lower if np.ndim(self.lower) == 0 else np.take(self.lower, at)
        upper = self.upper if np.ndim(self.upper) == 0 else np.take(self.upper, at)
        return np.clip(np.take(self.x0, at) + self.eps * _SIGNS[up], lower, upper)

    def final(self, at: np.ndarray, up: np.ndarray) -> np.ndarray:
        """``raw`` after make_feasible (pixelwise only)."""
        return np.take(self.final_table, at + up * self.x0.size)


class SquareAttack(EvasionCheck):
    id = "FM01.square"
    mode = "FM01"
    title = "Black-box Square Attack evasion (probabilities)"
    needs = Needs(outputs="probabilities", roles=("test",))
    default_budget = 20_000
    # EPSILON_METRICS: the budget in target units, per feature (util/epsilon.FeatureUnits.describe)
    metrics = (*EVASION_METRICS, "queries_per_input", *EPSILON_METRICS)
    param_docs = {
        "norm": NORM_DOC.format("linf"),
        "epsilon": EPSILON_DOC,
        "p_init": "initial share of the input changed per square, in (0, 1] (null: 0.3 for linf, 0.1 for l2)",
        "n_inputs": N_INPUTS_DOC,
        "success_threshold": THRESHOLD_DOC,
    }

    def __init__(
        self,
        norm: str = "linf",
        epsilon: float | None = None,
        p_init: float | None = None,
        n_inputs: int = 64,
        success_threshold: float = 0.3,
    ):
        self.norm = norm
        self.epsilon = epsilon
        self.p_init = p_init
        self.n_inputs = n_inputs
        self.success_threshold = success_threshold

    def _validate(self, target=None) -> tuple[float, float] | None:
        require_choice(self, "norm", ("linf", "l2"))
        require_at_least_one(self, "n_inputs")
        if self.p_init is not None and not 0 < self.p_init <= 1:
            raise ValueError("p_init must be in (0, 1]")
        if target is None:  # the default epsilon depends on the target's input range
            return self.ball_epsilon(None)
        eps = self.ball_epsilon(target)
        p_init = self.p_init if self.p_init is not None else (0.3 if self.norm == "linf" else 0.1)
        return eps, float(p_init)

    def attack_epsilon(self, target) -> float:
        return self._validate(target)[0]

    def plan(self, run: EvasionRun) -> Plan:
        if run.budget < 1:
            raise NotApplicable("a budget of 0 queries leaves nothing to attack with")
        n = min(len(run.xa), run.budget)  # every attacked input gets at least one query
        return Plan(n, per_input=run.budget // n if n else 0)

    def run_attack(self, run: EvasionRun) -> Attempt:
        eps, p_init = self._validate(run.target)
        per_input = run.plan.per_input
        x_adv, used, trace, margins = self._attack(run.target, run.xa, run.ya, eps, p_init, per_input, run.rng,
                                                    run.ctx)
        return Attempt(x_adv, queries=used, curve_queries=trace.success_vs_queries(eps), state={"margins": margins})

    def progress_left(self, run, attempt) -> str:
        start, half, end = attempt.state["margins"]
        # An input the search broke but the re-check did not count (too large, or the clean
        # input itself flips) is not on its way to counting either.
        end = np.where((end <= 0) & ~run.success, np.inf, end)
        return margins_still_falling(start=start, half=half, end=end,
                                     threshold=self.success_threshold, budget=run.budget,
                                     per_input=int(run.plan.per_input))

    def extra_metrics(self, run, attempt) -> dict:
        return {"queries_per_input": int(run.plan.per_input)}

    def _size_curve(self, run, attempt) -> dict:
        size = run.units.size(attempt.x_adv - run.xa, self.norm)
        sizes = np.where(run.success, size, np.inf)
        return success_vs_size(sizes, run.epsilon * np.linspace(0.1, 1.0, 10))

    def attack_evidence(self, run, attempt) -> dict:
        return {"curve": self._size_curve(run, attempt), "curve_queries": attempt.curve_queries}

    def example_arrays(self, run, attempt) -> dict:
        return {"queries": attempt.queries}

    def summary(self, run, attempt, metrics) -> str:
        return (
            f"Square Attack ({self.norm}, epsilon {run.epsilon:.3g}{units_note(run.units)}, "
            f"{count(run.plan.per_input, 'query')} per input) turned {int(run.success.sum())} of {run.n} correctly "
            f"classified inputs into errors ({metrics['success_rate']:.0%})."
        )

    # -- the attack -------------------------------------------------------------------
    # Points are kept in float32, the dtype make_feasible returns and the target takes, and
    # cast to float64 only where the arithmetic needs it (the L2 step, the norms).
    def _attack(self, target, x0, y, eps, p_init, per_input, rng, ctx):
        """Adversarial candidates (the best found per input), queries used per input, trace."""
        n = len(x0)
        trace = AttackTrace(n)
        used = np.zeros(n, dtype=np.int64)
        if n == 0 or per_input == 0:
            return x0.copy(), used, trace, (np.zeros(n),) * 3
        spec = target.input_spec
        layout = _Layout(spec.shape)
        dims = (layout.c, layout.h, layout.w)
        # The search runs in range units (each feature divided by its own range; nothing
        # changes for [0, 1] images): windows, signs and the L2 mass move every feature in
        # proportion to its range. Candidates go back to target units to be made feasible
        # and to be sent.
        units = FeatureUnits.from_spec(spec)
        img = np.asarray(units.to_unit(x0), np.float64).reshape(n, *dims)

        def feasible(cand, rows):
            cand = units.from_unit(np.asarray(cand).reshape(len(rows), *spec.shape), x0.dtype)
            out = make_feasible(cand, x0[rows], spec, eps, self.norm, units)
            return units.to_unit(out).reshape(len(rows), *dims)

        def margins(cand, rows):
            probs = target.predict(units.from_unit(cand.reshape(len(rows), *spec.shape), x0.dtype))
            used[rows] += 1
            return margin_loss(probs, y[rows])

        all_rows = np.arange(n)
        best = feasible(self._init(img, eps, layout, rng), all_rows)
        margin = margins(best, all_rows)
        start = half = margin.copy()
        # Size of each broken input's perturbation (inf while unbroken); a broken input is no
        # longer attacked, so its size is computed once, when it breaks.
        sizes = np.full(n, np.inf)
        broken = np.flatnonzero(margin < 0)
        sizes[broken] = self._size(best[broken] - img[broken])
        trace.record(used, sizes)
        if self.norm == "linf":
            bounds = (spec.lower, spec.upper) if units.identity and units.shared else units.unit_bounds()
            values = _LinfValues(img, eps, spec, feasible, bounds)
        else:
            delta = best - img  # the L2 step works on the perturbation, in float64
        steps = per_input - 1
        for step in range(steps):
            if step == steps // 2:
                half = margin.copy()
            rows = np.flatnonzero(margin >= 0)
            if rows.size == 0:
                break
            fraction = window_fraction(p_init, step, steps)
            if self.norm == "linf":
                cand = self._linf_step(rows, best, values, fraction, layout, rng, feasible)
            else:
                cand = feasible(self._l2_step(img[rows], delta[rows], eps, fraction, layout, rng), rows)
            new = margins(cand, rows)
            better = new < margin[rows]
            improved = rows[better]
            best[improved] = cand[better]
            margin[improved] = new[better]
            if self.norm == "l2":
                delta[improved] = cand[better] - img[improved]
            broken = rows[better & (new < 0)]
            if broken.size:
                sizes[broken] = self._size(best[broken] - img[broken])
            trace.record(used, sizes)
            if step % 50 == 0:
                ctx.progress(step + 1, steps)
        # Margins as progress (start, half, end): how close the unbroken inputs came.
        return units.from_unit(best.reshape(n, *spec.shape), x0.dtype), used, trace, (start, half, margin.copy())

    def _size(self, delta):
        return (linf if self.norm == "linf" else l2)(delta)

    def _init(self, img, eps, layout, rng):
        n, c, h, w = img.shape
        if self.norm == "linf":
            # Vertical stripes of +-eps (one sign per column and channel); random signs for tables.
            shape = (n, c, 1, w) if layout.image else img.shape
            return img + eps * rng.choice([-1.0, 1.0], size=shape)
        if layout.image:
            # A grid of bumps with random signs, scaled to the L2 budget.
            side = max(h // 5, 1)
            pattern = bump(side, rng) if side >= 2 else np.ones((1, 1))
            delta = np.zeros_like(img)
            for top in range((h % side) // 2, h - side + 1, side):  # a 5x5 grid: loops over tiles, not pixels
                for left in range((w % side) // 2, w - side + 1, side):
                    signs = rng.choice([-1.0, 1.0], size=(n, c, 1, 1))
                    delta[:, :, top:top + side, left:left + side] += pattern * signs
        else:
            delta = rng.standard_normal(img.shape)
        return img + delta / np.maximum(_norms(delta, (1, 2, 3)), 1e-12) * eps

    def _linf_step(self, rows, best, values, fraction, layout, rng, feasible):
        """Candidates for ``rows``: each one's current best with one window set to x0 +- eps."""
        k, c = len(rows), layout.c
        side = layout.side(fraction, smallest=1)
        index = layout.index(layout.draw(k, side, rng), side, c)  # (k, m): the window's features
        cand = best[rows]  # a copy: the window is written into it
        features = cand[0].size
        mine = index + (np.arange(k) * features)[:, None]  # the window in cand, flattened
        at = index + (rows * features)[:, None]  # the window among all inputs' features
        # _random_signs' draws, 1 meaning +eps: one per channel on images, one per feature otherwise.
        if layout.image:
            up = np.repeat(rng.integers(0, 2, size=(k, c)), side * side, axis=1)
        else:
            up = np.take(rng.integers(0, 2, size=(k, layout.w)), mine)
        flat = cand.reshape(-1)  # a view of cand
        # A proposal equal to the current point wastes a query: flip its signs instead.
        same = ~(np.abs(values.raw(at, up) - flat[mine]) > 1e-7).any(axis=1)
        up ^= same[:, None]
        if values.pixelwise:
            flat[mine] = values.final(at, up)
            return cand
        flat[mine] = values.raw(at, up)  # rounded to float32 on the way in, as make_feasible's cast would
        return feasible(cand, rows)

    def _l2_step(self, x0, delta, eps, fraction, layout, rng):
        """Move perturbation mass into a new window (window 1) from another (window 2).

        ``delta`` is the current perturbation (float64), overwritten. Arithmetic runs on the
        windows' values only; each norm is still summed over a full-size array (zero outside
        its windows), so numpy adds the same numbers in the same order as over whole inputs.
        """
        n, c = len(x0), layout.c
        side = layout.side(fraction, smallest=3 if layout.image else 1)
        if layout.image and side % 2 == 0 and side + 1 < min(layout.h, layout.w):
            side += 1
        delta = delta.reshape(n, c, layout.area)
        start = (np.arange(n) * delta[0].size)[:, None]
        first = layout.index(layout.draw(n, side, rng), side, c) + start  # window 1 in delta, flattened
        second = layout.index(layout.draw(n, side, rng), side, c) + start
        flat = delta.reshape(-1)  # a view of delta
        if layout.image:
            pattern = _bump_pattern(side)
            pattern = pattern.T if rng.random() < 0.5 else pattern  # the draw bump() makes
            window = _random_signs(rng, (n, c, 1)) * pattern.ravel()
        else:
            noise = rng.standard_normal((n, 1, layout.w)).reshape(-1)
            window = noise[first].reshape(n, c, -1) * _random_signs(rng, (n, c, 1))
        inside, outgoing = flat[first].reshape(window.shape), flat[second]

        def norms(*parts):  # per channel, of an array holding ``parts`` (index, values), zero elsewhere
            canvas = np.zeros(delta.shape)
            for at, values in parts:
                canvas.reshape(-1)[at] = values.reshape(at.shape) ** 2
            return np.sqrt(canvas.sum(axis=2, keepdims=True))  # (n, c, 1)

        in_window = norms((first, inside))
        both = norms((second, outgoing), (first, inside))
        total = _norms(delta, (1, 2))  # (n, 1, 1)
        new = window + inside / (1e-10 + in_window)
        budget = np.sqrt(np.maximum(eps**2 - total**2, 0.0) / c + both**2)
        new = new / np.maximum(norms((first, new)), 1e-12) * budget
        flat[second] = 0.0
        flat[first] = new.reshape(first.shape)
        x0 = x0.reshape(delta.shape)
        return (x0 + delta / np.maximum(_norms(delta, (1, 2)), 1e-12) * eps).reshape(n, c, layout.h, layout.w)

    # -- evidence ---------------------------------------------------------------------
    def extra_plots(self, run, attempt) -> list[str]:
        curve_q, curve_e = attempt.curve_queries, self._size_curve(run, attempt)
        out = self.curve_plot(run, "queries", {"success rate": (curve_q["queries"], curve_q["success_rate"])},
                              title="Square Attack success against queries per input",
                              xlabel="queries per input") if curve_q["queries"] else []
        return out + self.curve_plot(run, "size", {"success rate": (curve_e["epsilon"], curve_e["success_rate"])},
                                     title="Inputs broken with a perturbation at most this size",
                                     xlabel=f"perturbation size ({self.norm})")
