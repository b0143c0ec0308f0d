"""FM01 perturbation: black-box Square Attack (Andriushchenko et al. 2020), L-inf and L2.

Needs probabilities only. Each round proposes, for every input that still resists, one
random change confined to a square window (a random subset of features for inputs that are
not images), keeps it when the margin loss ``log p_y - max_{j != y} log p_j`` drops, and
stops on an input as soon as the margin turns negative. Window sizes follow the paper's
schedule, shrinking as queries are spent. Every query is one batched call
for all the inputs still resisting.

Budget: the check attacks ``n_inputs`` correctly classified inputs (fewer if the budget is
smaller than that) and gives each ``budget // n`` queries.
"""
from __future__ import annotations

import numpy as np

from ..util.attack_trace import AttackTrace, success_vs_size
from ..util.epsilon import resolve_epsilon
from ..util.evasion import evasion_metrics
from ..util.evidence import adversarial_grid, save_arrays, try_plot
from ..util.feasible import make_feasible
from ..util.norms import l2, linf
from .base import Check, CheckContext, Needs, NotApplicable, Outcome

# Queries after which the window area halves: the paper's schedule for a 10,000-query budget.
# Smaller budgets keep the same schedule (cut short), so a small budget is not spent on
# windows shrunk too early; larger budgets stretch it.
_HALVINGS = np.array([10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000])
_HORIZON = 10_000


def window_fraction(p_init: float, step: int, steps: int) -> float:
    """Fraction of the features a window covers at ``step`` of ``steps``."""
    scaled = int(step / max(steps, _HORIZON) * _HORIZON)
    return p_init / 2 ** int((scaled > _HALVINGS).sum())


