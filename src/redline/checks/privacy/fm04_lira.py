"""FM04 membership inference by likelihood ratio: LiRA (Carlini et al. 2022).

For each evaluated record, reference models trained with and without it show how its
logit-scaled confidence ``log(p_y / (1 - p_y))`` is distributed in either case; a Gaussian
fits each distribution. The target's own value is then scored by the likelihood ratio
(online: IN against OUT) or, with OUT models only (offline), by how far it sits in the OUT
distribution's upper tail (a one-sided test).

The means are per record; the variances are either each record's own or one per side
shared by all records (the fixed-variance variant). ``fixed_variance: auto`` (the default)
takes the one that predicts the target's own statistics better, each record scored under
its side's Gaussian by the continuous ranked probability score (:func:`choose_variance`).
Per-record variances pay where the references reproduce the target record by record (a
forest's tied votes); with few models or references of another kind a record whose
references happen to agree gets a spuriously narrow Gaussian. Measured offline on the
bench's targets with 32 references of each of several families (TPR at 1% FPR, shared
against per-record; the choice in brackets): held-out MNIST CNN, CNN family 0.064 / 0.053
[shared], MLP family 0.040 / 0.033 [shared]; held-out boosted trees, MLP family 0.131 /
0.019 [shared], boosted trees of 150 rounds 0.137 / 0.035 [shared], of 450 rounds 0.155 /
0.122 [per-record, by 0.02 in mean CRPS]; tuning forest, forest family 0.019 / 0.094
[per-record]; tuning digits MLP, MLP@60 0.072 / 0.030 [shared]; held-out MNIST MLP,
MLP@180 0.147 / 0.195 [per-record]. With 32 models it took the better of the two in 12 of
15 such target-family pairs (two of the other three within 0.01), where the old rule
(per-record from 32 models on) did in 4; with 8 models in 13 of 14 (the other within
0.01). Records that happen to be in no online reference model borrow the average IN-OUT
shift of the others.

Queries: one per evaluated record, plus one per record and augmented view (``augmentations``
shifted copies, images only) that the references show to carry membership: online, each
view's separation (the mean IN-OUT shift of the statistic, in pooled standard deviations)
is measured on the reference models before the target is asked, and only views separated
at least half as well as the record itself are queried and scored. A network not trained
on shifted images keeps little trace of its members in shifted copies (on the bench's
held-out MNIST MLP the unshifted separation is 1.18, the shifted ones 0.14-0.50); summed
in, those views only added the noise of their estimated means (TPR at 1% FPR 0.145 from
the record alone, 0.096 with all eight views; a multivariate Gaussian over the views did
no better, 0.093). On the bench's held-out MNIST CNN (references cnn-16x32@20) the
shifted views separate at 0.64-0.71 of the record's own, so seven of eight are kept, yet
they still lowered TPR at 1% FPR (0.045 to 0.038 with 8 references): views stay opt-in.
Reference models are trained locally with true labels and cost no target queries.

Budget into power: ``n_reference: auto`` (the default) trains 32 reference models when a
family trains them (matched or named) and it is not a CNN: trees, linear models and MLPs
(whose models train all at once) take seconds to a few minutes; and 8 from a CNN family
and from a target's own recipe (one model at a time, at a cost redline cannot bound).
Chosen on the bench's tuning targets (with per-record variances at 32, the rule then): TPR
at 1% FPR went from 0.027 (8 models) to 0.098 on a random forest, whose exact 0/1 votes
make one shared variance meaningless, from 0.069 to 0.086 on boosted trees (64 bought
nothing more: 0.075 and 0.089), and from 0.070 to 0.095 on the digits MLP (family
mlp-512x256@180). The held-out MNIST MLP then went from 0.147 to 0.205 (16 models had
bought nothing, 0.146: the gain comes with the per-record variances). CNN families stay at
8: on the held-out MNIST CNN 32 models of cnn-16x32@20 took 619 s of LiRA on a loaded
machine and gave 0.044 with per-record variances against 0.050 from 8 (offline with one
shared variance, as ``fixed_variance: auto`` now picks there, 32 give 0.064 and 64 give
0.075); even the target's exact recipe as references levels off at about 0.083 from 64
models, so that model leaks little to any reference attack. Online, the family trial's 8
models of the chosen family join the ones trained here at no cost
(:mod:`.reference_choice`): 16 references on that CNN for the price of 8, TPR at 1% FPR
0.052 to 0.060.
``augmentations: auto`` (opt-in) spends the query budget left after scoring every record
once on as many shifted views as it covers (up to eight), of which only the informative
ones are queried (above). The evidence's ``budget`` entry says what was afforded and what
a larger budget would buy.

Verdict: :func:`redline.checks.privacy.membership.judge`, the rule every FM04 check shares.
"""
from __future__ import annotations

