"""FM05 model stealing by learning: train a copy on the target's answers (Knockoff Nets, Copycat CNN).

The attacker owns unlabelled inputs from the target's domain (the pool). In rounds, it sends
a batch to the target, trains a surrogate (a small CNN for images, an MLP for tables) on
every answer so far, and uses the surrogate to pick the next batch: pool inputs it is least
sure about, spread out by k-center selection, plus synthetic inputs (mixup of owned inputs
or a Jacobian-sign step from them) that probe beyond the pool. Probabilities train the copy
by soft cross-entropy, labels by ordinary cross-entropy, so the check runs on both.

Nothing here is exact: the copy is as good as its agreement with the target, measured on
the held-out test rows (``fidelity``, which decides: the task's data, not the pool) and on
uniform random inputs within the attacker's data range (``fidelity_uniform``, reported).
"""
from __future__ import annotations

import numpy as np

from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .fidelity import (
    FIDELITY_PARAM_DOCS,
    judge_copy,
    agreement_phrase,
    copy_evidence,
    measure_fidelity,
    random_inputs_phrase,
)
from .input_domain import infer_domain
from .query_selection import (
    AUGMENTATIONS,
    STRATEGIES,
    jacobian_step,
    mixup,
    select,
)


class LearningExtraction(Check):
    id = "FM05.learning"
    mode = "FM05"
    title = "Model stealing by training a copy on the model's answers"
    needs = Needs(roles=("test",), attacker=True, labels=False)
    default_budget = 2_000
    metrics = (
        "fidelity", "fidelity_beyond_majority", "majority_share", "other_answers", "fidelity_uniform", "max_abs_probability_error", "queries", "soft_labels",
        "synthetic_queries"
    )
    param_docs = {
        "rounds": "active-learning rounds the budget is spread over",
        "strategy": "how query inputs are chosen each round: random, margin, kcenter or margin_kcenter",
        "augmentation": "synthetic queries added from round 2: mixup, jacobian or none",
        "augment_share": "share of a round's queries that are synthetic, in [0, 1)",
        "epochs": "training epochs of the copy per round",
        "final_epochs": "training epochs of the copy after the last round",
        "batch_size": "training batch size of the copy",
        "lr": "learning rate of the copy",
        "jacobian_step_size": "step of Jacobian augmentation, relative to the input range",
        **FIDELITY_PARAM_DOCS,
    }

    def __init__(
        self,
        rounds: int = 4,
        strategy: str = "margin_kcenter",
        augmentation: str = "mixup",
        augment_share: float = 0.2,
        epochs: int = 12,
        final_epochs: int = 30,
        batch_size: int = 64,
        lr: float = 2e-3,
        jacobian_step_size: float = 0.1,
        fidelity_threshold: float = 0.9,
        n_uniform: int = 500,
    ):
        self.rounds = rounds
        self.strategy = strategy
        self.augmentation = augmentation
        self.augment_share = augment_share
        self.epochs = epochs
        self.final_epochs = final_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.jacobian_step_size = jacobian_step_size
        self.fidelity_threshold = fidelity_threshold
        self.n_uniform = n_uniform

    def _validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, not {self.strategy!r}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {', '.join(AUGMENTATIONS)}, not {self.augmentation!r}")
        for name in ("rounds", "epochs", "final_epochs", "batch_size", "n_uniform"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 <= self.augment_share < 1:
            raise ValueError("augment_share must be in [0, 1)")
        if not 0 < self.fidelity_threshold <= 1:
            raise ValueError("fidelity_threshold must be in (0, 1]")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        from ...util.surrogates import (
            build_surrogate,
            fit_surrogate,
            save_torch_onnx,
            surrogate_proba,
        )

        self._validate()
        spec = target.input_spec
        pool = np.asarray(data.attacker_data()[0], dtype=np.float32).reshape(-1, *spec.shape)
        pool_flat = pool.reshape(len(pool), -1).astype(np.float64)
        rounds = max(1, min(int(self.rounds), budget // 10))
        if budget < 10 or len(pool) < 2:
            raise NotApplicable(f"training a copy needs at least 10 queries and 2 pool inputs (budget {budget}, pool {len(pool)})")
        seed = int(rng.integers(2**31))
        surrogate = build_surrogate(spec.shape, target.n_classes, data.modality, pool, seed=seed)
        soft = target.capabilities.outputs == "probabilities"

        sizes = np.full(rounds, budget // rounds)
        sizes[: budget % rounds] += 1
        available = np.arange(len(pool))
        xs, answers, synthetic = [], [], 0
        for r, size in enumerate(sizes):
            # Synthetic inputs need owned inputs to start from; the first round queries the pool only.
            n_aug = 0 if r == 0 or self.augmentation == "none" else round(self.augment_share * size)
            n_pool = min(int(size) - n_aug, len(available))
            if self.augmentation != "none" and r > 0:
                n_aug = int(size) - n_pool  # an exhausted pool leaves the rest to synthetic inputs
            probs = surrogate_proba(surrogate, pool[available]) if r > 0 else None
            chosen_flat = np.concatenate(xs).reshape(-1, pool_flat.shape[1]) if xs else np.zeros((0, pool_flat.shape[1]))
            picks = select(self.strategy, pool_flat, available, chosen_flat, probs, n_pool, rng)
            available = np.setdiff1d(available, picks, assume_unique=True)
            batch = [pool[picks]]
            if n_aug:
                batch.append(self._synthetic(surrogate, np.concatenate(xs), n_aug, rng, spec))
                synthetic += n_aug
            batch_x = np.concatenate(batch)
            if not len(batch_x):
                break
            answers.append(np.asarray(target.predict(batch_x.astype(spec.dtype))))
            xs.append(batch_x)
            epochs = self.final_epochs if r == len(sizes) - 1 else self.epochs
            fit_surrogate(
                surrogate, np.concatenate(xs), np.concatenate(answers), epochs=int(epochs),
                batch_size=int(self.batch_size), lr=float(self.lr), seed=seed + r,
            )
            ctx.progress(r + 1, len(sizes))
        queries = target.ledger.attack

        domain = infer_domain(spec, pool)
        # Fidelity on held-out rows the copy was never trained on (without a pool: the other test half).
        x_held = data.evaluation_data()[0]
        metrics = measure_fidelity(target, lambda x: surrogate_proba(surrogate, x), x_held, domain, rng, int(self.n_uniform))
        metrics.update({"queries": int(queries), "synthetic_queries": int(synthetic), "soft_labels": bool(soft)})
        evidence = copy_evidence(ctx, self.id, lambda path: save_torch_onnx(path, surrogate, spec.shape))
        vulnerable, undecided = judge_copy(metrics, self.fidelity_threshold)
        summary = (
            f"A copy trained on {queries} answers ({'probabilities' if soft else 'labels'}; {synthetic} synthetic "
            f"inputs) {agreement_phrase(metrics, random_inputs_phrase(spec))}."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary,
                       inconclusive=undecided)

    def _synthetic(self, surrogate, owned: np.ndarray, m: int, rng, spec) -> np.ndarray:
        if self.augmentation == "jacobian":
            step = float(self.jacobian_step_size) * float(spec.upper - spec.lower)
            x = jacobian_step(surrogate, owned, m, step, rng, spec.lower, spec.upper)
        else:
            x = mixup(owned, m, rng, spec.lower, spec.upper)
        # Keep synthetic rows submittable: allowed codes, whole numbers, per-feature ranges.
        return spec.constraints.project(x, x) if spec.constraints else x
