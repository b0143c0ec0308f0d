"""FM04 membership inference without per-record reference fits: score thresholds and
shadow models.

``FM04.threshold`` (Yeom et al. 2018; Song and Mittal 2021): a model is more confident
and has lower loss on the rows it trained on, so a threshold on the loss, the true-class
confidence, its logit, or the modified entropy separates members from non-members. The
check sweeps every threshold (the ROC), which is what an attacker who can calibrate one
achieves at best. The per-class variant first standardises the statistic per class with
the target's answers on population data (``x_pool``, all non-members), because some
classes are simply easier than others.

``FM04.shadow`` (Shokri et al. 2017): shadow models trained on population data imitate
the target; their answers on rows they did and did not train on teach an attack
classifier (one per class by default) what member answers look like, and that
classifier scores the target's answers.

Verdict: :func:`redline.checks.privacy.membership.judge`, the rule every FM04 check shares.
"""
from __future__ import annotations

import numpy as np

from ..base import CheckContext, Inconclusive, Needs, NotApplicable, Outcome
from .membership import (
    JUDGE_METRICS,
    JUDGE_PARAM_DOCS,
    REFERENCE_PARAM_DOCS,
    SCORES,
    MembershipInference,
    logit_confidence,
    require_pool,
    statistic,
    target_probabilities,
    target_train_size,
)
from .reference_choice import plan_references, validate_reference

_MIN_PER_CLASS = 5


