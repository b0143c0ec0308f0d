"""FM04 membership inference: redline's attacks against ART's on the same target, in one run.

Target: a zoo model (default digits_mlp_overfit), members = its training rows, non-members =
the test rows. ART's attacks are supervised: MembershipInferenceBlackBox trains its attack
model on half of the members and non-members (with their true membership, an advantage
redline's attacks do not get) and all ART attacks are scored on the other half;
MembershipInferenceBlackBoxRuleBased and LabelOnlyGapAttack call a record a member when
the model classifies it correctly. redline's checks score all members and non-members
(auditor's setting, reference models on the side). Prints AUC and TPR at 0.1% and 1% FPR
for each, and redline's best TPR at 1% FPR over ART's best.

    python benchmarks/bench_fm04_membership.py [--target digits_mlp_overfit] [--n-reference 8]
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="digits_mlp_overfit")
    ap.add_argument("--n-reference", type=int, default=8)
    ap.add_argument("--reference", default="surrogate", help="auto | recipe | surrogate")
    args = ap.parse_args()

    import torch
    from art.attacks.inference.membership_inference import (
        LabelOnlyGapAttack,
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
    )
    from art.estimators.classification import PyTorchClassifier

    from redline import zoo
    from redline.checks.fm04_lira import LikelihoodRatioAttack
    from redline.checks.fm04_membership import ShadowModelAttack, ThresholdAttack
    from redline.checks.fm04_rmia import RelativeMembershipInference
    from redline.util import roc

    torch.set_num_threads(1)  # small models; extra threads only contend
    target = zoo.load_target(args.target)
    data = zoo.load_data_for(args.target)
    rows = []

    checks = [
        ThresholdAttack(),
        ShadowModelAttack(reference=args.reference),
        LikelihoodRatioAttack(n_reference=args.n_reference, reference=args.reference),
        LikelihoodRatioAttack(n_reference=args.n_reference, reference=args.reference, online=False),
        RelativeMembershipInference(n_reference=max(2, args.n_reference // 2), reference=args.reference),
    ]
    for check in checks:
        start = time.perf_counter()
        finding = check(target, data, budget=10**6, seed=0)
        label = f"redline {check.id}" + ("" if getattr(check, "online", True) else " (offline)")
        rows.append((label, finding.metrics, time.perf_counter() - start))

    rng = np.random.default_rng(0)
    members, nonmembers = rng.permutation(len(data.x_train)), rng.permutation(len(data.x_test))
    m_fit, m_eval = members[: len(members) // 2], members[len(members) // 2 :]
    n_fit, n_eval = nonmembers[: len(nonmembers) // 2], nonmembers[len(nonmembers) // 2 :]
    x_eval = np.concatenate([data.x_train[m_eval], data.x_test[n_eval]]).astype(np.float32)
    y_eval = np.concatenate([data.y_train[m_eval], data.y_test[n_eval]])
    is_member = np.r_[np.ones(len(m_eval), bool), np.zeros(len(n_eval), bool)]

    clf = PyTorchClassifier(target.module, loss=torch.nn.CrossEntropyLoss(), input_shape=data.x_train.shape[1:],
                            nb_classes=target.n_classes, clip_values=(0.0, 1.0))
    for name, attack, fit in (
        ("ART MembershipInferenceBlackBox (rf)", MembershipInferenceBlackBox(clf, attack_model_type="rf"), True),
        ("ART MembershipInferenceBlackBox (nn)", MembershipInferenceBlackBox(clf, attack_model_type="nn"), True),
        ("ART MembershipInferenceBlackBoxRuleBased", MembershipInferenceBlackBoxRuleBased(clf), False),
        ("ART LabelOnlyGapAttack", LabelOnlyGapAttack(clf), False),
    ):
        start = time.perf_counter()
        if fit:
            attack.fit(data.x_train[m_fit].astype(np.float32), data.y_train[m_fit],
                       data.x_test[n_fit].astype(np.float32), data.y_test[n_fit])
            scores = np.asarray(attack.infer(x_eval, y_eval, probabilities=True), dtype=np.float64).reshape(len(x_eval), -1)[:, -1]
        else:
            scores = np.asarray(attack.infer(x_eval, y_eval), dtype=np.float64).ravel()
        rows.append((name, roc.membership_metrics(scores, is_member), time.perf_counter() - start))

    print(f"target zoo:{args.target}; redline: {len(data.x_train)} members / {len(data.x_test)} non-members; "
          f"ART scored on {len(m_eval)} / {len(n_eval)} held-out rows")
    print(f"{'attack':48s} {'AUC':>6s} {'TPR@0.1%':>9s} {'TPR@1%':>7s} {'seconds':>8s}")
    for name, m, seconds in rows:
        print(f"{name:48s} {m['auc']:6.3f} {m['tpr_at_fpr_0.001']:9.3f} {m['tpr_at_fpr_0.01']:7.3f} {seconds:8.1f}")
    ours = max(m["tpr_at_fpr_0.01"] for name, m, _ in rows if name.startswith("redline"))
    art = max(m["tpr_at_fpr_0.01"] for name, m, _ in rows if name.startswith("ART"))
    ratio = ours / art if art > 0 else float("inf")
    print(f"best TPR@1%FPR: redline {ours:.3f}, ART {art:.3f}, ratio {ratio:.1f}x (goal: at least 5x)")


if __name__ == "__main__":
    main()
