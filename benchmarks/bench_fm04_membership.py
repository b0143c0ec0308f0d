"""FM04 membership inference: redline's attacks against ART's on the same targets and the
same rows, in one run.

One target model gives too few non-members to measure a true-positive rate at 1% FPR
(540 non-members on digits: 5 false positives), so, as LiRA's paper evaluates, every zoo
entry is attacked as ``--target-models K`` targets. The population pool ``x_pool`` stays
fixed; the zoo's train and test rows are pooled and re-split at random for each target
into members (as many as the zoo's training set) and non-members (the rest), and the
target is trained on its members with the zoo entry's own recipe (``target.trainer``) and
a seed of its own. ``K=1`` attacks the zoo model itself on the zoo's own split. Each
target's Dataset says how many rows it trained on (``meta["train_size"]``), so redline's
reference models match it.

Every attack, redline's and ART's, scores exactly each target's evaluated rows: its
members and non-members (on mnist a sample of each). redline's checks work in the
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
  calibration bins, a sigmoid of the distance), so its whole ROC counts, not one threshold.

Two summaries per zoo entry, each with redline's best TPR at 1% FPR over ART's best (goal:
at least 5x on the vulnerable targets):

* pooled: one ROC over all targets' scores and membership labels together (K times the
  non-members, so 1% FPR is K times as many false positives). Pooling is sound only when
  an attack's scores mean the same on every target: redline's are a loss, a standardised
  logit, a log likelihood ratio (LiRA) or a share of population rows beaten (RMIA), each
  calibrated per target by its own reference models or population data; ART's are
  probabilities in [0, 1] (checked) or two-valued.
* per target: mean and standard deviation over the K targets of each attack's TPR at 1%
  FPR; the best attack per side is the one with the highest mean.

A line per target shows its accuracy and the best attack on each side.

    python benchmarks/bench_fm04_membership.py [--targets digits_mlp_overfit,mnist_cnn]
        [--target-models K (default 5 digits, 1 mnist)] [--n-reference 16] [--mnist-records 500] [--no-hsj] [--seed 0]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
from art_harness import RowCounter, art_classifier
from membership_run import run_membership_check

# Per target: reference models, evaluated rows per side, HopSkipJump settings for ART's
# LabelOnlyDecisionBoundary (its defaults, 50 iterations of up to 10,000 queries per row,
# take hours on 2 cores; these keep it to minutes).
SETTINGS = {
    "digits": {"n_reference": 16, "records": None, "target_models": 5, "hsj": {"norm": 2, "max_iter": 10, "max_eval": 1000, "init_eval": 100, "init_size": 100}},
    "mnist": {"n_reference": 8, "records": 500, "target_models": 1, "hsj": {"norm": 2, "max_iter": 5, "max_eval": 500, "init_eval": 50, "init_size": 50}},
}
FPR = 0.01
TPR_KEY = "tpr_at_fpr_0.01"


@dataclasses.dataclass
class AttackScores:
    """One attack's membership scores on one target's evaluated rows."""

    label: str
    scores: np.ndarray
    is_member: np.ndarray
    seconds: float

    @property
    def side(self) -> str:
        return self.label.split(" ", 1)[0]  # "redline" or "ART"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", default="digits_mlp_overfit,digits_mlp_regularized,mnist_cnn")
    ap.add_argument("--target-models", type=int, default=None,
                    help="targets per zoo entry, each trained by its recipe on a fresh member/non-member split "
                         "(1: the zoo model itself on the zoo's split; default 5 digits, 1 mnist, whose CNN "
                         "retrains take minutes each)")
    ap.add_argument("--n-reference", type=int, default=None, help="reference models (default: 16 digits, 8 mnist)")
    ap.add_argument("--mnist-records", type=int, default=None, help="members and non-members evaluated on mnist (500)")
    ap.add_argument("--reference", default="surrogate", help="auto | recipe | surrogate")
    ap.add_argument("--no-hsj", action="store_true", help="skip ART's LabelOnlyDecisionBoundary (HopSkipJump)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.target_models is not None and args.target_models < 1:
        ap.error("--target-models must be at least 1")
    if args.n_reference is not None and args.n_reference < 2:
        ap.error("--n-reference must be at least 2 (online reference models come in pairs)")
    if args.mnist_records is not None and args.mnist_records < 20:
        ap.error("--mnist-records must be at least 20")

    import torch

    from redline import zoo
    from redline.errors import UsageError

    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    for name in names:
        try:
            zoo.entry(name)
        except UsageError as exc:
            ap.error(str(exc))

    torch.set_num_threads(1)  # small models; extra threads only contend on a shared machine
    started = time.perf_counter()
    summary = []
    for name in names:
        settings = dict(SETTINGS["mnist" if name.startswith("mnist") else "digits"])
        if args.n_reference:
            settings["n_reference"] = args.n_reference
        if args.mnist_records and name.startswith("mnist"):
            settings["records"] = args.mnist_records
        if args.target_models:
            settings["target_models"] = args.target_models
        summary.append(run_entry(name, settings, args))
    print(f"\nsummary (seed {args.seed}): best TPR@1%FPR, redline / ART")
    for line in summary:
        print("  " + line)
    print(f"total {time.perf_counter() - started:.0f} s", flush=True)


def derived_seed(seed: int, *keys: int) -> int:
    """A seed of its own for each target and purpose, reproducible from the run's seed."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def evaluated_targets(name: str, count: int, records: int | None, seed: int):
    """``count`` (target, data) pairs for zoo entry ``name``: the zoo model itself when
    ``count`` is 1, else models trained by its recipe on fresh member/non-member splits of
    the zoo's train and test rows (the pool kept whole)."""
    from redline import zoo
    from redline.data.base import Dataset

    zoo_target = zoo.load_target(name)
    zoo_data = zoo.load_data_for(name)
    if count == 1:
        yield zoo_target, sampled(zoo_data, records, seed)
        return
    if zoo_target.trainer is None:
        raise SystemExit(f"zoo:{name} has no training recipe, so --target-models {count} cannot retrain it")
    x = np.concatenate([zoo_data.x_train, zoo_data.x_test])
    y = np.concatenate([zoo_data.y_train, zoo_data.y_test])
    n_members = len(zoo_data.x_train)
    for k in range(count):
        order = np.random.default_rng(derived_seed(seed, k, 0)).permutation(len(x))
        members, nonmembers = order[:n_members], order[n_members:]
        target = zoo_target.trainer(x[members], y[members], derived_seed(seed, k, 1))
        target.spec = f"zoo:{name}@split{k}"
        data = Dataset(
            f"{zoo_data.name}_split{k}", x[members], y[members], x[nonmembers], y[nonmembers],
            zoo_data.x_pool, zoo_data.y_pool, modality=zoo_data.modality, task=zoo_data.task,
            class_names=zoo_data.class_names, spec=f"{zoo_data.spec}@split{k}",
            meta={**zoo_data.meta, "train_size": n_members},
        )
        yield target, sampled(data, records, derived_seed(seed, k, 2))


