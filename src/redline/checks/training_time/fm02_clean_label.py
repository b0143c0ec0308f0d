"""FM02 targeted clean-label poisoning: correctly labelled rows that make chosen inputs misclassified.

Threat model: the attacker adds a few rows (``poison_rate`` of the poisoned training set) to
the victim's training data. Every row keeps its true label and differs from a real row of
that class by at most ``epsilon`` per feature (L-inf, default 0.2 of the input range as in
:mod:`redline.util.epsilon`), so a reviewer sees correctly labelled examples. The goal: a
chosen test input (the *target*) is classified as a chosen *adversarial class* once the
victim retrains, while accuracy on everything else barely changes.

Method: feature collision (Shafahi et al. 2018), see :mod:`redline.checks.training_time.clean_label`. The
attacker trains a surrogate with the victim's own recipe (``target.retrain`` with an
attacker seed) and pushes rows of the adversarial class from its own data (the rows whose
features are closest to the target's) onto the target in the surrogate's penultimate
feature space. This is the transfer-learning setting: it is reliable when the victim's
recipe keeps a fixed feature extractor and retrains its last layer, and only transfers
weakly when the recipe retrains the whole network. The check finds out which: it compares
the features of the surrogate with those of a victim retrained at another seed, and reports
``setting`` ("fixed_features" or "end_to_end").

For each of ``n_targets`` test inputs the surrogate classifies correctly (its adversarial
class is the surrogate's runner-up), the victim retrains on clean rows plus poisons with
``victim_seeds`` seeds. Metrics:

- ``target_success_rate``: share of (target, seed) runs where the target gets the adversarial class;
- ``baseline_target_success_rate``: the same with the *unperturbed* base rows added (the
  same budget of clean copies), which shows the effect is the perturbation's;
- ``clean_accuracy_change``: mean accuracy change on held-out rows (poisoned minus clean, same seed);
- ``defended_target_success_rate`` and ``defended_target_success_rate_<defence>``: the same
  after Deep k-NN sanitisation (Peri et al. 2020, in the features of the model trained on
  the poisoned rows) or loss-based sanitisation, on the first victim seed; ``damage_undone_<defence>``.

Vulnerable when ``target_success_rate`` reaches ``success_threshold`` and exceeds the baseline
by at least ``success_threshold / 2``.

Queries: the surrogate is the attacker's own model, so optimising poisons sends nothing to
any victim and ``queries`` is 0. Every victim the recipe retrains is charged to the target's
ledger; its predictions, and the features and models the defences use, count as evaluation.
"""
from __future__ import annotations

import numpy as np

from ...defences.training.sanitisers import loss_sanitize
from ...util.epsilon import resolve_epsilon
from ...util.evidence import save_arrays
from ...util.stats import with_intervals
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .activations import last_linear, penultimate_activations
from .clean_label import collide, deep_knn_keep, features
from .poisoning import TrainingPipeline, added_count, damage_undone, one_thread

DEFENCES = ("deep_knn", "sanitize")