class ThresholdAttack(MembershipInference):
    id = "FM04.threshold"
    title = "Membership inference by loss or confidence threshold"
    metrics = (*JUDGE_METRICS, "calibration_rows", "per_class", "score")
    param_docs = {
        "score": "the score thresholded: loss, confidence, entropy or logit",
        "per_class": "one threshold per class (true) or one for all (false)",
        "n_calibration": "population rows used to calibrate the threshold",
        **JUDGE_PARAM_DOCS,
    }

    def __init__(
        self,
        score: str = "loss",
        per_class: bool = False,
        n_calibration: int = 1000,
        max_records: int = 1000,
        fpr: float = 0.01,
        min_tpr: float = 0.05,
    ):
        self.score = score
        self.per_class = per_class
        self.n_calibration = n_calibration
        self.max_records = max_records
        self.fpr = fpr
        self.min_tpr = min_tpr

    def _validate(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, not {self.score!r}")
        if int(self.n_calibration) < _MIN_PER_CLASS:
            raise ValueError(f"n_calibration must be at least {_MIN_PER_CLASS}")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        calibration = None
        if self.per_class:
            pool_x, pool_y = require_pool(data, "per-class calibration")
            n_cal = min(len(pool_x), int(self.n_calibration), budget // 2)
            if n_cal < _MIN_PER_CLASS:  # the budget, not the pool (require_pool vouched for it), is short
                raise Inconclusive(f"per-class calibration needs at least {_MIN_PER_CLASS} population rows and a "
                                   f"budget of {budget} leaves {n_cal} (half the budget); a budget of "
                                   f"{2 * _MIN_PER_CLASS} for them, plus the records' queries, would decide")
            calibration = rng.choice(len(pool_x), size=n_cal, replace=False)
        reserved = 0 if calibration is None else len(calibration)
        records = self.select(data, budget, rng, reserved=reserved)
        probs = target_probabilities(target, records.x)
        scores = statistic(probs, records.y, self.score)
        if calibration is not None:
            cal_probs = target_probabilities(target, pool_x[calibration])
            # The logit scale keeps a confidence statistic roughly Gaussian, so standardising is sound.
            kind = "logit" if self.score == "confidence" else self.score
            scores = _standardise_per_class(
                statistic(probs, records.y, kind), records.y, statistic(cal_probs, pool_y[calibration], kind), pool_y[calibration]
            )
        variant = f"{'per-class' if self.per_class else 'global'} {self.score} threshold"
        return self.verdict(
            ctx, scores, records, variant,
            extra_metrics={"score": self.score, "per_class": bool(self.per_class),
                           "calibration_rows": 0 if calibration is None else len(calibration)},
        )


def _standardise_per_class(values, labels, cal_values, cal_labels) -> np.ndarray:
    """(value - mean) / std with the non-member mean and std of the record's class; classes
    with too few calibration rows use the statistics of all of them."""
    out = np.empty_like(values, dtype=np.float64)
    overall = (cal_values.mean(), cal_values.std() + 1e-9)
    for c in np.unique(labels):
        ref = cal_values[cal_labels == c]
        mean, std = (ref.mean(), ref.std() + 1e-9) if len(ref) >= _MIN_PER_CLASS else overall
        out[labels == c] = (values[labels == c] - mean) / std
    return out


class ShadowModelAttack(MembershipInference):
    id = "FM04.shadow"
    title = "Membership inference with shadow models (Shokri et al.)"
    metrics = (*JUDGE_METRICS, "attack_training_rows", "per_class", "reference_source", "shadow_models")
    param_docs = {
        "n_shadow": "shadow models to train",
        "per_class": "train one attack model per class (true) or one for all (false)",
        **REFERENCE_PARAM_DOCS,
        **JUDGE_PARAM_DOCS,
    }

    def __init__(
        self,
        n_shadow: int = 4,
        per_class: bool = True,
        reference: str = "auto",
        max_records: int = 1000,
        fpr: float = 0.01,
        min_tpr: float = 0.05,
    ):
        self.n_shadow = n_shadow
        self.per_class = per_class
        self.reference = reference
        self.max_records = max_records
        self.fpr = fpr
        self.min_tpr = min_tpr

    def _validate(self) -> None:
        if int(self.n_shadow) < 1:
            raise ValueError("n_shadow must be at least 1")
        validate_reference(self.reference)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        from ...util.reference_models import offline_plan, train_reference_models

        self._validate()
        n_shadow = int(self.n_shadow)
        pool_x, pool_y = require_pool(data, "shadow models")
        if len(np.unique(pool_y)) < 2:
            # Shadows trained on one class answer it with certainty for every row: their members
            # and non-members look alike, and the attack learned nothing (AUC exactly 0.5).
            raise NotApplicable(f"the population data (x_pool) holds one class ({int(pool_y[0])}): shadow models "
                                "trained on it cannot stand in for the target; a pool with the target's classes would")
        records = self.select(data, budget, rng)
        probs = target_probabilities(target, records.x)
        ctx.progress(1, 3)

        # Shadow k trains on half the pool (at most the target's training-set size); the
        # rows it did not see are its non-members.
        size = min(target_train_size(data), len(pool_x) // 2)
        plan = offline_plan(len(pool_x), n_shadow, size, rng)
        references = plan_references(target, data, records, probs, self.reference)
        seed = int(rng.integers(2**31))
        if references.family is not None:
            shadows = references.family.train(pool_x, pool_y, plan, n_classes=target.n_classes,
                                              modality=data.modality, seed=seed)
        else:
            shadows = train_reference_models(target, pool_x, pool_y, plan, modality=data.modality, seed=seed,
                                             source=references.source)
        shadow_probs = shadows.predict_proba(pool_x)  # (shadows, pool rows, classes)
        ctx.progress(2, 3)

        features, labels, classes = [], [], []
        for k in range(n_shadow):
            out_rows = rng.permutation(np.flatnonzero(~plan[k]))[: int(plan[k].sum())]  # balanced in/out
            rows = np.r_[np.flatnonzero(plan[k]), out_rows]
            features.append(_features(shadow_probs[k, rows], pool_y[rows]))
            labels.append(plan[k, rows])
            classes.append(pool_y[rows])
        features, labels, classes = np.concatenate(features), np.concatenate(labels), np.concatenate(classes)
        scores = _fit_and_score(features, labels, classes, _features(probs, records.y), records.y,
                                per_class=bool(self.per_class), seed=int(rng.integers(2**31)))
        ctx.progress(3, 3)
        return self.verdict(
            ctx, scores, records, "shadow-model attack",
            extra_metrics={"shadow_models": n_shadow, "per_class": bool(self.per_class),
                           "reference_source": shadows.source, "attack_training_rows": len(labels)},
            extra_evidence={"reference_family": references.evidence()},
            notes=f"{n_shadow} shadow models ({references.describe()}) trained on population data.",
        )


def _features(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """What the attack classifier sees of one answer: loss, logit confidence, the top two
    log-probabilities, modified entropy and whether the answer is right."""
    top = np.log(np.clip(np.sort(probs, axis=1)[:, ::-1][:, :2], 1e-30, None))
    return np.column_stack([
        statistic(probs, y, "loss"), logit_confidence(probs, y), top,
        statistic(probs, y, "entropy"), (probs.argmax(axis=1) == y).astype(np.float64),
    ])


def _fit_and_score(features, labels, classes, query_features, query_classes, *, per_class: bool, seed: int) -> np.ndarray:
    """Attack classifier(s) trained on shadow answers; P(member) for each queried record."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    # Small fits: OpenMP worker threads cost more than they save (and far more on a busy machine).
    with threadpool_limits(1):
        return _fit_and_score_serial(HistGradientBoostingClassifier, features, labels, classes, query_features,
                                     query_classes, per_class=per_class, seed=seed)


def _fit_and_score_serial(HistGradientBoostingClassifier, features, labels, classes, query_features, query_classes,
                          *, per_class: bool, seed: int) -> np.ndarray:
    def model():
        return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)

    everyone = model().fit(features, labels)
    scores = everyone.predict_proba(query_features)[:, 1]
    if not per_class:
        return scores
    for c in np.unique(query_classes):
        train = classes == c
        # A class the shadows rarely saw, or saw only as one side, keeps the shared model's score.
        if train.sum() < 4 * _MIN_PER_CLASS or len(np.unique(labels[train])) < 2:
            continue
        rows = query_classes == c
        scores[rows] = model().fit(features[train], labels[train]).predict_proba(query_features[rows])[:, 1]
    return scores


class LabelOnlyAttack(MembershipInference):
    """Membership from labels alone (Choquette-Choo et al. 2021; Li and Zhang 2021).

    A model tends to keep its answer on a training row over a wider neighbourhood than on
    an unseen row. ``method="noise"`` sends ``queries_per_record`` noisy copies of each
    record at a ladder of noise levels and scores the share that keep the true label;
    ``method="boundary"`` estimates the distance to the decision boundary along random
    directions by bisection (a cheap, HopSkipJump-like estimate without the gradient walk)
    and scores the smallest distance found. Misclassified records score lowest. Queries:
    one clean query per record plus ``queries_per_record``.
    """

    id = "FM04.label_only"
    title = "Label-only membership inference (robustness to perturbation)"
    needs = Needs(roles=("train", "test"))
    default_budget = 40_000
    metrics = (*JUDGE_METRICS, "accuracy_members", "accuracy_nonmembers", "method", "queries_per_record")
    param_docs = {
        "method": "noise (share of noisy copies that keep the label) or boundary (distance to the decision boundary)",
        "queries_per_record": "queries spent per record",
        "max_noise": "largest noise level, relative to the input range, in (0, 1]",
        "n_directions": "random directions searched per record (boundary method)",
        **JUDGE_PARAM_DOCS,
    }

    def __init__(
        self,
        method: str = "noise",
        queries_per_record: int = 32,
        max_noise: float = 0.5,
        n_directions: int = 4,
        max_records: int = 1000,
        fpr: float = 0.01,
        min_tpr: float = 0.05,
    ):
        self.method = method
        self.queries_per_record = queries_per_record
        self.max_noise = max_noise
        self.n_directions = n_directions
        self.max_records = max_records
        self.fpr = fpr
        self.min_tpr = min_tpr

    def _validate(self) -> None:
        if self.method not in ("noise", "boundary"):
            raise ValueError(f"method must be 'noise' or 'boundary', not {self.method!r}")
        per_record = int(self.queries_per_record)
        n_dir = int(self.n_directions)
        if self.method == "boundary" and (n_dir < 1 or per_record < 2 * n_dir):
            raise ValueError("boundary needs n_directions >= 1 and at least two bisection queries per direction")
        if per_record < 1 or not 0 < float(self.max_noise) <= 1:
            raise ValueError("queries_per_record must be at least 1 and max_noise in (0, 1]")

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        per_record = int(self.queries_per_record)
        n_dir = int(self.n_directions)
        records = self.select(data, budget, rng, queries_per_record=1 + per_record)
        spec = target.input_spec
        span = float(spec.upper - spec.lower) or 1.0
        correct = target.predict_labels(records.x) == records.y
        if self.method == "noise":
            kept = self._noise(target, records, per_record, span, rng)
        else:
            kept = self._boundary(target, records, per_record // n_dir, n_dir, span, rng)
        scores = np.where(correct, kept, -1.0)
        variant = f"label-only ({self.method})"
        return self.verdict(
            ctx, scores, records, variant,
            extra_metrics={"method": self.method, "queries_per_record": 1 + per_record,
                           "accuracy_members": float(correct[records.is_member].mean()),
                           "accuracy_nonmembers": float(correct[~records.is_member].mean())},
        )

    def _noise(self, target, records, per_record, span, rng) -> np.ndarray:
        """Share of noisy copies that keep the true label; noise levels rise geometrically
        to ``max_noise`` of the input range so that both easy and hard records separate."""
        spec = target.input_spec
        levels = float(self.max_noise) * span * np.geomspace(0.05, 1.0, per_record)
        n = len(records)
        kept = np.zeros(n)
        for level in levels:  # one batched query per level: every record at once
            noisy = records.x + rng.normal(scale=level, size=records.x.shape)
            noisy = spec.constraints.project(spec.clip(noisy), records.x) if spec.constraints else spec.clip(noisy)
            kept += target.predict_labels(noisy.astype(records.x.dtype)) == records.y
        return kept / per_record

    def _boundary(self, target, records, steps, n_dir, span, rng) -> np.ndarray:
        """Smallest distance (in units of the input range) along ``n_dir`` random directions
        at which the label changes, found by bisection over [0, max_noise * range * sqrt(d)]."""
        spec = target.input_spec
        flat = records.x.reshape(len(records), -1).astype(np.float64)
        d = flat.shape[1]
        best = np.full(len(records), np.inf)
        for _ in range(n_dir):
            direction = rng.normal(size=flat.shape)
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            lo, hi = np.zeros(len(records)), np.full(len(records), float(self.max_noise) * span * np.sqrt(d))
            for _ in range(steps):
                mid = (lo + hi) / 2
                probe = spec.clip(flat + mid[:, None] * direction).reshape(records.x.shape)
                if spec.constraints:
                    probe = spec.constraints.project(probe, records.x)
                same = target.predict_labels(probe.astype(records.x.dtype)) == records.y
                lo, hi = np.where(same, mid, lo), np.where(same, hi, mid)
            best = np.minimum(best, lo)
        return best / span