def sampled(data, records: int | None, seed: int):
    """``data``, or a sample of ``records`` of its members and non-members (the pool kept
    whole), either way telling the checks how many rows the target trained on."""
    meta = {**data.meta, "train_size": data.meta.get("train_size", len(data.x_train))}
    if records is None:
        return dataclasses.replace(data, meta=meta)
    rng = np.random.default_rng(seed)
    members = rng.choice(len(data.x_train), size=min(records, len(data.x_train)), replace=False)
    nonmembers = rng.choice(len(data.x_test), size=min(records, len(data.x_test)), replace=False)
    return dataclasses.replace(
        data, x_train=data.x_train[members], y_train=data.y_train[members],
        x_test=data.x_test[nonmembers], y_test=data.y_test[nonmembers], meta=meta,
    )


def run_entry(name: str, settings: dict, args) -> str:
    from redline.checks.privacy import roc

    n_ref = settings["n_reference"]
    count = settings["target_models"]
    per_target: list[list[AttackScores]] = []
    for k, (target, data) in enumerate(evaluated_targets(name, count, settings["records"], args.seed)):
        seed = args.seed if count == 1 else derived_seed(args.seed, k, 3)
        train_acc = float(np.mean(target.predict_labels(data.x_train) == data.y_train))
        test_acc = float(np.mean(target.predict_labels(data.x_test) == data.y_test))
        start = time.perf_counter()
        results = redline_scores(target, data, n_ref, args.reference, seed) + art_scores(target, data, settings["hsj"], seed, args.no_hsj)
        per_target.append(results)
        ours = max((r for r in results if r.side == "redline"), key=lambda r: tpr(r))
        art = max((r for r in results if r.side == "ART"), key=lambda r: tpr(r))
        print(f"  {target.spec}: {len(data.x_train)} members (train_size {data.meta['train_size']}) / "
              f"{len(data.x_test)} non-members, accuracy train {train_acc:.3f} test {test_acc:.3f}; best TPR@1%: "
              f"redline {tpr(ours):.3f} ({ours.label[8:]}), ART {tpr(art):.3f} ({art.label[4:]}), "
              f"ratio {ratio(tpr(ours), tpr(art))}; {time.perf_counter() - start:.0f} s", flush=True)

    labels = [r.label for r in per_target[0]]
    n_nonmembers = sum(int((~r.is_member).sum()) for r in (results[0] for results in per_target))
    print(f"\nzoo:{name}: {count} target model(s) "
          f"({'the zoo model' if count == 1 else 'its recipe on fresh member/non-member splits'}), "
          f"{n_nonmembers} non-members pooled (1% FPR: {int(FPR * n_nonmembers)} false positives); "
          f"ART HopSkipJump settings {'skipped' if args.no_hsj else settings['hsj']}")
    print(f"{'attack':52s} {'pooled: AUC':>11s} {'TPR@0.1%':>9s} {'TPR@1%':>7s}   {'per target TPR@1%':>17s} {'seconds':>8s}")
    pooled, means = {}, {}
    for i, label in enumerate(labels):
        runs = [results[i] for results in per_target]
        assert all(r.label == label for r in runs)
        m = roc.membership_metrics(np.concatenate([r.scores for r in runs]), np.concatenate([r.is_member for r in runs]))
        per = np.array([tpr(r) for r in runs])
        pooled[label], means[label] = m[TPR_KEY], per.mean()
        sd = per.std(ddof=1) if len(per) > 1 else 0.0
        print(f"{label:52s} {m['auc']:11.3f} {m['tpr_at_fpr_0.001']:9.3f} {m[TPR_KEY]:7.3f}   "
              f"{per.mean():9.3f} ± {sd:.3f} {sum(r.seconds for r in runs):8.1f}")

    def best(values: dict, side: str) -> tuple[str, float]:
        return max(((label, v) for label, v in values.items() if label.startswith(side + " ")), key=lambda lv: lv[1])

    lines = []
    for kind, values in (("pooled", pooled), ("per-target mean", means)):
        (ours_label, ours), (art_label, art) = best(values, "redline"), best(values, "ART")
        line = (f"{name:26s} {kind:16s} redline {ours:.3f} ({ours_label[8:]})  ART {art:.3f} ({art_label[4:]})  "
                f"ratio {ratio(ours, art)}")
        print("best TPR@1%FPR, " + line, flush=True)
        lines.append(line)
    return "\n  ".join(lines)