import numpy as np

from ...errors import UsageError
from ..base import CheckContext, Outcome
from .membership import (
    JUDGE_METRICS,
    JUDGE_PARAM_DOCS,
    PER_RECORD_PARAM_DOCS,
    REFERENCE_PARAM_DOCS,
    MembershipInference,
    crps_by_variance,
    logit_confidence,
    power_trend,
    reference_count_text,
    reference_gaussians,
    reference_outputs,
    target_probabilities,
)
from .reference_choice import plan_references, validate_reference

# Shifts of (rows, columns) in pixels for the augmented views, in order of use.
_SHIFTS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1))
# A shifted view is scored when its reference separation is at least this share of the record's own.
_VIEW_KEEP = 0.5
# Fewest reference models that measure the views' separation (two a side per record).
_MIN_VIEW_MODELS = 4
# ``n_reference: auto``: references from a family that trains fast (trees, linear models,
# MLPs) get enough for per-record variances; CNN families and recipes the usual 8.
_AUTO_REFERENCES = {"fast family": 32, "other": 8}


class LikelihoodRatioAttack(MembershipInference):
    id = "FM04.lira"
    title = "Membership inference by likelihood ratio (LiRA)"
    metrics = (*JUDGE_METRICS, "estimated_tpr_gain_2x_references", "fixed_variance", "online", "reference_models",
               "reference_source", "reused_trial_models", "views")
    param_docs = {
        **PER_RECORD_PARAM_DOCS,
        "fixed_variance": "share one variance across records: true, false or auto (whichever predicts the "
                          "target's answers better)",
        "augmentations": "augmented views queried per record (0, the default: the record only; auto: as many as "
                         "the budget affords on images, 0 on tables)",
        **REFERENCE_PARAM_DOCS,
        "n_reference": "reference models trained (auto, the default: 32 when a tree, linear or MLP reference family "
                       "trains them, 8 from a CNN family or a recipe); online, a matched family's 8 trial models join "
                       "them at no cost",
        **JUDGE_PARAM_DOCS,
    }

    def __init__(
        self,
        online: bool = True,
        n_reference: int | str = "auto",
        fixed_variance: bool | str = "auto",
        augmentations: int | str = 0,
        reference: str = "auto",
        max_records: int = 1000,
        fpr: float = 0.01,
        min_tpr: float = 0.05,
    ):
        self.online = online
        self.n_reference = n_reference
        self.fixed_variance = fixed_variance
        self.augmentations = augmentations
        self.reference = reference
        self.max_records = max_records
        self.fpr = fpr
        self.min_tpr = min_tpr

    def _validate(self) -> None:
        for name in ("n_reference", "augmentations"):
            if isinstance(getattr(self, name), str) and getattr(self, name) != "auto":
                raise ValueError(f"{name} must be a whole number or 'auto'")
        if self.n_reference != "auto" and int(self.n_reference) < 2:
            # Online models come in pairs (each record in one, out of the other); offline, one
            # model gives no spread to measure a record's tail against.
            raise ValueError("n_reference must be at least 2 or 'auto'")
        if self.fixed_variance != "auto" and not isinstance(self.fixed_variance, bool):
            raise TypeError("fixed_variance must be true, false or 'auto'")
        if self.augmentations != "auto" and not 0 <= int(self.augmentations) <= len(_SHIFTS):
            raise ValueError(f"augmentations must be between 0 and {len(_SHIFTS)}, or 'auto'")
        validate_reference(self.reference)

    def _reference_count(self, data, plan) -> int:
        return _auto_reference_count(plan) if self.n_reference == "auto" else int(self.n_reference)

    def run(self, target, data, budget, rng, ctx: CheckContext) -> Outcome:
        self._validate()
        shiftable = data.modality == "image" and len(target.input_spec.shape) == 3
        if self.augmentations == "auto":
            n_aug, spend = affordable_views(data, int(self.max_records), budget, shiftable, len(_SHIFTS))
        else:
            n_aug, spend = int(self.augmentations), {"augmentations": int(self.augmentations), "note": ""}
        if n_aug and not shiftable:
            raise UsageError(f"{self.id}.augmentations (pixel shifts) apply to images shaped (channels, height, "
                             f"width) only; use --set {self.id}.augmentations=0")

        offered = [(0, 0), *_SHIFTS[:n_aug]]
        records = self.select(data, budget, rng, queries_per_record=len(offered))
        fill = target.input_spec.lower
        target_probs = target_probabilities(target, records.x)
        ctx.progress(1, 3)

        plan = plan_references(target, data, records, target_probs, self.reference)
        n_trained = self._reference_count(data, plan)
        refs = reference_outputs(
            target, data, records, online=bool(self.online), n_models=n_trained, references=plan, rng=rng
        )
        n_ref = refs.n_models  # with the family trial's models, when they were reused
        ref_stat = np.stack(
            [logit_confidence(refs.probs, records.y)]
            + [logit_confidence(refs.models.predict_proba(_shift(records.x, v, fill)), records.y) for v in offered[1:]],
            axis=1,
        )  # (models, views, records)
        # Query the target only on the views in which the references show membership at all.
        keep, separation = informative_views(ref_stat, refs.in_mask) if self.online else (list(range(len(offered))), [])
        views = [offered[i] for i in keep]
        ref_stat = ref_stat[:, keep]
        target_stat = np.stack([logit_confidence(target_probs, records.y)]
                               + [logit_confidence(target_probabilities(target, _shift(records.x, v, fill)), records.y)
                                  for v in views[1:]])  # (views, records)
        ctx.progress(2, 3)
        if separation is None and len(offered) > 1:
            spend = {**spend, "offered": len(offered), "kept": 1,
                     "note": (spend["note"] + f" Views kept: the record only ({n_ref} reference models cannot measure "
                              f"which shifted views separate members; {_MIN_VIEW_MODELS} or more can).").strip()}
        elif separation is not None and len(separation) and len(offered) > 1:
            spend = {**spend, "offered": len(offered), "kept": len(views),
                     "separation": [round(float(d), 3) for d in separation],
                     "note": (spend["note"] + f" Views kept: {len(views)} of {len(offered)} (the shifted views whose "
                              f"reference IN/OUT separation is at least {_VIEW_KEEP:g} of the record's own; "
                              f"separations {', '.join(f'{d:.2f}' for d in separation)}).").strip()}

        in_mask = np.broadcast_to(refs.in_mask[:, None, :], ref_stat.shape)

        def variance_for(k: int) -> tuple[bool, dict]:
            if self.fixed_variance != "auto":
                return bool(self.fixed_variance), {}
            return choose_variance(target_stat[0], ref_stat[:k, 0], refs.in_mask[:k], records.is_member,
                                   bool(self.online))

        fixed, variance_fit = variance_for(n_ref)
        scores = _lira_scores(target_stat, ref_stat, in_mask, bool(self.online), fixed)
        # Fewer models are scored as the check would score them (the variance chosen again
        # for each count), so the trend shows what each count buys.
        trend = power_trend(
            lambda k: _lira_scores(target_stat, ref_stat[:k], in_mask[:k], bool(self.online), variance_for(k)[0]),
            n_ref, records, self.fpr, step=2 if self.online else 1,
        )
        ctx.progress(3, 3)

        variant = f"{'online' if self.online else 'offline'} LiRA"
        notes = (
            f"{reference_count_text(refs)} ({plan.describe()}; {'fixed' if fixed else 'per-record'} variance, "
            f"{len(views)} view{'s' if len(views) > 1 else ''}). {trend['note']}"
            + (f" {spend['note']}" if spend["note"] else "")
        )
        return self.verdict(
            ctx, scores, records, variant,
            extra_metrics={"reference_models": n_ref, "online": bool(self.online), "fixed_variance": fixed,
                           "views": len(views), "reference_source": refs.source, "reused_trial_models": refs.reused,
                           "estimated_tpr_gain_2x_references": trend["estimated_gain"]},
            extra_evidence={"reference_family": plan.evidence(), "budget": {**trend, "views": spend},
                            **({"variance_fit": variance_fit} if variance_fit else {})},
            notes=notes,
        )


