"""FM02 feedback-loop poisoning (the taxonomy's chatbot scenario): users' data retrains the model.

A simulation of a system that retrains every round on what its users submit: each round
``round_size`` new labelled rows arrive (as a fraction of the original training set), a
share ``attacker_fraction`` of them from attackers. Honest users submit attacker-unknown
population rows (the data set's pool) with their true labels; attackers submit small
variations of one chosen input labelled with the class they want it to get. After each
round the target's recipe retrains on everything collected so far (``target.retrain``) and
the chosen input is checked.

For every attacker fraction in ``fractions`` and each of ``n_targets`` chosen inputs, the
check records the round at which the chosen input flips (if it does within ``rounds``).
Reported at ``report_fraction``: ``target_success_rate`` (chosen inputs flipped),
``rounds_to_flip`` (median round of those that flipped), ``poison_rate`` (the attackers'
median share of the training data when the input flipped, or at the end), and over all
fractions ``attacker_fraction``: the smallest share of users that flips most chosen inputs.
The same rounds are run with honest users only (``baseline_success_rate``): vulnerable needs
``target_success_rate`` at ``success_threshold`` and at least half of it above that baseline,
since an input near the boundary can change class as the model retrains, attack or not.

Queries: choosing inputs asks the deployed target for its answers on candidate held-out
rows (attack queries); every model retrained in the simulation is charged to the same
ledger, and checking the chosen inputs after each round counts as evaluation.
"""
from __future__ import annotations

import numpy as np

from ...util import plots
from ...util.evidence import try_plot
from ...util.stats import with_intervals
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .poisoning import TrainingPipeline


