"""The procedure every evasion check shares, written once; a subclass writes its attack step.

In the spirit of Foolbox 3's attack classes: :class:`EvasionCheck` draws the inputs, keeps
the ones the target gets right (clean accuracy), asks the subclass how many of them the
budget covers, lets it attack them (:meth:`EvasionCheck.run_attack`), then judges every
example again through the target's ordinary ``predict`` path, so a white-box mirror or a
surrogate that disagrees with the deployed model cannot inflate the result. It reports the
metrics every evasion check shares (:func:`evasion_metrics`, rates with 95% intervals), the
examples file and plots, and says inconclusive when the budget rather than the model decided
(:mod:`.undecided`).

Two kinds of attack, as in Foolbox. A fixed-epsilon attack (PGD, Square, transfer) returns
points inside the ball, and an input counts when the target now gets it wrong. A
minimisation attack (``minimizes = True``: fast minimum-norm, decision-based) returns the
smallest perturbation it found, and an input counts only when the target gets it wrong and
the perturbation is within epsilon.

The order of everything that draws from the check's RNG or sends a query is fixed here:
sample (one permutation), clean predictions (evaluation queries), the plan, the attack, the
re-check (evaluation queries unless sending the example is the attack itself).
"""
from __future__ import annotations

import abc
import dataclasses
import functools
from typing import Any, ClassVar

import numpy as np

from ...util.epsilon import FeatureUnits, epsilon_units
from ...util.evidence import adversarial_grid, save_arrays, try_plot
from ...util.norms import l2, linf, median_or_none
from ...util.stats import with_intervals
from ..base import Check, CheckContext, Inconclusive, Outcome
from .undecided import undecided_evasion


#: The metrics every evasion check reports first, in the order they are declared.
EVASION_METRICS = (
    "success_rate", "clean_accuracy", "robust_accuracy", "median_queries", "median_l2",
    "median_linf", "norm", "epsilon", "attacked_inputs",
)

#: What the parameters the evasion checks share mean (``redline checks CHECK`` shows them).
NORM_DOC = "norm that measures the perturbation: linf or l2 (default {})"
EPSILON_DOC = ("largest perturbation allowed, in the attack's norm, as a fraction of each feature's range "
               "(null: 0.2 for L-inf; see the README's 'Input domain and epsilon')")
N_INPUTS_DOC = "how many test inputs to attack (fewer if the budget cannot cover them)"
THRESHOLD_DOC = "success rate at or above which the model is called vulnerable"
BPDA_DOC = "attack gradient-masking layers through an identity backward pass (true/false)"


def evasion_metrics(
    norm: str,
    epsilon: float,
    x: np.ndarray,
    x_adv: np.ndarray,
    success: np.ndarray,
    correct: np.ndarray,
    queries_to_success: np.ndarray | None,
    units=None,
) -> dict[str, Any]:
    """The metrics every evasion check reports (DESIGN.md: FM01/FM07/FM15 family).

    ``success`` marks attacked inputs (rows of ``x``) the target now gets wrong; ``correct``
    marks which sampled inputs it got right before the attack (only those were attacked).

    With ``units`` (:class:`redline.util.epsilon.FeatureUnits`) ``epsilon`` and the median
    sizes are in range units, and the effective per-feature epsilon is summarised."""
    success = np.asarray(success, dtype=bool)
    success_rate = float(success.mean()) if success.size else 0.0
    clean_accuracy = float(np.mean(correct)) if len(correct) else 0.0
    delta = (np.asarray(x_adv, np.float64) - x)[success]
    if units is not None:
        sizes = {"linf": units.size(delta, "linf"), "l2": units.size(delta, "l2")}
    else:
        sizes = {"linf": linf(delta), "l2": l2(delta)}
    median_queries = median_or_none(np.asarray(queries_to_success)[success]) if queries_to_success is not None else None
    metrics = {
        "norm": norm,
        "epsilon": float(epsilon),
        "success_rate": success_rate,
        "clean_accuracy": clean_accuracy,
        "robust_accuracy": clean_accuracy * (1.0 - success_rate),
        "median_queries": median_queries,
        "median_linf": median_or_none(sizes["linf"]),
        "median_l2": median_or_none(sizes["l2"]),
        "attacked_inputs": int(len(x)),
    }
    if units is not None:
        metrics.update(units.describe(epsilon)[0])
    # Rates carry their exact 95% intervals: on 5 attacked inputs 60% means 15% to 95%.
    return with_intervals(metrics, {"success_rate": success.size, "clean_accuracy": len(correct)})