def tpr(result: AttackScores) -> float:
    from redline.checks.privacy import roc

    return roc.membership_metrics(result.scores, result.is_member)[TPR_KEY]


def ratio(ours: float, art: float) -> str:
    return f"{ours / art:.1f}x" if art > 0 else "inf (ART found no member at 1% FPR)"


def redline_scores(target, data, n_ref: int, reference: str, seed: int) -> list[AttackScores]:
    """Each redline check's per-row scores, read back from the evidence it saves."""
    from redline.checks.privacy.fm04_lira import LikelihoodRatioAttack
    from redline.checks.privacy.fm04_membership import (
        LabelOnlyAttack,
        ShadowModelAttack,
        ThresholdAttack,
    )
    from redline.checks.privacy.fm04_rmia import RelativeMembershipInference
    from redline.checks.privacy.membership import target_train_size
    from redline.defences.labels_only import LabelOnlyTarget

    # The checks size their reference models by this: it must be what the target trained on.
    assert target_train_size(data) == data.meta["train_size"]
    checks = [
        ("loss threshold", ThresholdAttack(), target),
        ("per-class logit threshold", ThresholdAttack(score="logit", per_class=True), target),
        ("shadow models (4)", ShadowModelAttack(reference=reference), target),
        ("label-only noise (labels)", LabelOnlyAttack(), LabelOnlyTarget(target)),
        (f"LiRA online ({n_ref})", LikelihoodRatioAttack(n_reference=n_ref, reference=reference), target),
        (f"LiRA offline ({n_ref})", LikelihoodRatioAttack(n_reference=n_ref, reference=reference, online=False), target),
        (f"RMIA online ({n_ref})", RelativeMembershipInference(n_reference=n_ref, reference=reference), target),
    ]
    out = []
    for label, check, attacked in checks:
        finding, scores, is_member, seconds = run_membership_check(check, attacked, data, seed, label)
        # Every member and non-member scored, and the saved scores are the ones the check judged.
        assert finding.metrics["members"] == len(data.x_train) and finding.metrics["nonmembers"] == len(data.x_test)
        assert np.isclose(finding.metrics[TPR_KEY], tpr(AttackScores(label, scores, is_member, 0.0)))
        out.append(AttackScores(f"redline {label}", scores, is_member, seconds))
    return out


