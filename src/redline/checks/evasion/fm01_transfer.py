"""FM01 perturbation, black box: adversarial examples crafted on a surrogate and replayed.

The attacker labels data it owns by querying the target (labels are enough), trains a
local ensemble of surrogates on those labels, crafts L-inf adversarial examples against
the ensemble with momentum iterative FGSM (Dong et al. 2018), and sends each example to
the target once. Nothing here needs the target's gradients or probabilities, so neither
hiding gradients nor answering labels only stops it; adversarial training does.

Queries: ``labelling_queries`` (surrogate training set) plus ``replay_queries`` (one per
example) make up ``queries``; clean accuracy and surrogate agreement are measured as
evaluation queries. ``surrogate_agreement`` is the share of held-out rows on which surrogate
and target give the same label: test rows not attacked and attacker rows not labelled for
the surrogate (never a row it trained on; ``surrogate_agreement_rows`` of them, at most
500), and None when no such row is left.

``epsilon`` is L-inf in units of each feature's range (:mod:`redline.util.epsilon`). Its
default, 0.3, is the one FM01/FM07 default that differs from the shared 0.2, on purpose:
this attacker never iterates against the target (one replay per example), so at the same
ball it is the weakest one, and at 0.2 it fooled only 24% of the zoo's undefended MNIST
CNN's inputs (budget 2,000, seed 0), under the 30% that makes a finding, on a model
white-box PGD breaks almost everywhere: the check's positive control would pass. At 0.3,
the usual black-box MNIST setting, it fools 60% of them. Set ``epsilon=0.2`` to compare
with the other checks on one ball.
"""
from __future__ import annotations

import numpy as np

from ...util.epsilon import EPSILON_METRICS, epsilon_units, units_note
from ..base import Needs, NotApplicable
from .base import (
    EVASION_METRICS, N_INPUTS_DOC, THRESHOLD_DOC, Attempt, EvasionCheck, EvasionRun, Plan,
    require_at_least_one,
)

_MIN_LABELS = 20  # below this a surrogate learns nothing useful
_DEFAULT_EPSILON = 0.3  # L-inf, in range units; why not the shared 0.2: see the module docstring