def require_choice(check, name: str, options: tuple[str, str]) -> None:
    """ValueError unless parameter ``name`` of ``check`` is one of the two ``options``."""
    value = getattr(check, name)
    if value not in options:
        raise ValueError(f"{name} must be {options[0]!r} or {options[1]!r}, not {value!r}")


def require_at_least_one(check, *names: str) -> None:
    """ValueError naming the first of the parameters ``names`` of ``check`` below 1."""
    for name in names:
        if int(getattr(check, name)) < 1:
            raise ValueError(f"{name} must be at least 1")


@dataclasses.dataclass
class Plan:
    """How the budget is spent: ``n`` attacked inputs (the first ``n`` correctly classified
    ones), ``per_input`` queries each when the attack fixes that, and whatever else the
    attack decided (``details``: steps, curve levels, labelling queries...)."""

    n: int
    per_input: int | None = None
    details: Any = None


@dataclasses.dataclass
class Attempt:
    """What an attack step returns, one row per attacked input.

    ``x_adv``: the adversarial candidates in target units (the input itself where none was
    found). ``queries``: queries each input needed to succeed (``median_queries``), None
    when not measured. Minimisation attacks add ``found`` (a perturbation was found at any
    size) and may add ``sizes`` (its size in the attack's norm, range units; measured from
    ``x_adv`` when left None). ``curve_queries``: success against queries per input, which
    tells a budget still climbing from a model that holds. ``state``: anything the check's
    own metrics, evidence and summary read later.
    """

    x_adv: np.ndarray
    queries: np.ndarray | None = None
    found: np.ndarray | None = None
    sizes: np.ndarray | None = None
    curve_queries: dict[str, list] | None = None
    state: Any = None


# Relative round-off allowed on a fixed-budget attack's size against epsilon (float32 inputs).
_SIZE_SLACK = 1e-4


@dataclasses.dataclass
class EvasionRun:
    """One run of an evasion check: its inputs, plan and, after the re-check, the judgement."""

    target: Any
    data: Any
    budget: int
    rng: np.random.Generator
    ctx: CheckContext
    epsilon: float
    rows_x: np.ndarray  # the rows the inputs were drawn from
    rows_y: np.ndarray
    idx: np.ndarray  # which of those rows were drawn
    x: np.ndarray
    y: np.ndarray
    correct: np.ndarray  # the target got the drawn input right before any attack
    xa: np.ndarray | None = None  # the attacked inputs: correct ones, as many as the plan covers
    ya: np.ndarray | None = None
    plan: Plan | None = None
    # Filled by the re-check through ``predict``:
    adv_pred: np.ndarray | None = None
    found: np.ndarray | None = None  # the target gets the example wrong (at any size)
    success: np.ndarray | None = None  # ... and, for minimisation attacks, it lies within epsilon
    sizes: np.ndarray | None = None  # perturbation size in range units (minimisation attacks: inf where not found)
    clean_flips: np.ndarray | None = None  # the unperturbed input, asked again, was no longer answered right

    @property
    def n(self) -> int:
        return len(self.xa)

    @functools.cached_property
    def units(self) -> FeatureUnits:
        """Each feature's range: what epsilon and the perturbation sizes are measured in."""
        return FeatureUnits.from_spec(self.target.input_spec)


