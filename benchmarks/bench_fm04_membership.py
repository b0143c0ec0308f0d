"""FM04 membership inference: redline's attacks against ART's on the same target and the same
rows, in one run.

For each zoo target (default: digits_mlp_overfit, its DP twin digits_mlp_regularized as the
negative control, and mnist_cnn on a sample) the evaluated rows are fixed first: members
are (a sample of) the target's training rows, non-members (a sample of) its test rows, and
every attack, redline's and ART's, scores exactly those rows. redline's checks work in the
auditor's setting (population data ``x_pool`` for reference models, no membership labels).

ART gets its best reasonable settings:

* MembershipInferenceBlackBox is supervised: it needs rows of known membership to train
  its attack model. It is cross-fitted: trained on one half of the evaluated rows (with
  their true membership, an advantage redline's attacks do not get) and scored on the
  other, then the other way round, so it too scores every row. Every combination of
  ``input_type`` (the target's logits, or its loss) and attack model (random forest,
  gradient boosting, neural net) runs, and the best one counts.
* MembershipInferenceBlackBoxRuleBased and LabelOnlyGapAttack call a row a member when the
  model classifies it correctly (a two-valued score).
* LabelOnlyDecisionBoundary measures each row's L2 distance to the decision boundary with
  HopSkipJump; it is scored by that distance itself (``infer(probabilities=True)`` with no
  calibration bins, a monotone function of the distance), so its whole ROC counts, not one
  threshold. HopSkipJump settings per target are printed with the results.

Prints AUC and TPR at 0.1% and 1% FPR per attack, and redline's best TPR at 1% FPR over
ART's best (goal: at least 5x on the vulnerable targets).

    python benchmarks/bench_fm04_membership.py [--targets digits_mlp_overfit,mnist_cnn]
        [--n-reference 16] [--mnist-records 500] [--no-hsj]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

# Per target: reference models, evaluated rows per side, HopSkipJump settings for ART's
# LabelOnlyDecisionBoundary (its defaults, 50 iterations of up to 10,000 queries per row,
# take hours on 2 cores; these keep it to minutes).
SETTINGS = {
    "digits": {"n_reference": 16, "records": None, "hsj": {"norm": 2, "max_iter": 10, "max_eval": 1000, "init_eval": 100, "init_size": 100}},
    "mnist": {"n_reference": 8, "records": 500, "hsj": {"norm": 2, "max_iter": 5, "max_eval": 500, "init_eval": 50, "init_size": 50}},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="digits_mlp_overfit,digits_mlp_regularized,mnist_cnn")
    ap.add_argument("--n-reference", type=int, default=None, help="reference models (default: 16 digits, 8 mnist)")
    ap.add_argument("--mnist-records", type=int, default=None, help="members and non-members evaluated on mnist (500)")
    ap.add_argument("--reference", default="surrogate", help="auto | recipe | surrogate")
    ap.add_argument("--no-hsj", action="store_true", help="skip ART's LabelOnlyDecisionBoundary (HopSkipJump)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # small models; extra threads only contend on a shared machine
    summary = []
    for name in args.targets.split(","):
        settings = dict(SETTINGS["mnist" if name.startswith("mnist") else "digits"])
        if args.n_reference:
            settings["n_reference"] = args.n_reference
        if args.mnist_records and name.startswith("mnist"):
            settings["records"] = args.mnist_records
        summary.append(run_target(name, settings, args))
    print("\nsummary: best TPR@1%FPR")
    for name, ours, art, ratio in summary:
        print(f"  {name:26s} redline {ours:.3f}  ART {art:.3f}  ratio {ratio:.1f}x")


def evaluation_data(name: str, records: int | None, seed: int):
    """The zoo data set, or a sample of ``records`` members and non-members of it (the pool
    kept whole) that still tells the checks how many rows the target trained on."""
    from redline import zoo
    from redline.data.base import Dataset

    data = zoo.load_data_for(name)
    if records is None:
        return data
    rng = np.random.default_rng(seed)
    members = rng.choice(len(data.x_train), size=min(records, len(data.x_train)), replace=False)
    nonmembers = rng.choice(len(data.x_test), size=min(records, len(data.x_test)), replace=False)
    return Dataset(
        data.name, data.x_train[members], data.y_train[members], data.x_test[nonmembers], data.y_test[nonmembers],
        data.x_pool, data.y_pool, modality=data.modality, spec=data.spec,
        meta={**data.meta, "train_size": len(data.x_train)},
    )


def run_target(name: str, settings: dict, args) -> tuple[str, float, float, float]:
    from redline import zoo
    from redline.checks.fm04_lira import LikelihoodRatioAttack
    from redline.checks.fm04_membership import LabelOnlyAttack, ShadowModelAttack, ThresholdAttack
    from redline.checks.fm04_rmia import RelativeMembershipInference
    from redline.targets.base import LabelOnlyTarget

    target = zoo.load_target(name)
    data = evaluation_data(name, settings["records"], args.seed)
    n_ref, ref = settings["n_reference"], args.reference
    rows = []
    checks = [
        ("loss threshold", ThresholdAttack(), target),
        ("per-class logit threshold", ThresholdAttack(score="logit", per_class=True), target),
        ("shadow models (4)", ShadowModelAttack(reference=ref), target),
        ("label-only noise (labels)", LabelOnlyAttack(), LabelOnlyTarget(target)),
        (f"LiRA online ({n_ref})", LikelihoodRatioAttack(n_reference=n_ref, reference=ref), target),
        (f"LiRA offline ({n_ref})", LikelihoodRatioAttack(n_reference=n_ref, reference=ref, online=False), target),
        (f"RMIA online ({n_ref})", RelativeMembershipInference(n_reference=n_ref, reference=ref), target),
    ]
    for label, check, attacked in checks:
        start = time.perf_counter()
        finding = check(attacked, data, budget=10**6, seed=args.seed)
        if finding.status.name in ("ERROR", "NOT_APPLICABLE"):
            print(f"  redline {label}: {finding.status.name} {finding.reason}")
            continue
        assert finding.metrics["members"] == len(data.x_train) and finding.metrics["nonmembers"] == len(data.x_test)
        rows.append((f"redline {label}", finding.metrics, time.perf_counter() - start))
        print(f"  {name}: redline {label}: TPR@1% {finding.metrics['tpr_at_fpr_0.01']:.3f}", flush=True)

    rows += art_rows(target, data, settings["hsj"], args)

    print(f"\ntarget zoo:{name}: {len(data.x_train)} members / {len(data.x_test)} non-members, all scored by every "
          f"attack (resolution at 1% FPR: {int(0.01 * len(data.x_test))} false positives); "
          f"ART HopSkipJump settings {settings['hsj']}")
    print(f"{'attack':52s} {'AUC':>6s} {'TPR@0.1%':>9s} {'TPR@1%':>7s} {'seconds':>8s}")
    for label, m, seconds in rows:
        print(f"{label:52s} {m['auc']:6.3f} {m['tpr_at_fpr_0.001']:9.3f} {m['tpr_at_fpr_0.01']:7.3f} {seconds:8.1f}")
    ours = max(m["tpr_at_fpr_0.01"] for label, m, _ in rows if label.startswith("redline"))
    art = max(m["tpr_at_fpr_0.01"] for label, m, _ in rows if label.startswith("ART"))
    ratio = ours / art if art > 0 else float("inf")
    print(f"best TPR@1%FPR: redline {ours:.3f}, ART {art:.3f}, ratio {ratio:.1f}x", flush=True)
    return name, ours, art, ratio


def art_rows(target, data, hsj: dict, args) -> list:
    import torch
    from art.attacks.inference.membership_inference import (
        LabelOnlyDecisionBoundary,
        LabelOnlyGapAttack,
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
    )
    from art.estimators.classification import PyTorchClassifier

    from redline.util import roc

    x = np.concatenate([data.x_train, data.x_test]).astype(np.float32)
    y = np.concatenate([data.y_train, data.y_test]).astype(np.int64)
    is_member = np.r_[np.ones(len(data.x_train), bool), np.zeros(len(data.x_test), bool)]
    # Two folds, each half of the members and half of the non-members.
    rng = np.random.default_rng(args.seed)
    fold = np.zeros(len(x), dtype=int)
    for side in (is_member, ~is_member):
        rows = rng.permutation(np.flatnonzero(side))
        fold[rows[: len(rows) // 2]] = 1

    class Float32(torch.nn.Module):  # HopSkipJump sends float64 samples; the zoo models take float32
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, xb):
            return self.inner(xb.float())

    clf = PyTorchClassifier(Float32(target.module).eval(), loss=torch.nn.CrossEntropyLoss(), input_shape=x.shape[1:],
                            nb_classes=target.n_classes, clip_values=(0.0, 1.0))
    out = []

    def cross_fitted(make) -> np.ndarray:
        scores = np.zeros(len(x))
        for held_out in (0, 1):
            fit, test = fold != held_out, fold == held_out
            attack = make()
            attack.fit(x[fit & is_member], y[fit & is_member], x[fit & ~is_member], y[fit & ~is_member])
            proba = np.asarray(attack.infer(x[test], y[test], probabilities=True), dtype=np.float64)
            scores[test] = proba.reshape(int(test.sum()), -1)[:, -1]
        return scores

    for input_type in ("prediction", "loss"):
        for model in ("rf", "gb", "nn"):
            start = time.perf_counter()
            scores = cross_fitted(lambda: MembershipInferenceBlackBox(clf, input_type=input_type, attack_model_type=model))
            out.append((f"ART MembershipInferenceBlackBox ({input_type}, {model})",
                        roc.membership_metrics(scores, is_member), time.perf_counter() - start))
    for label, attack in (("ART MembershipInferenceBlackBoxRuleBased", MembershipInferenceBlackBoxRuleBased(clf)),
                          ("ART LabelOnlyGapAttack", LabelOnlyGapAttack(clf))):
        start = time.perf_counter()
        scores = np.asarray(attack.infer(x, y), dtype=np.float64).ravel()
        out.append((label, roc.membership_metrics(scores, is_member), time.perf_counter() - start))
    if not args.no_hsj:
        start = time.perf_counter()
        # The threshold only places one point on the ROC; the distance ranks all rows.
        attack = LabelOnlyDecisionBoundary(clf, distance_threshold_tau=1.0)
        np.random.seed(args.seed)  # HopSkipJump draws from numpy's global generator
        proba = attack.infer(x, y, probabilities=True, verbose=False, **hsj)
        scores = np.asarray(proba, dtype=np.float64)[:, 1]
        out.append(("ART LabelOnlyDecisionBoundary (HSJ distance)", roc.membership_metrics(scores, is_member),
                    time.perf_counter() - start))
    return out


if __name__ == "__main__":
    main()