class TransferAttack(EvasionCheck):
    id = "FM01.transfer"
    mode = "FM01"
    title = "Black-box transfer attack from a surrogate trained on the target's labels"
    needs = Needs(roles=("test",), attacker=True)  # surrogate rows apart from attacked rows
    sample_rows = "evaluation"  # attacked and agreement rows: the held-out rows the surrogate never saw
    recheck_is_attack = True  # the replay is the attack
    budget_can_decide = False  # one replay per example: a larger budget buys a better surrogate, not a trend
    norm = "linf"
    default_budget = 2_000
    # EPSILON_METRICS: the budget in target units, per feature (util/epsilon.FeatureUnits.describe)
    metrics = (
        *EVASION_METRICS, "labelling_queries", "replay_queries", "surrogate_agreement", "surrogate_success_rate",
        "surrogates", *EPSILON_METRICS, "surrogate_agreement_rows",
    )
    param_docs = {
        "epsilon": "largest L-inf perturbation (null: 0.3 of the input range)",
        "steps": "momentum-attack steps on the surrogate",
        "decay": "momentum decay of the surrogate attack (0 or more)",
        "n_inputs": N_INPUTS_DOC,
        "label_queries": "target queries spent labelling the surrogate's training data (null: from the budget)",
        "architectures": "surrogate architectures to train and ensemble (null: the defaults for the data)",
        "surrogate_epochs": "training epochs per surrogate",
        "success_threshold": THRESHOLD_DOC,
    }

    def __init__(
        self,
        epsilon: float | None = None,
        steps: int = 10,
        decay: float = 1.0,
        n_inputs: int = 100,
        label_queries: int | None = None,
        architectures: tuple[str, ...] | None = None,
        surrogate_epochs: int = 15,
        success_threshold: float = 0.3,
    ):
        self.epsilon = epsilon
        self.steps = steps
        self.decay = decay
        self.n_inputs = n_inputs
        self.label_queries = label_queries
        self.architectures = architectures
        self.surrogate_epochs = surrogate_epochs
        self.success_threshold = success_threshold

    def _validate(self, target=None) -> float | None:
        require_at_least_one(self, "steps", "n_inputs", "surrogate_epochs")
        if self.decay < 0:
            raise ValueError("decay must not be negative")
        if self.label_queries is not None and int(self.label_queries) < _MIN_LABELS:
            raise ValueError(f"label_queries must be at least {_MIN_LABELS}")
        if self.epsilon is not None and self.epsilon <= 0:
            raise ValueError("epsilon must be positive")
        if target is None:  # nothing else to check without the target
            return None
        if self.epsilon is None:
            return _DEFAULT_EPSILON  # argued in the module docstring
        return epsilon_units(self.epsilon, target.input_spec, "linf")

    def plan(self, run: EvasionRun) -> Plan:
        # One replay query per example, the rest labels the surrogate's data.
        budget = run.budget
        x_owned, _ = run.data.attacker_data()
        n_replay = min(int(run.correct.sum()), max(0, budget - _MIN_LABELS))
        n_label = min(len(x_owned), budget - n_replay)
        if self.label_queries is not None:
            n_label = min(n_label, int(self.label_queries))
        if n_label < _MIN_LABELS:
            raise NotApplicable(f"a budget of {budget} queries leaves too few to label a surrogate's training data")
        return Plan(n_replay, details=n_label)

    def run_attack(self, run: EvasionRun) -> Attempt:
        import torch

        from ...util.momentum import momentum_linf_attack
        from .surrogate import train_surrogate

        xa, ya, eps, rng, ctx = run.xa, run.ya, run.epsilon, run.rng, run.ctx
        x_owned, _ = run.data.attacker_data()
        seed = int(rng.integers(2**31 - 1))
        order = rng.permutation(len(x_owned))  # the surrogate is trained on the first n_label rows in this order
        try:
            surrogate = train_surrogate(run.target, x_owned[order], max_queries=run.plan.details, seed=seed,
                                        architectures=self.architectures, epochs=int(self.surrogate_epochs))
        except ValueError as exc:
            if "architecture" in str(exc):
                raise
            raise NotApplicable(f"could not train a surrogate: {exc}") from None
        ctx.progress(1, 3)

        spec = run.target.input_spec
        constraints = spec.constraints
        # The attack runs in range units (each feature divided by its own range), where the
        # ball is the same for every feature (see redline.util.epsilon).
        tunits = run.units.for_torch(torch)
        project = None
        if constraints:
            def project(zt, _z0t):
                return tunits.project_constraints(zt, xa, constraints)

        y_t = torch.from_numpy(ya.astype(np.int64))

        def loss(batch):
            x_batch = tunits.to_target(batch).to(torch.float32)
            return torch.nn.functional.cross_entropy(surrogate.logits(x_batch), y_t, reduction="none")

        if len(xa):
            z_adv = momentum_linf_attack(loss, tunits.to_unit(xa), epsilon=eps, steps=int(self.steps),
                                         lower=tunits.lower, upper=tunits.upper, decay=float(self.decay),
                                         project=project)
            x_adv = tunits.to_numpy(z_adv, np.float32)
            if constraints:  # exact immutable and integer values in target units
                x_adv = constraints.project(x_adv, xa)
        else:
            x_adv = xa.copy()
        ctx.progress(2, 3)
        # One replay per example (the base's re-check): an example that transfers costs the attacker one query.
        return Attempt(x_adv, queries=np.ones(len(xa)), state=(surrogate, order, x_owned))

    def extra_metrics(self, run, attempt) -> dict:
        from .surrogate import agreement

        surrogate, order, x_owned = attempt.state
        x_adv, ya = attempt.x_adv, run.ya
        surrogate_fooled = surrogate.predict_labels(x_adv) != ya if len(x_adv) else np.zeros(0, dtype=bool)
        # Agreement is measured on rows the surrogate never saw and the attack did not use
        # (see the module docstring). Without such rows there is nothing honest to report.
        # The attacker's rows never overlap the evaluation rows (a pool, or the other half of
        # the test rows), so the unlabelled ones can join the unattacked evaluation rows.
        labelled = order[: int(surrogate.labelling_queries)]
        spare = x_owned[np.setdiff1d(np.arange(len(x_owned)), labelled)]
        unattacked = run.rows_x[np.setdiff1d(np.arange(len(run.rows_x)), run.idx)]
        held_out = np.concatenate([unattacked, spare])[:500].astype(np.float32)
        with run.target.ledger.evaluating():
            fit = agreement(surrogate, run.target, held_out) if len(held_out) else None
        run.ctx.progress(3, 3)
        return {
            "labelling_queries": int(surrogate.labelling_queries),
            "replay_queries": len(x_adv),
            "surrogate_agreement": fit,
            "surrogate_agreement_rows": int(len(held_out)),
            "surrogate_success_rate": float(surrogate_fooled.mean()) if len(x_adv) else 0.0,
            "surrogates": list(surrogate.architectures),
        }

    def summary(self, run, attempt, metrics) -> str:
        fit, rows = metrics["surrogate_agreement"], metrics["surrogate_agreement_rows"]
        return (
            f"Examples crafted on a surrogate (trained on {metrics['labelling_queries']} target labels, "
            + (f"{fit:.0%} agreement on {rows} held-out rows" if fit is not None
               else "agreement not measured: no held-out rows left")
            + f") fooled the target on {int(run.success.sum())} of {run.n} inputs "
            f"({metrics['success_rate']:.0%}) at L-inf epsilon {run.epsilon:.3g}{units_note(run.units)}, one query each."
        )