class EvasionCheck(Check):
    """Base of the evasion checks: subclasses implement :meth:`plan`, :meth:`run_attack` and
    :meth:`summary`, and add their own metrics, evidence and plots through the hooks."""

    #: The rows inputs are drawn from: "test" (all test rows) or "evaluation" (the rows
    #: apart from the attacker's own, ``data.evaluation_data()``).
    sample_rows: ClassVar[str] = "test"
    #: The attack looks for the smallest perturbation; success is judged against epsilon here.
    minimizes: ClassVar[bool] = False
    #: Relative slack on ``size <= epsilon`` for minimisation attacks (float round-off).
    within_slack: ClassVar[float] = 0.0
    #: Sending the example is the attack itself (transfer): the re-check counts as attack queries.
    recheck_is_attack: ClassVar[bool] = False
    #: Whether a small budget can make a "not vulnerable" inconclusive (:mod:`.undecided`).
    budget_can_decide: ClassVar[bool] = True

    # -- what a subclass writes ------------------------------------------------------
    def ball_epsilon(self, target) -> float | None:
        """``epsilon`` in range units in the attack's norm (redline.util.epsilon). Without a
        target only a given epsilon is checked: the default depends on the input range."""
        if target is None:
            return epsilon_units(self.epsilon, None, self.norm) if self.epsilon is not None else None
        return epsilon_units(self.epsilon, target.input_spec, self.norm)

    def attack_epsilon(self, target) -> float:
        """Validate the parameters against the target; the epsilon success is judged at."""
        return self._validate(target)

    @abc.abstractmethod
    def plan(self, run: EvasionRun) -> Plan:
        """How many of the correctly classified inputs (``run.xa``) the budget covers, and how;
        raise NotApplicable when it covers none."""

    @abc.abstractmethod
    def run_attack(self, run: EvasionRun) -> Attempt:
        """Attack ``run.xa`` (labels ``run.ya``) within the plan; the attack step proper."""

    @abc.abstractmethod
    def summary(self, run: EvasionRun, attempt: Attempt, metrics: dict[str, Any]) -> str:
        """One or two sentences on what the attack achieved."""

    def extra_metrics(self, run: EvasionRun, attempt: Attempt) -> dict[str, Any]:
        """Metrics the check reports beyond the shared ones (added after them)."""
        return {}

    def attack_evidence(self, run: EvasionRun, attempt: Attempt) -> dict[str, Any]:
        """Evidence placed before the description of the ball (curves...)."""
        return {}

    def attack_notes(self, run: EvasionRun, attempt: Attempt) -> dict[str, Any]:
        """Evidence placed after the description of the ball (notes on the attack)."""
        return {}

    def example_arrays(self, run: EvasionRun, attempt: Attempt) -> dict[str, np.ndarray]:
        """Arrays saved with the examples beyond x, x_adv, y and y_adv."""
        return {}

    def extra_plots(self, run: EvasionRun, attempt: Attempt) -> list[str]:
        """Plots drawn before the grid of examples (curves)."""
        return []

    def examples_plot(self, run: EvasionRun, attempt: Attempt) -> list[str]:
        """The picture of the examples: originals, adversarials and their difference, where broken."""
        rel = adversarial_grid(run.ctx, f"{self.id}-examples.png", run.xa, attempt.x_adv, run.found)
        return [rel] if rel else []

    def curve_plot(self, run: EvasionRun, name: str, series: dict, *, title: str, xlabel: str,
                   ylabel: str = "success rate") -> list[str]:
        """The line plot ``<check id>-<name>.png`` as a list of one path (empty when not writing)."""
        from ...util import plots

        rel = try_plot(run.ctx, f"{self.id}-{name}.png", plots.line_plot, series, title=title, xlabel=xlabel,
                       ylabel=ylabel)
        return [rel] if rel else []

    def progress_left(self, run: EvasionRun, attempt: Attempt) -> str:
        """Why the budget, not the model, ended a not-vulnerable run, when the attack can tell
        from more than its success curve (Square: margins still falling); '' otherwise."""
        return ""

    def clean_changes(self, run: EvasionRun, attempt: Attempt) -> tuple[int, int]:
        """(answers changed, asked): how often the target, asked again about unperturbed inputs
        it had got right, no longer did: each attacked input, asked once more. An attack that
        measures it on more pairs overrides this (EOT)."""
        return (int(run.clean_flips.sum()), run.n) if run.n and run.clean_flips is not None else (0, 0)

    def reachable(self, run: EvasionRun, metrics: dict[str, Any]) -> float | None:
        """The share of inputs broken at any size, when the attack measures it (caps a rising trend)."""
        return None

    # -- the shared procedure --------------------------------------------------------
    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        run = self.prepare(target, data, budget, rng, ctx, self.attack_epsilon(target))
        if run.n == 0:  # nothing attacked is no evidence of robustness
            if not run.correct.any():
                raise Inconclusive(
                    f"the target got none of the {len(run.x)} drawn inputs right, so there is nothing to turn into "
                    "an error (evasion is measured on inputs it classifies correctly); rows it gets right, or their "
                    "true labels if these are wrong, would decide")
            raise Inconclusive(f"the budget of {budget} queries attacks no input; a larger budget would decide")
        attempt = self.run_attack(run)
        self.recheck(run, attempt)
        metrics = self.metrics_for(run, attempt)
        evidence = {**self.attack_evidence(run, attempt), **self.ball_evidence(run),
                    **self.attack_notes(run, attempt)}
        evidence.update(self.artifacts(run, attempt))
        rate = metrics["success_rate"]
        vulnerable = run.n > 0 and rate >= self.success_threshold
        summary = self.summary(run, attempt, metrics)
        undecided = ""
        changed, asked = self.clean_changes(run, attempt)
        noise = changed / asked if asked else 0.0
        if noise > 0:
            evidence["clean_recheck"] = {"changed": changed, "asked": asked, "rate": noise}
            said = (f"asked again about {asked} unperturbed inputs, the target changed its answer on "
                    f"{changed} ({noise:.0%})")
            summary += f" {said[0].upper()}{said[1:]}; only examples whose unperturbed input it still got right count."
            if (vulnerable and rate - noise < self.success_threshold) or (not vulnerable and noise >= self.success_threshold):
                undecided = (f"{said}: its own randomness changes answers about as often as the attack does "
                             f"(success {rate:.0%}), so errors cannot be put down to the perturbations")
                return Outcome(vulnerable=False, metrics=metrics, evidence=evidence, summary=summary,
                               inconclusive=undecided)
        if self.budget_can_decide and not vulnerable:
            # Too few inputs, or a rate still climbing when the queries ran out: the budget decided.
            undecided = undecided_evasion(
                rate=rate, n=run.n, threshold=self.success_threshold, budget=budget,
                per_input=budget // max(run.n, 1), curve=attempt.curve_queries,
                reachable=self.reachable(run, metrics), budget_limited=run.n < int(run.correct.sum())
            ) or self.progress_left(run, attempt)
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def prepare(self, target, data, budget, rng, ctx, epsilon) -> EvasionRun:
        """Draw the inputs, measure clean accuracy on them, plan the budget."""
        rows_x, rows_y = data.evaluation_data() if self.sample_rows == "evaluation" else (data.x_test, data.y_test)
        idx = rng.permutation(len(rows_x))[: int(self.n_inputs)]
        x, y = rows_x[idx].astype(np.float32), rows_y[idx].astype(int)
        with target.ledger.evaluating():
            correct = target.predict_labels(x) == y
        run = EvasionRun(target=target, data=data, budget=budget, rng=rng, ctx=ctx, epsilon=epsilon,
                         rows_x=rows_x, rows_y=rows_y, idx=idx, x=x, y=y, correct=correct,
                         xa=x[correct], ya=y[correct])
        run.plan = self.plan(run)
        run.xa, run.ya = run.xa[: run.plan.n], run.ya[: run.plan.n]
        return run

    def recheck(self, run: EvasionRun, attempt: Attempt) -> None:
        """Judge every example on the deployed prediction path; for a minimisation attack,
        keep only the perturbations within epsilon."""
        x_adv, target = attempt.x_adv, run.target
        if self.recheck_is_attack:
            run.adv_pred = target.predict_labels(x_adv) if len(x_adv) else np.zeros(0, dtype=int)
        else:
            with target.ledger.evaluating():
                run.adv_pred = target.predict_labels(x_adv) if len(x_adv) else np.zeros(0, dtype=int)
        # The unperturbed inputs asked again: a target whose answers change by themselves
        # (random, or a randomised defence) would otherwise have its own flips counted as evasions.
        with target.ledger.evaluating():
            run.clean_flips = target.predict_labels(run.xa) != run.ya if run.n else np.zeros(0, dtype=bool)
        wrong = (run.adv_pred != run.ya) & ~run.clean_flips
        if not self.minimizes:
            # Measured here, not taken from the attack: an input outside the target's bounds is
            # clipped into them, and that move alone can exceed epsilon.
            run.sizes = run.units.size(x_adv - run.xa, self.norm) if run.n else np.zeros(0)
            run.found = wrong
            run.success = wrong & (run.sizes <= run.epsilon * (1 + _SIZE_SLACK))
            return
        run.found = attempt.found & wrong
        sizes = attempt.sizes if attempt.sizes is not None else run.units.size(x_adv - run.xa, self.norm)
        run.sizes = np.where(run.found, sizes, np.inf)
        run.success = run.found & (run.sizes <= run.epsilon * (1 + self.within_slack))

    def metrics_for(self, run: EvasionRun, attempt: Attempt) -> dict[str, Any]:
        """The shared metrics, then the check's own."""
        metrics = evasion_metrics(self.norm, run.epsilon, run.xa, attempt.x_adv, run.success, run.correct,
                                  attempt.queries, units=run.units)
        metrics.update(self.extra_metrics(run, attempt))
        return metrics

    def ball_evidence(self, run: EvasionRun) -> dict[str, Any]:
        """The ball in target units, per feature (util/epsilon.FeatureUnits.describe)."""
        return run.units.describe(run.epsilon)[1]

    def artifacts(self, run: EvasionRun, attempt: Attempt) -> dict[str, Any]:
        """The examples file and the plots, as evidence entries (none when not writing)."""
        out: dict[str, Any] = {}
        rel = save_arrays(run.ctx, f"{self.id}-examples.npz", x=run.xa, x_adv=attempt.x_adv, y=run.ya,
                          y_adv=run.adv_pred, **self.example_arrays(run, attempt))
        if rel:
            out["examples"] = rel
        plots = self.extra_plots(run, attempt) + self.examples_plot(run, attempt)
        if plots:
            out["plots"] = plots
        return out