def margin_loss(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log p_y - max over other classes of log p_j; negative once the input is misclassified."""
    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-30, None))
    rows = np.arange(len(y))
    own = logp[rows, y]
    logp[rows, y] = -np.inf
    return own - logp.max(axis=1)


def bump(side: int, rng: np.random.Generator) -> np.ndarray:
    """The L2 attack's window pattern: two opposite-signed pseudo-Gaussian halves, unit norm.

    Each half weights a pixel by how many nested rectangles around the half's centre contain
    it, ring k counting 1/(k+1)^2, so mass concentrates in the middle.
    """
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
    return pattern.T if rng.random() < 0.5 else pattern


class _Layout:
    """How windows are laid on an input: squares on (c, h, w) images, feature subsets otherwise."""

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.image = len(shape) == 3 and min(shape[1], shape[2]) >= 4
        if self.image:
            self.c, self.h, self.w = shape
        else:
            self.c, self.h, self.w = 1, 1, int(np.prod(shape))

    @property
    def area(self) -> int:
        return self.h * self.w

    def side(self, fraction: float, smallest: int) -> int:
        """Window side (images) or feature count (other inputs) covering ``fraction`` of the features."""
        if not self.image:
            return int(np.clip(round(fraction * self.area), 1, self.area))
        s = max(round(np.sqrt(fraction * self.area)), smallest)
        return int(min(s, min(self.h, self.w) - 1))

    def masks(self, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
        """(n, 1, h, w) boolean windows, one random position per input."""
        if not self.image:
            ranks = rng.random((n, self.w)).argsort(axis=1).argsort(axis=1)
            return (ranks < size)[:, None, None, :]
        r0 = rng.integers(0, self.h - size + 1, n)[:, None]
        c0 = rng.integers(0, self.w - size + 1, n)[:, None]
        rows = (np.arange(self.h)[None] >= r0) & (np.arange(self.h)[None] < r0 + size)
        cols = (np.arange(self.w)[None] >= c0) & (np.arange(self.w)[None] < c0 + size)
        return (rows[:, :, None] & cols[:, None, :])[:, None]

    def place(self, mask: np.ndarray, pattern: np.ndarray) -> np.ndarray:
        """Copy a (side, side) pattern into each image's window: (n, 1, h, w), zero elsewhere."""
        rows = mask.any(axis=3)[:, 0]  # (n, h)
        cols = mask.any(axis=2)[:, 0]  # (n, w)
        ri = np.clip(np.arange(self.h)[None] - rows.argmax(axis=1)[:, None], 0, pattern.shape[0] - 1)
        ci = np.clip(np.arange(self.w)[None] - cols.argmax(axis=1)[:, None], 0, pattern.shape[1] - 1)
        return (pattern[ri[:, :, None], ci[:, None, :]] * mask[:, 0])[:, None]


def _norms(delta: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    return np.sqrt((delta**2).sum(axis=axes, keepdims=True))


class SquareAttack(Check):
    id = "FM01.square"
    mode = "FM01"
    title = "Black-box Square Attack evasion (probabilities)"
    needs = Needs(outputs="probabilities")
    default_budget = 20_000

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

    def _validate(self, target) -> tuple[float, float]:
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf' or 'l2', not {self.norm!r}")
        if int(self.n_inputs) < 1:
            raise ValueError("n_inputs must be at least 1")
        if self.p_init is not None and not 0 < self.p_init <= 1:
            raise ValueError("p_init must be in (0, 1]")
        eps = resolve_epsilon(self.epsilon, target.input_spec, self.norm)
        p_init = self.p_init if self.p_init is not None else (0.3 if self.norm == "linf" else 0.1)
        return eps, float(p_init)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        eps, p_init = self._validate(target)
        idx = rng.permutation(len(data.x_test))[: int(self.n_inputs)]
        x, y = data.x_test[idx].astype(np.float32), data.y_test[idx].astype(int)
        with target.ledger.evaluating():
            clean_pred = target.predict_labels(x)
        correct = clean_pred == y
        if budget < 1:
            raise NotApplicable("a budget of 0 queries leaves nothing to attack with")
        xa, ya = x[correct], y[correct]
        n = min(len(xa), budget)  # every attacked input gets at least one query
        xa, ya = xa[:n], ya[:n]
        per_input = budget // n if n else 0

        x_adv, used, trace = self._attack(target, xa, ya, eps, p_init, per_input, rng, ctx)
        with target.ledger.evaluating():
            adv_pred = target.predict_labels(x_adv) if n else np.zeros(0, dtype=int)
        success = adv_pred != ya  # re-checked on the deployed prediction path
        size = (linf if self.norm == "linf" else l2)(x_adv - xa)
        metrics = evasion_metrics(self.norm, eps, xa, x_adv, success, correct, used)
        metrics["queries_per_input"] = int(per_input)
        success_rate = metrics["success_rate"]
        sizes = np.where(success, size, np.inf)
        curve_q = trace.success_vs_queries(eps)
        curve_e = success_vs_size(sizes, eps * np.linspace(0.1, 1.0, 10))
        evidence: dict = {"curve": curve_e, "curve_queries": curve_q}
        rel = save_arrays(ctx, f"{self.id}-examples.npz", x=xa, x_adv=x_adv, y=ya, y_adv=adv_pred, queries=used)
        if rel:
            evidence["examples"] = rel
        plots = self._plots(ctx, curve_q, curve_e, xa, x_adv, success)
        if plots:
            evidence["plots"] = plots
        vulnerable = n > 0 and success_rate >= self.success_threshold
        summary = (
            f"Square Attack ({self.norm}, epsilon {eps:.3g}, {per_input} queries per input) turned "
            f"{int(success.sum())} of {n} correctly classified inputs into errors ({success_rate:.0%})."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)

    # -- the attack -------------------------------------------------------------------
    def _attack(self, target, x0, y, eps, p_init, per_input, rng, ctx):
        """Adversarial candidates (the best found per input), queries used per input, trace."""
        n = len(x0)
        trace = AttackTrace(n)
        used = np.zeros(n, dtype=np.int64)
        if n == 0 or per_input == 0:
            return x0.copy(), used, trace
        spec = target.input_spec
        layout = _Layout(spec.shape)
        img = x0.reshape(n, layout.c, layout.h, layout.w).astype(np.float64)

        def feasible(cand, rows):
            out = make_feasible(cand.reshape(len(rows), *spec.shape).astype(np.float32), x0[rows], spec, eps, self.norm)
            return out.reshape(len(rows), layout.c, layout.h, layout.w).astype(np.float64)

        def margins(cand, rows):
            probs = target.predict(cand.reshape(len(rows), *spec.shape).astype(np.float32))
            used[rows] += 1
            return margin_loss(probs, y[rows])

        all_rows = np.arange(n)
        best = feasible(self._init(img, eps, layout, rng), all_rows)
        margin = margins(best, all_rows)
        trace.record(used, np.where(margin < 0, self._size(best - img), np.inf))
        steps = per_input - 1
        for step in range(steps):
            rows = np.flatnonzero(margin >= 0)
            if rows.size == 0:
                break
            fraction = window_fraction(p_init, step, steps)
            if self.norm == "linf":
                cand = self._linf_step(img[rows], best[rows], eps, fraction, layout, spec, rng)
            else:
                cand = self._l2_step(img[rows], best[rows], eps, fraction, layout, rng)
            cand = feasible(cand, rows)
            new = margins(cand, rows)
            better = new < margin[rows]
            best[rows[better]] = cand[better]
            margin[rows[better]] = new[better]
            trace.record(used, np.where(margin < 0, self._size(best - img), np.inf))
            if step % 50 == 0:
                ctx.progress(step + 1, steps)
        return best.reshape(n, *spec.shape).astype(np.float32), used, trace

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

    def _linf_step(self, x0, best, eps, fraction, layout, spec, rng):
        n, c = len(x0), layout.c
        side = layout.side(fraction, smallest=1)
        mask = layout.masks(n, side, rng)
        sign_shape = (n, c, 1, 1) if layout.image else (n, c, 1, layout.w)
        signs = rng.choice([-1.0, 1.0], size=sign_shape)
        window = np.clip(x0 + eps * signs, spec.lower, spec.upper)
        cand = np.where(mask, window, best)
        # A proposal equal to the current point wastes a query: flip its signs instead.
        same = ~(mask & (np.abs(cand - best) > 1e-7)).reshape(n, -1).any(axis=1)
        if same.any():
            flipped = np.clip(x0 - eps * signs, spec.lower, spec.upper)
            cand[same] = np.where(mask[same], flipped[same], best[same])
        return cand

    def _l2_step(self, x0, best, eps, fraction, layout, rng):
        """Move perturbation mass into a new window (window 1) from another (window 2)."""
        n, c = len(x0), layout.c
        delta = best - x0
        if layout.image:
            side = layout.side(fraction, smallest=3)
            side = side + 1 if side % 2 == 0 and side + 1 < min(layout.h, layout.w) else side
            m1, m2 = layout.masks(n, side, rng), layout.masks(n, side, rng)
            pattern = layout.place(m1, bump(side, rng))
        else:
            side = layout.side(fraction, smallest=1)
            m1, m2 = layout.masks(n, side, rng), layout.masks(n, side, rng)
            pattern = rng.standard_normal((n, 1, 1, layout.w)) * m1
        in_window = _norms(delta * m1, (2, 3))  # (n, c, 1, 1)
        total = _norms(delta, (1, 2, 3))  # (n, 1, 1, 1)
        both = _norms(delta * (m1 | m2), (2, 3))
        new = pattern * rng.choice([-1.0, 1.0], size=(n, c, 1, 1)) + delta * m1 / (1e-10 + in_window)
        budget = np.sqrt(np.maximum(eps**2 - total**2, 0.0) / c + both**2)
        new = new / np.maximum(_norms(new, (2, 3)), 1e-12) * budget
        delta = np.where(m2, 0.0, delta)
        delta = np.where(m1, new, delta)
        return x0 + delta / np.maximum(_norms(delta, (1, 2, 3)), 1e-12) * eps

    # -- evidence ---------------------------------------------------------------------
    def _plots(self, ctx, curve_q, curve_e, xa, x_adv, success) -> list[str]:
        from ..report import plots

        out = []
        if curve_q["queries"]:
            rel = try_plot(ctx, f"{self.id}-queries.png", plots.line_plot,
                           {"success rate": (curve_q["queries"], curve_q["success_rate"])},
                           title="Square Attack success against queries per input", xlabel="queries per input",
                           ylabel="success rate")
            if rel:
                out.append(rel)
        rel = try_plot(ctx, f"{self.id}-size.png", plots.line_plot,
                       {"success rate": (curve_e["epsilon"], curve_e["success_rate"])},
                       title="Inputs broken with a perturbation at most this size",
                       xlabel=f"perturbation size ({self.norm})", ylabel="success rate")
        if rel:
            out.append(rel)
        rel = adversarial_grid(ctx, f"{self.id}-examples.png", xa, x_adv, success)
        if rel:
            out.append(rel)
        return out