def choose_variance(target_stat: np.ndarray, ref_stat: np.ndarray, in_mask: np.ndarray, is_member: np.ndarray,
                    online: bool) -> tuple[bool, dict]:
    """``fixed_variance: auto``: (fixed, evidence). One variance shared by all records, or each
    record's own, whichever predicts the target's own statistic better: each record's value
    is scored under its side's Gaussian (member: IN, non-member: OUT; offline, OUT for
    both) by the continuous ranked probability score, averaged over records (lower is
    better; a proper score, so it favours neither too narrow nor too wide a Gaussian). Per-
    record variances pay where the references reproduce the target record by record (a
    forest's tied votes); with references of another kind, or too few models for a variance
    per record, a record whose references happen to agree gets a spuriously narrow Gaussian,
    and the shared one predicts the target better. The mean, not the median the family trial
    takes (:mod:`.reference_choice`): here both Gaussians have the same means and only their
    widths differ, which a proper score judges without bias. A fit of the target's answers, not a
    measure of the attack's power: on a model that leaks nothing no choice makes its members
    stand out."""
    scores = crps_by_variance(target_stat, ref_stat, in_mask, is_member, online, np.mean)
    fixed = scores[True] <= scores[False]
    return fixed, {"chosen": "fixed" if fixed else "per-record", "mean_crps_fixed": round(scores[True], 4),
                   "mean_crps_per_record": round(scores[False], 4)}


