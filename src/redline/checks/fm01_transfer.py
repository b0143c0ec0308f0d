"""FM01 perturbation, black box: adversarial examples crafted on a surrogate and replayed.

The attacker labels data it owns by querying the target (labels are enough), trains a
local ensemble of surrogates on those labels, crafts L-inf adversarial examples against
the ensemble with momentum iterative FGSM (Dong et al. 2018), and sends each example to
the target once. Nothing here needs the target's gradients or probabilities, so neither
hiding gradients nor answering labels only stops it; adversarial training does.

Queries: ``labelling_queries`` (surrogate training set) plus ``replay_queries`` (one per
example) make up ``queries``; clean accuracy and surrogate agreement are measured as
evaluation queries.
"""
from __future__ import annotations

import numpy as np

from ..util.evasion import evasion_metrics
from ..util.evidence import adversarial_grid, save_arrays
from .base import Check, CheckContext, Needs, NotApplicable, Outcome

_MIN_LABELS = 20  # below this a surrogate learns nothing useful


class TransferAttack(Check):
    id = "FM01.transfer"
    mode = "FM01"
    title = "Black-box transfer attack from a surrogate trained on the target's labels"
    needs = Needs()
    default_budget = 2_000
    metrics = (
        "success_rate", "clean_accuracy", "robust_accuracy", "median_queries", "median_l2",
        "median_linf", "norm", "epsilon", "attacked_inputs", "labelling_queries", "replay_queries",
        "surrogate_agreement", "surrogate_success_rate", "surrogates",
        # the budget in target units, per feature (util/epsilon.FeatureUnits.describe)
        "epsilon_units", "epsilon_abs_min", "epsilon_abs_median", "epsilon_abs_max", "surrogate_agreement_rows",
    )
    param_docs = {
        "epsilon": "largest L-inf perturbation (null: 0.3 of the input range)",
        "steps": "momentum-attack steps on the surrogate",
        "decay": "momentum decay of the surrogate attack (0 or more)",
        "n_inputs": "how many test inputs to attack (fewer if the budget cannot cover them)",
        "label_queries": "target queries spent labelling the surrogate's training data (null: from the budget)",
        "architectures": "surrogate architectures to train and ensemble (null: the defaults for the data)",
        "surrogate_epochs": "training epochs per surrogate",
        "success_threshold": "success rate at or above which the model is called vulnerable",
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
        for name in ("steps", "n_inputs", "surrogate_epochs"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.decay < 0:
            raise ValueError("decay must not be negative")
        if self.label_queries is not None and int(self.label_queries) < _MIN_LABELS:
            raise ValueError(f"label_queries must be at least {_MIN_LABELS}")
        if self.epsilon is not None and self.epsilon <= 0:
            raise ValueError("epsilon must be positive")
        if target is None:  # the default epsilon depends on the target's input range
            return self.epsilon
        span = float(target.input_spec.upper - target.input_spec.lower) or 1.0
        if self.epsilon is None:
            # Transfer needs a larger budget than white-box PGD (the surrogate's gradient only
            # approximates the target's); 0.3 of the range is the usual black-box MNIST setting.
            return 0.3 * span
        if self.epsilon <= 0:
            raise ValueError("epsilon must be positive")
        return float(self.epsilon)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        import torch

        from ..util.momentum import momentum_linf_attack
        from ..util.surrogate import agreement, train_surrogate

        eps = self._validate(target)
        spec = target.input_spec
        x_owned, _ = data.attacker_data()

        idx = rng.permutation(len(data.x_test))[: int(self.n_inputs)]
        x, y = data.x_test[idx].astype(np.float32), data.y_test[idx].astype(int)
        with target.ledger.evaluating():
            clean_pred = target.predict_labels(x)
        correct = clean_pred == y
        # Plan the budget: one replay query per example, the rest labels the surrogate's data.
        n_replay = min(int(correct.sum()), max(0, budget - _MIN_LABELS))
        n_label = min(len(x_owned), budget - n_replay)
        if self.label_queries is not None:
            n_label = min(n_label, int(self.label_queries))
        if n_label < _MIN_LABELS:
            raise NotApplicable(f"a budget of {budget} queries leaves too few to label a surrogate's training data")
        xa, ya = x[correct][:n_replay], y[correct][:n_replay]

        seed = int(rng.integers(2**31 - 1))
        try:
            surrogate = train_surrogate(target, x_owned[rng.permutation(len(x_owned))], max_queries=n_label, seed=seed,
                                        architectures=self.architectures, epochs=int(self.surrogate_epochs))
        except ValueError as exc:
            if "architecture" in str(exc):
                raise
            raise NotApplicable(f"could not train a surrogate: {exc}") from None
        ctx.progress(1, 3)

        constraints = spec.constraints
        project = None
        if constraints:
            def project(xt, x0t):
                return torch.from_numpy(constraints.project(xt.numpy(), x0t.numpy()))

        y_t = torch.from_numpy(ya.astype(np.int64))

        def loss(batch):
            return torch.nn.functional.cross_entropy(surrogate.logits(batch), y_t, reduction="none")

        if len(xa):
            x_adv = momentum_linf_attack(loss, torch.from_numpy(xa), epsilon=eps, steps=int(self.steps),
                                         lower=spec.lower, upper=spec.upper, decay=float(self.decay),
                                         project=project).numpy().astype(np.float32)
        else:
            x_adv = xa.copy()
        ctx.progress(2, 3)

        adv_pred = target.predict_labels(x_adv) if len(x_adv) else np.zeros(0, dtype=int)  # the replay
        success = adv_pred != ya
        surrogate_fooled = surrogate.predict_labels(x_adv) != ya if len(x_adv) else np.zeros(0, dtype=bool)
        with target.ledger.evaluating():
            held_out = data.x_test[np.setdiff1d(np.arange(len(data.x_test)), idx)][:500].astype(np.float32)
            fit = agreement(surrogate, target, held_out)
        ctx.progress(3, 3)

        # One replay per example: an example that transfers costs the attacker one query.
        metrics = evasion_metrics("linf", eps, xa, x_adv, success, correct, np.ones(len(xa)))
        success_rate = metrics["success_rate"]
        metrics.update({
            "labelling_queries": int(surrogate.labelling_queries),
            "replay_queries": len(x_adv),
            "surrogate_agreement": fit,
            "surrogate_success_rate": float(surrogate_fooled.mean()) if len(x_adv) else 0.0,
            "surrogates": list(surrogate.architectures),
        })
        evidence: dict = {}
        rel = save_arrays(ctx, f"{self.id}-examples.npz", x=xa, x_adv=x_adv, y=ya, y_adv=adv_pred)
        if rel:
            evidence["examples"] = rel
        rel = adversarial_grid(ctx, f"{self.id}-examples.png", xa, x_adv, success)
        if rel:
            evidence["plots"] = [rel]
        vulnerable = len(xa) > 0 and success_rate >= self.success_threshold
        summary = (
            f"Examples crafted on a surrogate (trained on {surrogate.labelling_queries} target labels, "
            f"{fit:.0%} agreement) fooled the target on {int(success.sum())} of {len(xa)} inputs "
            f"({success_rate:.0%}) at L-inf epsilon {eps:.3g}, one query each."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)
