"""FM10 backdoor detection in the training data: activation clustering (Chen et al. 2018).

The training rows of each class are mapped to the model's penultimate-layer activations
(the input of its last linear layer, see :mod:`redline.checks.training_time.activations`), reduced to a
few dimensions (PCA by default, or ICA as in the paper) and split by 2-means. Poisoned
rows are images of other classes that the trigger drags into the target class, so they
form their own cluster.

Deciding *which* class is poisoned is where the paper's relative-size and silhouette rules
are fragile (a clean digit class also splits in two, and the poison can be a third of its
class). This check uses the held-out clean rows of the same class, which an auditor has:
a natural cluster attracts held-out rows in proportion to its size, a poison cluster
attracts almost none. A class whose smaller cluster receives less than ``heldout_ratio``
times its expected share of held-out rows is flagged, and that cluster's training rows
are the suspects. The paper's relative-size rule is reported alongside for comparison.
When the data set lists the poisoned rows (``meta["poisoned_indices"]``) the suspects are
scored by precision and recall.

Calibration: the held-out ratio rule needed no change to pass every honest model of the
FM10 sweep (see :mod:`redline.checks.training_time`).
"""
from __future__ import annotations

import numpy as np

from ...util.evidence import save_arrays
from ..base import Check, CheckContext, Needs, NotApplicable, Outcome
from .activations import penultimate_activations
from .outliers import score_flags


class ActivationClustering(Check):
    id = "FM10.activation_clustering"
    mode = "FM10"
    title = "Activation clustering of the training data (poisoned-sample detection)"
    needs = Needs(outputs="probabilities", roles=("train", "test"))
    default_budget = 100_000
    metrics = (
        "flagged_classes", "flagged_samples", "per_class", "relative_size_rule", "representation", "precision",
        "recall", "poisoned_samples"
    )
    param_docs = {
        "n_components": "dimensions the activations are reduced to before clustering",
        "reduce": "reduction: pca or ica",
        "heldout_ratio": ("flag a class whose smaller cluster draws less than this times its expected share of "
                          "held-out rows"),
        "size_threshold": "relative size of the smaller cluster at or below which a class is flagged",
        "min_rows": "fewest rows of a class to cluster it",
    }

    def __init__(self, n_components: int = 10, reduce: str = "pca", heldout_ratio: float = 0.3,
                 size_threshold: float = 0.35, min_rows: int = 10):
        self.n_components = n_components
        self.reduce = reduce
        self.heldout_ratio = heldout_ratio
        self.size_threshold = size_threshold
        self.min_rows = min_rows

    def _validate(self) -> None:
        if self.reduce not in ("pca", "ica"):
            raise ValueError(f"reduce must be 'pca' or 'ica', not {self.reduce!r}")
        if int(self.n_components) < 1 or int(self.min_rows) < 2 or not 0 < self.heldout_ratio < 1:
            raise ValueError("n_components must be >= 1, min_rows >= 2 and heldout_ratio in (0, 1)")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        n_rows = len(data.x_train) + len(data.x_test)
        if budget < n_rows:
            raise NotApplicable(f"activations of {n_rows} training and held-out rows need {n_rows} queries; budget {budget}")
        acts, representation = penultimate_activations(target, data.x_train)
        held, _ = penultimate_activations(target, data.x_test)
        y, y_held = np.asarray(data.y_train), np.asarray(data.y_test)

        suspects = np.zeros(len(acts), dtype=bool)
        paper_rule = np.zeros(len(acts), dtype=bool)
        per_class: dict[str, dict] = {}
        flagged: list[int] = []
        for cls in np.unique(y):
            rows = np.flatnonzero(y == cls)
            held_rows = held[y_held == cls]
            if len(rows) < max(int(self.min_rows), int(self.n_components) + 1) or len(held_rows) < self.min_rows:
                continue
            stats, small_rows = self._split(acts[rows], held_rows, rng)
            per_class[str(int(cls))] = stats
            if stats["relative_size"] <= self.size_threshold:
                paper_rule[rows[small_rows]] = True
            if stats["heldout_ratio"] < self.heldout_ratio:
                flagged.append(int(cls))
                suspects[rows[small_rows]] = True
        if not per_class:
            raise NotApplicable(f"no class has {self.min_rows} training and held-out rows to cluster")

        truth = data.meta.get("poisoned_indices")
        scores = score_flags(suspects, truth, len(acts))
        paper = score_flags(paper_rule, truth, len(acts))
        metrics = {
            "flagged_classes": flagged,
            **scores,
            "relative_size_rule": paper,
            "per_class": per_class,
            "representation": representation,
        }
        evidence = {}
        rel = save_arrays(ctx, f"{self.id}-suspects.npz", indices=np.flatnonzero(suspects))
        if rel:
            evidence["examples"] = rel
        summary = self._summary(flagged, scores, per_class)
        return Outcome(vulnerable=bool(flagged), metrics=metrics, evidence=evidence, summary=summary)

    def _split(self, class_acts, held_acts, rng):
        from sklearn.cluster import KMeans
        from sklearn.decomposition import PCA, FastICA
        from sklearn.metrics import silhouette_score

        dims = min(int(self.n_components), class_acts.shape[1], len(class_acts) - 1)
        seed = int(rng.integers(2**31))
        if self.reduce == "pca":
            reducer = PCA(n_components=dims, random_state=seed)
        else:
            reducer = FastICA(n_components=dims, random_state=seed, max_iter=1000, whiten="unit-variance")
        z = reducer.fit_transform(class_acts)
        km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(z)
        counts = np.bincount(km.labels_, minlength=2)
        small = int(np.argmin(counts))
        relative = counts[small] / len(z)
        held_share = float(np.mean(km.predict(reducer.transform(held_acts)) == small))
        silhouette = float(silhouette_score(z, km.labels_)) if counts.min() > 1 else 0.0
        stats = {
            "relative_size": float(relative),
            "silhouette": silhouette,
            "heldout_share": held_share,
            "heldout_ratio": float(held_share / relative) if relative > 0 else 1.0,
        }
        return stats, km.labels_ == small

    def _summary(self, flagged, scores, per_class) -> str:
        if not flagged:
            lowest = min(v["heldout_ratio"] for v in per_class.values())
            return (f"No class has a cluster that held-out clean rows avoid (lowest held-out ratio {lowest:.2f}, "
                    f"cut-off {self.heldout_ratio:g}).")
        text = (f"Class(es) {flagged} hold a cluster of {scores['flagged_samples']} training rows that clean "
                f"held-out rows of the same class avoid: likely poisoned samples.")
        if scores.get("precision") is not None:
            text += f" Against the known poisoned rows: precision {scores['precision']:.0%}"
            text += f", recall {scores['recall']:.0%}." if scores.get("recall") is not None else "."
        return text