def _auto_reference_count(plan) -> int:
    """How many reference models ``n_reference: auto`` trains (module docstring)."""
    fast = plan.family is not None and plan.family.kind != "cnn"
    return _AUTO_REFERENCES["fast family" if fast else "other"]


def affordable_views(data, max_records: int, budget: int, shiftable: bool, most: int) -> tuple[int, dict]:
    """How many augmented views (besides the record itself) the query budget affords when
    every record that one view would score keeps being scored: ``budget`` over the queries
    of one pass, less one, at most ``most``; none for inputs that cannot be shifted."""
    per_pass = min(len(data.x_train), max_records) + min(len(data.x_test), max_records)
    passes = max(1, int(budget) // max(1, per_pass))
    n_aug = min(most, passes - 1) if shiftable else 0
    if not shiftable:
        note = "Augmented views: none (only images are shifted)."
    elif n_aug < most:
        note = (f"Augmented views: the budget of {int(budget):,} queries affords {n_aug} shifted "
                f"view{'s' if n_aug != 1 else ''} of {per_pass:,} records ({per_pass * (n_aug + 1):,} queries); "
                f"a budget of {per_pass * (most + 1):,} would buy all {most}.")
    else:
        note = (f"Augmented views: all {most} shifted views of {per_pass:,} records "
                f"({per_pass * (most + 1):,} of the {int(budget):,} queries).")
    return n_aug, {"augmentations": n_aug, "queries_per_pass": per_pass,
                   "queries": per_pass * (n_aug + 1), "budget": int(budget), "note": note}


def informative_views(ref_stat: np.ndarray, in_mask: np.ndarray) -> tuple[list[int], np.ndarray | None]:
    """Which views to score, from the reference models alone: the record itself, and each
    shifted view whose separation (mean IN-OUT shift of the statistic over the records, in
    pooled standard deviations) is at least ``_VIEW_KEEP`` of the record's own. A network
    that was not trained on shifted images keeps little trace of its members in their
    shifted copies; summed in, such views add the noise of their estimated means and no
    signal (on a held-out MNIST MLP eight views halved TPR at 1% FPR), so they are left
    out and the target is not asked about them. With fewer than ``_MIN_VIEW_MODELS`` models
    (a record in one, out of one) no spread is measured: the record only, separation None."""
    if len(ref_stat) < _MIN_VIEW_MODELS:  # one model a side per record: no spread to measure separation in
        return [0], None
    mask = np.broadcast_to(in_mask[:, None, :], ref_stat.shape)
    mu_out, sd_out = reference_gaussians(ref_stat, ~mask, True)
    mu_in, sd_in = reference_gaussians(ref_stat, mask, True, fallback_mean=mu_out)
    separation = ((mu_in - mu_out) / np.sqrt((sd_in**2 + sd_out**2) / 2)).mean(axis=1)  # (views,)
    keep = [0] + [v for v in range(1, len(separation))
                  if separation[0] > 0 and separation[v] >= _VIEW_KEEP * separation[0]]
    return keep, separation


def _lira_scores(target_stat: np.ndarray, ref_stat: np.ndarray, in_mask: np.ndarray, online: bool,
                 fixed: bool) -> np.ndarray:
    """One score per record: the IN/OUT log likelihood ratio (online) or the log of the OUT
    Gaussian's upper tail (offline), summed over views."""
    mu_out, sd_out = reference_gaussians(ref_stat, ~in_mask, fixed)
    if online:
        mu_in, sd_in = reference_gaussians(ref_stat, in_mask, fixed, fallback_mean=mu_out)
        return (_log_normal(target_stat, mu_in, sd_in) - _log_normal(target_stat, mu_out, sd_out)).sum(axis=0)
    return _log_ndtr((target_stat - mu_out) / sd_out).sum(axis=0)


def _shift(x: np.ndarray, view: tuple[int, int], fill: float) -> np.ndarray:
    """Images moved by (rows, columns) pixels, the uncovered border set to ``fill``."""
    dy, dx = view
    if dy == 0 and dx == 0:
        return x
    out = np.full_like(x, fill)
    h, w = x.shape[-2:]
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[
        ..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def _log_normal(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def _log_ndtr(z: np.ndarray) -> np.ndarray:
    from scipy.special import log_ndtr

    return log_ndtr(z)