def art_scores(target, data, hsj: dict, seed: int, no_hsj: bool) -> list[AttackScores]:
    import torch
    from art.attacks.inference.membership_inference import (
        LabelOnlyDecisionBoundary,
        LabelOnlyGapAttack,
        MembershipInferenceBlackBox,
        MembershipInferenceBlackBoxRuleBased,
    )

    x = np.concatenate([data.x_train, data.x_test]).astype(np.float32)
    y = np.concatenate([data.y_train, data.y_test]).astype(np.int64)
    is_member = np.r_[np.ones(len(data.x_train), bool), np.zeros(len(data.x_test), bool)]
    # Two folds, each half of the members and half of the non-members.
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(x), dtype=int)
    for side in (is_member, ~is_member):
        rows = rng.permutation(np.flatnonzero(side))
        fold[rows[: len(rows) // 2]] = 1

    # The counter's wrapper also casts HopSkipJump's float64 samples to the model's float32.
    clf = art_classifier(target.module, target.n_classes, x.shape[1:], RowCounter())
    out = []

    def probabilities(values, label: str) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        # Pooling across targets needs scores on one scale; ART's are member probabilities.
        if not (np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() <= 1.0):
            raise SystemExit(f"ART {label} returned scores outside [0, 1]: [{values.min()}, {values.max()}]")
        return values

    def cross_fitted(make, label: str) -> np.ndarray:
        scores = np.zeros(len(x))
        for held_out in (0, 1):
            fit, test = fold != held_out, fold == held_out
            # ART's attack models draw from the global generators (its forests and boosting
            # from numpy's, its neural net from torch's): seed both for reproducible runs.
            np.random.seed(derived_seed(seed, held_out) % 2**32)
            torch.manual_seed(derived_seed(seed, held_out))
            attack = make()
            attack.fit(x[fit & is_member], y[fit & is_member], x[fit & ~is_member], y[fit & ~is_member])
            proba = probabilities(attack.infer(x[test], y[test], probabilities=True), label)
            scores[test] = proba.reshape(int(test.sum()), -1)[:, -1]
        return scores

    for input_type in ("prediction", "loss"):
        for model in ("rf", "gb", "nn"):
            label = f"MembershipInferenceBlackBox ({input_type}, {model})"
            start = time.perf_counter()
            scores = cross_fitted(lambda t=input_type, m=model: MembershipInferenceBlackBox(clf, input_type=t, attack_model_type=m), label)
            out.append(AttackScores(f"ART {label}", scores, is_member, time.perf_counter() - start))
    for label, attack in (("MembershipInferenceBlackBoxRuleBased", MembershipInferenceBlackBoxRuleBased(clf)),
                          ("LabelOnlyGapAttack", LabelOnlyGapAttack(clf))):
        start = time.perf_counter()
        scores = probabilities(np.asarray(attack.infer(x, y)).ravel(), label)
        out.append(AttackScores(f"ART {label}", scores, is_member, time.perf_counter() - start))
    if not no_hsj:
        start = time.perf_counter()
        # The threshold only places one point on the ROC; the distance ranks all rows.
        attack = LabelOnlyDecisionBoundary(clf, distance_threshold_tau=1.0)
        np.random.seed(seed % 2**32)  # HopSkipJump draws from numpy's global generator
        proba = attack.infer(x, y, probabilities=True, verbose=False, **hsj)
        scores = probabilities(proba, "LabelOnlyDecisionBoundary")[:, 1]
        out.append(AttackScores("ART LabelOnlyDecisionBoundary (HSJ distance)", scores, is_member, time.perf_counter() - start))
    return out


if __name__ == "__main__":
    main()