class CleanLabelPoisoning(Check):
    id = "FM02.clean_label"
    mode = "FM02"
    title = "Targeted clean-label poisoning by feature collision"
    needs = Needs(trainable=True, roles=("train", "test"), attacker=True)
    default_budget = 0
    metrics = (
        "baseline_target_success_rate", "clean_accuracy", "clean_accuracy_change", "damage_undone_*",
        "defended_target_success_rate", "defended_target_success_rate_*", "epsilon",
        "mean_feature_distance", "n_targets", "poison_rate", "poison_rows", "setting",
        "target_success_rate", "victim_seeds"
    )
    param_docs = {
        "n_targets": "test inputs the attacker tries to get misclassified",
        "poison_rate": "share of the training set the attacker controls, in (0, 0.5)",
        "epsilon": "largest L-inf change to a poison image (null: redline's default for the input range)",
        "steps": "feature-collision optimisation steps",
        "victim_seeds": "retrainings with different seeds; success is averaged over them",
        "success_threshold": "share of targets misclassified at or above which the pipeline is vulnerable",
        "defences": "defences to measure (deep_knn, sanitize; empty for none)",
        "knn_k": "neighbours for the deep k-NN defence (null: from the poison count)",
    }

    def __init__(
        self,
        n_targets: int = 6,
        poison_rate: float = 0.05,
        epsilon: float | None = None,
        steps: int = 150,
        victim_seeds: int = 2,
        success_threshold: float = 0.3,
        defences: tuple[str, ...] = DEFENCES,
        knn_k: int | None = None,
    ):
        self.n_targets = n_targets
        self.poison_rate = poison_rate
        self.epsilon = epsilon
        self.steps = steps
        self.victim_seeds = victim_seeds
        self.success_threshold = success_threshold
        self.defences = defences
        self.knn_k = knn_k

    def _validate(self) -> None:
        if not 0 < float(self.poison_rate) < 0.5:
            raise ValueError(f"poison_rate must lie in (0, 0.5), got {self.poison_rate}")
        if int(self.n_targets) < 1 or int(self.victim_seeds) < 1 or int(self.steps) < 1:
            raise ValueError("n_targets, victim_seeds and steps must be at least 1")
        if not 0 < float(self.success_threshold) <= 1:
            raise ValueError("success_threshold must lie in (0, 1]")
        if set(self.defences) - set(DEFENCES):
            raise ValueError(f"defences come from {DEFENCES}, got {tuple(self.defences)}")
        if self.knn_k is not None and int(self.knn_k) < 1:
            raise ValueError("knn_k must be at least 1")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        spec = target.input_spec
        epsilon = resolve_epsilon(self.epsilon, spec, "linf")
        x, y = np.asarray(data.x_train), np.asarray(data.y_train, dtype=np.int64)
        x_pool, y_pool = data.attacker_data()
        y_pool = np.asarray(y_pool, dtype=np.int64)
        count = added_count(len(x), float(self.poison_rate))

        seed = int(rng.integers(2**31))
        pipelines = [TrainingPipeline(target, seed=seed + 1 + i) for i in range(int(self.victim_seeds))]
        surrogate = TrainingPipeline(target, seed=seed).fit(x, y)
        module = surrogate.torch_module()
        if module is None or last_linear(module) is None:
            raise NotApplicable(
                "feature collision needs the recipe to produce a PyTorch network with a linear last layer; "
                f"{target.spec} retrains into {type(surrogate).__name__}"
            )
        module.eval()
        clean_victims = [p.fit(x, y) for p in pipelines]
        setting = self._setting(module, clean_victims[0], x, rng)

        x_held, y_held = data.evaluation_data()  # apart from the pool the poisons start from
        x_eval, y_eval = np.asarray(x_held), np.asarray(y_held, dtype=np.int64)
        clean_accuracy = [p.accuracy(v, x_eval, y_eval) for p, v in zip(pipelines, clean_victims)]
        chosen, adversarial = self._targets(module, x_eval, y_eval, rng)
        if not len(chosen):
            raise NotApplicable("the surrogate classifies no test input correctly, so there is no target to move")
        pool_features = features(module, x_pool)

        hits, baseline_hits, changes, defended = [], [], [], {d: [] for d in self.defences}
        distances, saved = [], {"x_poison": [], "x_base": [], "target_index": [], "adversarial_class": []}
        total = len(chosen)
        for done, (index, adv) in enumerate(zip(chosen, adversarial), start=1):
            members = np.flatnonzero(y_pool == adv)
            if len(members) < count:
                raise NotApplicable(f"the attacker's data has {len(members)} rows of class {adv}, {count} needed")
            goal = features(module, x_eval[index][None])[0]
            nearest = members[np.argsort(((pool_features[members] - goal) ** 2).sum(axis=1), kind="stable")[:count]]
            with one_thread():
                poisons, distance = collide(
                    module, x_pool[nearest], x_eval[index], epsilon=epsilon,
                    lower=float(spec.lower), upper=float(spec.upper), steps=int(self.steps),
                )
            if spec.constraints:
                poisons = spec.constraints.project(poisons, x_pool[nearest])
            distances.append(distance)
            labels = np.concatenate([y, np.full(count, adv, dtype=np.int64)])
            x_poisoned = np.concatenate([x, poisons])
            x_copies = np.concatenate([x, x_pool[nearest]])
            for i, pipeline in enumerate(pipelines):
                victim = pipeline.fit(x_poisoned, labels)
                hits.append(pipeline.labels(victim, x_eval[index][None])[0] == adv)
                changes.append(pipeline.accuracy(victim, x_eval, y_eval) - clean_accuracy[i])
                copies = pipeline.fit(x_copies, labels)
                baseline_hits.append(pipeline.labels(copies, x_eval[index][None])[0] == adv)
                if i == 0:
                    for defence in self.defences:
                        keep = self._defend(defence, pipeline, victim, x_poisoned, labels, count)
                        cleaned = pipeline.fit(x_poisoned[keep], labels[keep])
                        defended[defence].append(pipeline.labels(cleaned, x_eval[index][None])[0] == adv)
            saved["x_poison"].append(poisons)
            saved["x_base"].append(x_pool[nearest])
            saved["target_index"].append(index)
            saved["adversarial_class"].append(adv)
            ctx.progress(done, total)

        rate = float(np.mean(hits))
        baseline = float(np.mean(baseline_hits))
        metrics = {
            "target_success_rate": rate,
            "baseline_target_success_rate": baseline,
            "clean_accuracy_change": float(np.mean(changes)),
            "clean_accuracy": float(np.mean(clean_accuracy)),
            "poison_rate": count / (len(x) + count),
            "poison_rows": int(count),
            "epsilon": float(epsilon),
            "n_targets": int(total),
            "victim_seeds": int(self.victim_seeds),
            "setting": setting,
            "mean_feature_distance": float(np.mean(distances)),
        }
        with_intervals(metrics, {"target_success_rate": len(hits), "baseline_target_success_rate": len(baseline_hits)})
        for defence, outcome in defended.items():
            defended_rate = float(np.mean(outcome))
            first_seed = float(np.mean(hits[:: int(self.victim_seeds)]))
            metrics[f"defended_target_success_rate_{defence}"] = defended_rate
            metrics[f"damage_undone_{defence}"] = damage_undone(first_seed, defended_rate)
        if defended:
            metrics["defended_target_success_rate"] = min(
                metrics[f"defended_target_success_rate_{d}"] for d in defended
            )

        evidence: dict = {
            "targets": [
                {"test_index": int(i), "true_class": int(y_eval[i]), "adversarial_class": int(a)}
                for i, a in zip(chosen, adversarial)
            ],
        }
        path = save_arrays(
            ctx, f"{self.id}-poisons.npz",
            x_poison=np.stack(saved["x_poison"]), x_base=np.stack(saved["x_base"]),
            target_index=np.asarray(saved["target_index"]), adversarial_class=np.asarray(saved["adversarial_class"]),
        )
        if path:
            evidence["examples"] = path
        threshold = float(self.success_threshold)
        vulnerable = rate >= threshold and rate - baseline >= threshold / 2
        where = "a fixed feature extractor" if setting == "fixed_features" else "end-to-end retraining"
        summary = (
            f"Adding {count} correctly labelled rows (L-inf {epsilon:.3g}) per target made {rate:.0%} of "
            f"{total} chosen inputs take the attacker's class after retraining ({where}), against "
            f"{baseline:.0%} for unperturbed copies; clean accuracy changed by {metrics['clean_accuracy_change']:+.1%}."
        )
        return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary)

    def _setting(self, module, victim, x, rng) -> str:
        """'fixed_features' when a victim retrained at another seed computes the surrogate's
        features (the recipe retrains the last layer only), else 'end_to_end'."""
        sample = x[rng.permutation(len(x))[: min(len(x), 64)]]
        mine = features(module, sample)
        with victim.ledger.evaluating():
            theirs, representation = penultimate_activations(victim, sample)
        if representation != "penultimate" or theirs.shape != mine.shape:
            return "end_to_end"
        return "fixed_features" if np.allclose(mine, theirs, rtol=1e-4, atol=1e-5) else "end_to_end"

    def _targets(self, module, x_eval, y_eval, rng) -> tuple[np.ndarray, np.ndarray]:
        """Test inputs the surrogate gets right, each with the surrogate's runner-up class."""
        import torch

        with torch.no_grad():
            scores = module(torch.from_numpy(np.ascontiguousarray(x_eval, dtype=np.float32))).double().numpy()
        scores = scores.reshape(len(x_eval), -1)
        correct = np.flatnonzero(scores.argmax(axis=1) == y_eval)
        chosen = rng.permutation(correct)[: int(self.n_targets)]
        runner_up = scores[chosen].copy()
        runner_up[np.arange(len(chosen)), y_eval[chosen]] = -np.inf
        return chosen, runner_up.argmax(axis=1)

    def _defend(self, defence, pipeline, victim, x_poisoned, labels, count) -> np.ndarray:
        if defence == "sanitize":
            return loss_sanitize(pipeline, x_poisoned, labels, count / len(labels))
        with pipeline.ledger.evaluating():
            representation, _ = penultimate_activations(victim, x_poisoned)
        k = int(self.knn_k) if self.knn_k is not None else max(5, 2 * count)
        return deep_knn_keep(representation, labels, k)