class FeedbackLoopPoisoning(Check):
    id = "FM02.feedback_loop"
    mode = "FM02"
    title = "Poisoning through a retraining feedback loop"
    needs = Needs(trainable=True, roles=("train", "test"), attacker=True)
    default_budget = 1000
    metrics = (
        "attacker_fraction", "baseline_success_rate", "min_attacker_fraction", "poison_rate", "rounds", "rounds_to_flip",
        "target_success_rate", "targets"
    )
    param_docs = {
        "fractions": "shares of users who attack, each simulated",
        "report_fraction": "the attacker share the verdict is judged at",
        "rounds": "retraining rounds simulated",
        "round_size": "new rows per round, as a share of the training set, in (0, 1]",
        "n_targets": "inputs the attackers try to flip",
        "spread": "noise of the attackers' copies, relative to the input range",
        "success_threshold": "share of targets flipped at or above which the loop is vulnerable",
    }

    def __init__(
        self,
        fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2),
        report_fraction: float = 0.1,
        rounds: int = 10,
        round_size: float = 0.1,
        n_targets: int = 3,
        spread: float = 0.03,
        success_threshold: float = 0.5,
    ):
        self.fractions = fractions
        self.report_fraction = report_fraction
        self.rounds = rounds
        self.round_size = round_size
        self.n_targets = n_targets
        self.spread = spread
        self.success_threshold = success_threshold

    def _validate(self) -> list[float]:
        fractions = sorted({float(f) for f in self.fractions} | {float(self.report_fraction)})
        if fractions[0] <= 0 or fractions[-1] > 1:
            raise ValueError("attacker fractions must lie in (0, 1]")
        if int(self.rounds) < 1 or int(self.n_targets) < 1 or not 0 < self.round_size <= 1 or self.spread < 0:
            raise ValueError("rounds and n_targets must be at least 1, round_size in (0, 1], spread >= 0")
        return fractions

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        fractions = self._validate()
        x, y = np.asarray(data.x_train), np.asarray(data.y_train, dtype=np.int64)
        x_pool, y_pool = data.attacker_data()
        k = max(target.n_classes, int(y.max()) + 1)
        per_round = max(1, round(self.round_size * len(x)))
        chosen, wanted = self._choose(target, data, k, budget, rng)
        if not len(chosen):
            raise NotApplicable("the target classifies none of the candidate held-out inputs correctly")
        pipeline = TrainingPipeline(target, seed=int(rng.integers(2**31)))
        spec = target.input_spec

        flips: dict[float, list[tuple[int | None, float]]] = {}
        for i, fraction in enumerate(fractions):
            flips[fraction] = [
                self._simulate(pipeline, x, y, x_pool, y_pool, x0, label, fraction, per_round, spec, rng)
                for x0, label in zip(chosen, wanted)
            ]
            ctx.progress(i + 1, len(fractions))

        # The same rounds with honest users only: a chosen input near the boundary can change
        # class as the model retrains on more data, attack or not.
        honest = [self._simulate(pipeline, x, y, x_pool, y_pool, x0, label, 0.0, per_round, spec, rng)
                  for x0, label in zip(chosen, wanted)]
        baseline = float(np.mean([r is not None for r, _ in honest]))

        def success(fraction):
            return float(np.mean([r is not None for r, _ in flips[fraction]]))

        report = flips[float(self.report_fraction)]
        flipped = [(r, share) for r, share in report if r is not None]
        shares = [share for _, share in (flipped or report)]
        enough = [f for f in fractions if success(f) >= self.success_threshold]
        metrics = {
            "target_success_rate": success(float(self.report_fraction)),
            "rounds_to_flip": float(np.median([r for r, _ in flipped])) if flipped else None,
            "poison_rate": float(np.median(shares)),
            "attacker_fraction": float(self.report_fraction),
            "min_attacker_fraction": enough[0] if enough else None,
            "rounds": int(self.rounds),
            "targets": len(chosen),
            "baseline_success_rate": baseline,
        }
        with_intervals(metrics, {"target_success_rate": len(chosen)})
        curve = {
            "attacker_fraction": fractions,
            "target_success_rate": [success(f) for f in fractions],
            "median_rounds_to_flip": [
                float(np.median([r for r, _ in flips[f] if r is not None])) if success(f) else None for f in fractions
            ],
        }
        evidence: dict = {"curve": curve}
        plot = try_plot(
            ctx, f"{self.id}-curve.png", plots.line_plot, {"chosen inputs flipped": (fractions, curve["target_success_rate"])},
            title=f"Chosen inputs flipped within {self.rounds} retraining rounds", xlabel="share of attacking users",
            ylabel="flipped",
        )
        if plot:
            evidence["plots"] = [plot]
        rate, threshold = metrics["target_success_rate"], float(self.success_threshold)
        vulnerable = rate >= threshold and rate - baseline >= threshold / 2
        summary = (
            f"With {self.report_fraction:.0%} of users attacking, {rate:.0%} of "
            f"{len(chosen)} chosen inputs changed class within {self.rounds} retraining rounds"
            + (f" (median round {metrics['rounds_to_flip']:g})" if flipped else "")
            + f", against {baseline:.0%} with honest users only."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)

    def _choose(self, target, data, k, budget, rng):
        """Held-out inputs the target gets right, and the class the attacker wants for each
        (the target's runner-up when it shows probabilities)."""
        x_held, y_held = data.evaluation_data()  # never among the honest users' rows
        candidates = rng.permutation(len(x_held))[: min(len(x_held), max(0, budget), 4 * int(self.n_targets))]
        if not len(candidates):
            raise NotApplicable(f"a budget of {budget} queries leaves no input to choose")
        x_c, y_c = x_held[candidates], np.asarray(y_held, dtype=np.int64)[candidates]
        answer = np.asarray(target.predict(x_c))
        if answer.ndim == 2:
            predicted = answer.argmax(axis=1)
            ranked = np.where(np.eye(answer.shape[1], dtype=bool)[predicted], -np.inf, answer)
            runner_up = ranked.argmax(axis=1)
        else:
            predicted, runner_up = answer.astype(int), (answer.astype(int) + 1) % k
        correct = np.flatnonzero(predicted == y_c)[: int(self.n_targets)]
        return x_c[correct], runner_up[correct]

    def _simulate(self, pipeline, x, y, x_pool, y_pool, x0, label, fraction, per_round, spec, rng):
        """(round at which ``x0`` is predicted as ``label``, or None; attackers' share of the data then)."""
        attackers = round(fraction * per_round)
        xs, ys = [x], [y]
        poisoned = 0
        share = 0.0
        for round_ in range(1, int(self.rounds) + 1):
            honest = rng.integers(0, len(x_pool), size=per_round - attackers)
            noise = self.spread * (spec.upper - spec.lower) * rng.standard_normal((attackers, *x0.shape))
            crafted = spec.clip(x0[None] + noise).astype(x.dtype)
            if spec.constraints:
                crafted = spec.constraints.project(crafted, np.repeat(x0[None], attackers, axis=0))
            xs += [x_pool[honest], crafted]
            ys += [np.asarray(y_pool[honest], dtype=np.int64), np.full(attackers, label, dtype=np.int64)]
            poisoned += attackers
            total = sum(len(part) for part in ys)
            share = poisoned / total
            model = pipeline.fit(np.concatenate(xs), np.concatenate(ys))
            if pipeline.labels(model, x0[None])[0] == label:
                return round_, share
        return None, share
