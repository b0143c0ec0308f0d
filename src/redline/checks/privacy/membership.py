"""What the FM04 membership-inference checks share: picking the evaluated records within
the budget, turning probabilities into per-record statistics, and judging the scores.

Auditor's setting: ``x_train`` rows are members, ``x_test`` rows non-members, and ``x_pool``
is population data for calibration and reference models. The evaluated records are a
random sample of members and non-members; every attack answers with one membership score
per record, and the ROC over those scores gives the metrics.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ...util import stats
from ...util.evidence import save_arrays, try_plot
from ..base import Check, CheckContext, Inconclusive, Needs, NotApplicable, Outcome
from . import roc

#: Fewer evaluated records per side than this give metrics too coarse to judge.
MIN_RECORDS = 20
#: Significance level of every FM04 verdict. A model that leaks nothing is called
#: vulnerable in at most this share of runs (the tests are exact), well under the 5% the
#: project allows, so that an honest model is not failed by a lucky ranking.
ALPHA = 0.01
#: A membership advantage (best TPR - FPR over all thresholds, Yeom et al.) this large is a
#: leak in itself, even when no threshold isolates members at a low false-positive rate (a
#: tree's tied confidences): at least the generalisation gap of a loss-threshold attacker.
#: The bar is twice the advantage's 99% noise level (Kolmogorov-Smirnov,
#: 1.63 * sqrt((m + n) / (m n)) for m members and n non-members), kept between
#: MIN_ADVANTAGE_FLOOR and MIN_ADVANTAGE: 0.2 up to about 530 records a side, 0.15 from about
#: 945. Calibrated on models outside the zoo (eight packaged data sets; logistic regression,
#: early-stopped boosting and MLPs, 15-NN and SVC against full trees, forests, 1-NN and long
#: unregularised MLPs; 648 runs): at 1,000 records a side the honest models reached at most
#: 0.165 (a boosted model with a 12-point gap) and the memorisers at least 0.151, so 0.2 had
#: passed 15 of 120 memorisers and 0.15 flags 2 of 150 honest runs, both real loss gaps.
#: Every honest or hardened zoo model stays under 0.13.
MIN_ADVANTAGE = 0.2
MIN_ADVANTAGE_FLOOR = 0.15


def advantage_bar(members: int, nonmembers: int) -> float:
    """The advantage at which an average-case leak is called (see :data:`MIN_ADVANTAGE`)."""
    noise = 1.63 * float(np.sqrt((members + nonmembers) / (members * nonmembers)))
    return float(np.clip(2.0 * noise, MIN_ADVANTAGE_FLOOR, MIN_ADVANTAGE))
#: The metrics :func:`judge` reports for every FM04 check (checks add their own to these).
JUDGE_METRICS = (
    "auc", "tpr_at_fpr_0.001", "tpr_at_fpr_0.01", "advantage", "members", "nonmembers",
    "auc_p_value", "tpr_p_value", "smallest_measurable_fpr",
)
#: What the parameters every FM04 check takes mean (checks add their own).
JUDGE_PARAM_DOCS = {
    "max_records": "most member and non-member records scored (fewer if the budget is smaller)",
    "fpr": "false-positive rate at which the true-positive rate is judged",
    "min_tpr": "true-positive rate at that false-positive rate above which membership leaks",
}
#: The parameter of the checks that train reference (or shadow) models.
REFERENCE_PARAM_DOCS = {
    "reference": "where reference models come from: auto (the target's recipe, else the candidate family that best "
                 "matches the target's answers), recipe (the target's training recipe), surrogate (a fixed default) "
                 "or a family such as mlp-256x256@40, cnn-16x32@12, logreg, gbt@200, forest@100",
}
#: The parameters of the checks that calibrate each record with reference models (LiRA, RMIA).
PER_RECORD_PARAM_DOCS = {
    "online": "train reference models with and without each record (true) or only without (false)",
    "n_reference": "reference models to train (online, a matched family's trial models join them at no cost)",
}
SCORES = ("loss", "confidence", "entropy", "logit")
_EPS = 1e-12
#: The least standard deviation a reference Gaussian is given (tied answers would give 0).
MIN_STD = 1e-3
#: Significance at which members' and non-members' class mixes count as different
#: (:func:`match_classes`). Above the verdicts' own 0.01: for a model whose scores follow the
#: label alone the rank test and the mix test read the same difference, so a mix that passes
#: at 0.05 cannot make the rank test reject at 0.01 (at 1e-3 a constant model with a mix at
#: p = 0.005 was 'vulnerable' on 5 of 5 seeds). Random splits trigger it one time in twenty,
#: at the cost of a few records.
_MIX_ALPHA = 0.05
_MIX_PERMUTATIONS = 4999
_TINY = np.finfo(np.float64).tiny
#: How far answers may be from a distribution (rows off 1, values below 0) and still be read
#: as probabilities: rounding of float16 answers or of a JSON API's few decimals, not logits.
_PROBABILITY_SLACK = 0.02


@dataclasses.dataclass
class Records:
    """The evaluated records: members first, then non-members."""

    x: np.ndarray
    y: np.ndarray
    is_member: np.ndarray
    # How the budget was spent, so a verdict can say what budget more records would need.
    queries_per_record: int = 1
    reserved: int = 0
    # Members and non-members the data holds (train, test rows), so a verdict that asks for
    # more records can say when the data, not the budget, is what is short.
    available: tuple[int, int] | None = None
    # How the records were drawn, when a finding must say it (matched by class: :func:`match_classes`).
    note: str = ""

    def budget_for(self, per_side: int) -> int:
        """Queries that evaluating ``per_side`` members and as many non-members would take."""
        return 2 * int(per_side) * self.queries_per_record + self.reserved

    @property
    def n_members(self) -> int:
        return int(self.is_member.sum())

    @property
    def n_nonmembers(self) -> int:
        return int(len(self.is_member) - self.is_member.sum())

    def __len__(self) -> int:
        return len(self.y)


class MembershipInference(Check):
    """Base of the FM04 checks. A subclass scores the records :meth:`select` picks, one
    membership score per record, and returns :meth:`verdict` of those scores; it takes
    ``max_records``, ``fpr`` and ``min_tpr`` among its parameters. With the defaults
    (``fpr`` 1%, ``min_tpr`` 5%) the exact tests of :func:`judge` raised 0 false alarms in
    40 honest runs at 25 records a side (tests/checks/test_checks_fm04_small_samples.py)."""

    mode = "FM04"
    needs = Needs(outputs="probabilities", roles=("train", "test"))
    default_budget = 10_000
    max_records: int
    fpr: float
    min_tpr: float

    def select(self, data: Any, budget: int, rng: np.random.Generator, queries_per_record: int = 1,
               reserved: int = 0) -> Records:
        """The evaluated records within the budget (:func:`select_records`)."""
        return select_records(data, self.max_records, budget, rng, queries_per_record=queries_per_record,
                              reserved=reserved)

    def verdict(self, ctx: CheckContext, scores: np.ndarray, records: Records, attack: str,
                extra_metrics: dict[str, Any] | None = None, notes: str = "",
                extra_evidence: dict[str, Any] | None = None) -> Outcome:
        """Metrics, evidence and the verdict of :func:`judge` at this check's ``fpr`` and ``min_tpr``."""
        return judge(self.id, ctx, scores, records, fpr=self.fpr, min_tpr=self.min_tpr, attack=attack,
                     extra_metrics=extra_metrics, notes=notes, extra_evidence=extra_evidence)


def select_records(
    data: Any, max_per_side: int, budget: int, rng: np.random.Generator, queries_per_record: int = 1, reserved: int = 0
) -> Records:
    """Members (from ``x_train``) and non-members (from ``x_test``), at most ``max_per_side``
    of each, shrunk in proportion so that ``queries_per_record`` queries per record plus
    ``reserved`` other queries fit in ``budget``."""
    if int(max_per_side) < MIN_RECORDS:
        raise ValueError(f"max_records must be at least {MIN_RECORDS}")
    n_in = min(len(data.x_train), int(max_per_side))
    n_out = min(len(data.x_test), int(max_per_side))
    affordable = max(0, budget - reserved) // max(1, queries_per_record)
    if n_in + n_out > affordable:
        share = affordable / (n_in + n_out)
        n_in, n_out = int(n_in * share), int(n_out * share)
    if min(n_in, n_out) < MIN_RECORDS:
        need = 2 * MIN_RECORDS * queries_per_record + reserved
        raise Inconclusive(
            f"too few records to judge: {n_in} members and {n_out} non-members fit (the budget of {budget} "
            f"queries and {len(data.x_train)} train / {len(data.x_test)} test rows); at least {MIN_RECORDS} "
            f"a side are needed, i.e. a budget of {need} and as many rows"
        )
    members = rng.choice(len(data.x_train), size=n_in, replace=False)
    nonmembers = rng.choice(len(data.x_test), size=n_out, replace=False)
    members, nonmembers, matched = match_classes(members, np.asarray(data.y_train)[members], nonmembers,
                                                 np.asarray(data.y_test)[nonmembers], rng)
    n_in, n_out = len(members), len(nonmembers)
    x = np.concatenate([data.x_train[members], data.x_test[nonmembers]])
    y = np.concatenate([data.y_train[members], data.y_test[nonmembers]]).astype(np.int64)
    return Records(x, y, np.r_[np.ones(n_in, dtype=bool), np.zeros(n_out, dtype=bool)],
                   queries_per_record=max(1, int(queries_per_record)), reserved=int(reserved),
                   available=(len(data.x_train), len(data.x_test)), note=matched)


def class_mix_pvalue(codes_in: np.ndarray, codes_out: np.ndarray, n_classes: int) -> float:
    """p-value of a chi-square test that two samples of class codes (0..n_classes-1) share one
    class mix. With expected counts under 5 (many classes, few records each) the chi-square
    approximation fails, and the statistic is referred to 4,999 random relabellings of the
    pooled records instead (a fixed generator: the same records give the same p)."""
    from scipy.stats import chi2_contingency

    table = np.stack([np.bincount(codes_in, minlength=n_classes), np.bincount(codes_out, minlength=n_classes)])
    present = table.sum(axis=0) > 0  # a class neither sample holds adds nothing
    table, n_classes = table[:, present], int(present.sum())
    codes = np.cumsum(present) - 1
    codes_in, codes_out = codes[codes_in], codes[codes_out]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    if expected.min() >= 5:
        return float(chi2_contingency(table, correction=False).pvalue)

    def statistic(first: np.ndarray) -> np.ndarray:  # chi-square of each row of "first" codes
        counts = np.stack([np.bincount(row, minlength=n_classes) for row in first])
        return (((counts - expected[0]) ** 2 / expected[0]).sum(axis=1)
                + (((table.sum(axis=0) - counts) - expected[1]) ** 2 / expected[1]).sum(axis=1))

    pooled, n_in = np.concatenate([codes_in, codes_out]), len(codes_in)
    shuffles = np.random.default_rng(0).permuted(np.tile(pooled, (_MIX_PERMUTATIONS, 1)), axis=1)[:, :n_in]
    observed = statistic(codes_in[None])[0]
    return float((1 + np.sum(statistic(shuffles) >= observed - 1e-9)) / (1 + _MIX_PERMUTATIONS))


def match_classes(members: np.ndarray, y_in: np.ndarray, nonmembers: np.ndarray, y_out: np.ndarray,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """Members and non-members with the same class mix when theirs differ clearly.

    A membership score depends on the record's label as well as on the model: a model that
    ignores its input still gives each class its own loss. When the auditor's members and
    non-members hold the classes in different proportions (members from one class, or a
    training set and a test set collected apart), labels alone would tell them apart and a
    model that leaks nothing would look vulnerable. So when a chi-square test of the two
    class mixes rejects equality at :data:`_MIX_ALPHA`, each class keeps as many records of
    each side as the scarcer side has (a random choice of the other's), and the returned note
    says so; otherwise the records are returned as drawn, with an empty note. Raises
    Inconclusive when too few records of shared classes remain."""
    classes = np.union1d(y_in, y_out)
    if len(classes) < 2:
        return members, nonmembers, ""
    p_value = class_mix_pvalue(np.searchsorted(classes, y_in), np.searchsorted(classes, y_out), len(classes))
    if p_value >= _MIX_ALPHA:
        return members, nonmembers, ""
    keep_in, keep_out = [], []
    for c in classes:
        rows_in, rows_out = np.flatnonzero(y_in == c), np.flatnonzero(y_out == c)
        k = min(len(rows_in), len(rows_out))
        keep_in.append(np.sort(rng.choice(rows_in, size=k, replace=False)) if k else rows_in[:0])
        keep_out.append(np.sort(rng.choice(rows_out, size=k, replace=False)) if k else rows_out[:0])
    keep_in, keep_out = np.concatenate(keep_in), np.concatenate(keep_out)
    said = (f"The members' and non-members' class mixes differ (chi-square p = {p_value:.2g}), so labels alone "
            f"would separate them: records were matched class by class, {len(keep_in)} of {len(members)} members "
            f"and as many of {len(nonmembers)} non-members kept.")
    if len(keep_in) < MIN_RECORDS:
        raise Inconclusive(f"{said[:-1]}, fewer than the {MIN_RECORDS} a side needed to judge; members and "
                           "non-members from the same classes would decide")
    return members[keep_in], nonmembers[keep_out], said


def target_train_size(data: Any) -> int:
    """How many rows the target trained on: ``data.meta["train_size"]`` when the auditor holds
    only a sample of the training rows (``x_train``), else ``len(x_train)``. Reference models
    train on this many rows, because how much a model memorises depends on it."""
    size = getattr(data, "meta", {}).get("train_size", len(data.x_train))
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < len(data.x_train):
        raise ValueError(f"meta['train_size'] must be an integer of at least len(x_train) = {len(data.x_train)}, not {size!r}")
    return int(size)


def require_pool(data: Any, why: str) -> tuple[np.ndarray, np.ndarray]:
    """The population data (``x_pool``), or NotApplicable naming what needed it."""
    if data.x_pool is None or len(data.x_pool) < 2 * MIN_RECORDS:
        raise NotApplicable(f"population data (x_pool with at least {2 * MIN_RECORDS} rows) is needed for {why}")
    return data.x_pool, np.asarray(data.y_pool).astype(np.int64)


def check_probabilities(probs: np.ndarray, n_classes: int) -> np.ndarray:
    """The target's answers as float64 probabilities (n, k); a clear error otherwise: every
    membership score reads them as a distribution over the classes, and logits or
    unnormalised scores would be scored as nonsense (a negative "probability" has no loss)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise NotApplicable(f"the target answered shape {probs.shape}, not probabilities over {n_classes} classes")
    if len(probs):
        sums = probs.sum(axis=1)
        bad = ~np.isfinite(sums) | (probs.min(axis=1) < -_PROBABILITY_SLACK) | (np.abs(sums - 1.0) > _PROBABILITY_SLACK)
        if bad.any():
            row = int(np.argmax(bad))
            raise NotApplicable(
                f"the target's answers are not class probabilities ({int(bad.sum())} of {len(probs)} rows have "
                f"negative values or do not sum to 1; row {row} sums to {sums[row]:.4g}, its least value "
                f"{probs[row].min():.4g}): logits or scores? Membership checks read probabilities; make the target "
                "answer them (a softmax over its logits)")
    return probs


def target_probabilities(target: Any, x: np.ndarray) -> np.ndarray:
    """The target's answers on ``x`` (queries), checked to be probabilities over its classes."""
    return check_probabilities(target.predict(x), target.n_classes)


def true_class_probability(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """p_y for every row; works on (n, k) or stacked (models, n, k) probabilities."""
    return np.take_along_axis(probs, _label_index(probs, y), axis=-1)[..., 0]


def _label_index(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(y, dtype=np.int64).reshape(-1, 1), probs.shape[:-1] + (1,))


def logit_confidence(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log(p_y / (1 - p_y)), computed as log p_y - log(sum of the other classes) so that
    confidences rounded to 1.0 stay finite (Carlini et al. 2022). The other classes are
    summed directly, not as 1 - p_y, and floored only at the smallest normal float: a
    member answered with p_y = 1 - 1e-15 must still outrank one answered with 1 - 1e-12."""
    probs = np.asarray(probs, dtype=np.float64)
    onehot = np.zeros(probs.shape, dtype=bool)
    np.put_along_axis(onehot, _label_index(probs, y), True, axis=-1)
    p_true = np.where(onehot, probs, 0.0).sum(axis=-1)
    p_rest = np.where(onehot, 0.0, np.clip(probs, 0.0, None)).sum(axis=-1)
    return np.log(p_true + _TINY) - np.log(p_rest + _TINY)


def gaussian_crps(x: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """The continuous ranked probability score of N(mean, sd) for the observation ``x``
    (lower is better; Gneiting and Raftery 2007). A proper score: on average a Gaussian
    narrower or wider than the truth scores worse. It grows linearly with a miss where a
    log-likelihood grows quadratically, yet misses of hundreds (a tie among a forest's
    references that the target breaks) still weigh on a mean, so the family trial of
    :mod:`.reference_choice` takes the median over records."""
    from scipy.stats import norm

    z = (x - mean) / sd
    return sd * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - 1 / np.sqrt(np.pi))


def reference_gaussians(stat: np.ndarray, mask: np.ndarray, fixed: bool, fallback_mean: np.ndarray | None = None):
    """The Gaussians reference models give each record: the mean per record and view of
    ``stat`` (models, views, records) over the models in ``mask``, and the standard
    deviation, shared per view when ``fixed`` (or where a record has fewer than two models).
    Records no model covers take ``fallback_mean`` plus the average shift of the others."""
    mask = np.broadcast_to(mask, stat.shape)
    count = mask.sum(axis=0)  # (views, records)
    total = np.where(mask, stat, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    if fallback_mean is not None and (count == 0).any():
        covered = count > 0
        shift = np.array([(mean[v, covered[v]] - fallback_mean[v, covered[v]]).mean() if covered[v].any() else 0.0
                          for v in range(len(mean))])
        mean = np.where(covered, mean, fallback_mean + shift[:, None])
    resid = np.where(mask, stat - mean[None], 0.0)
    # Residuals are about each record's own mean, so each record with models costs one degree
    # of freedom: dividing by their count less one shrank the shared width (0.86 of the truth
    # with 4 models a side), the more so on the side with fewer models.
    freedom = np.maximum(count - 1, 0).sum(axis=1)
    pooled = np.sqrt((resid**2).sum(axis=(0, 2)) / np.maximum(freedom, 1))  # (views,)
    pooled = np.maximum(pooled, MIN_STD)[:, None]
    if fixed:
        return mean, np.broadcast_to(pooled, mean.shape)
    per_record = np.sqrt((resid**2).sum(axis=0) / np.maximum(count - 1, 1))
    return mean, np.where(count >= 2, np.maximum(per_record, MIN_STD), pooled)


def crps_by_variance(target_stat: np.ndarray, ref_stat: np.ndarray, in_mask: np.ndarray, is_member: np.ndarray,
                     online: bool, aggregate: Any) -> dict[bool, float]:
    """How well reference models predict the target's statistic (records,) record by record,
    with a shared variance (key True) and with each record's own (False): each record's
    value scored under its side's Gaussian (member: IN, non-member: OUT; offline, OUT for
    both) by :func:`gaussian_crps`, ``aggregate`` (mean or median) over records; lower is
    better, infinite when an answer is not finite. ``ref_stat`` and ``in_mask`` are
    (models, records); the Gaussians are LiRA's own (:func:`reference_gaussians`)."""
    stat, mask = ref_stat[:, None, :], in_mask[:, None, :]
    scores = {}
    for fixed in (True, False):
        mu_out, sd_out = reference_gaussians(stat, ~mask, fixed)
        mean, sd = mu_out[0], sd_out[0]
        if online:
            mu_in, sd_in = reference_gaussians(stat, mask, fixed, fallback_mean=mu_out)
            mean, sd = np.where(is_member, mu_in[0], mean), np.where(is_member, sd_in[0], sd)
        crps = gaussian_crps(target_stat, mean, sd)
        scores[fixed] = float(aggregate(crps)) if np.isfinite(crps).all() else float("inf")
    return scores


def statistic(probs: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    """A per-record statistic that is higher for members.

    ``loss``: minus the cross-entropy (Yeom et al. 2018); ``confidence``: p_y; ``entropy``:
    minus the modified entropy of Song and Mittal (2021), which also uses the label;
    ``logit``: the logit-scaled confidence.
    """
    if kind == "loss":
        return np.log(true_class_probability(probs, y) + _EPS)
    if kind == "confidence":
        return true_class_probability(probs, y)
    if kind == "logit":
        return logit_confidence(probs, y)
    if kind == "entropy":
        p = np.clip(probs, _EPS, 1 - _EPS)
        p_true = true_class_probability(p, y)
        onehot = np.zeros_like(p, dtype=bool)
        np.put_along_axis(onehot, _label_index(p, y), True, axis=-1)
        others = np.where(onehot, 0.0, p * np.log(1 - p)).sum(axis=-1)
        return (1 - p_true) * np.log(p_true) + others  # = -modified entropy
    raise ValueError(f"score must be one of {', '.join(SCORES)}, not {kind!r}")


def judge(
    check_id: str,
    ctx: CheckContext,
    scores: np.ndarray,
    records: Records,
    *,
    fpr: float,
    min_tpr: float,
    attack: str,
    extra_metrics: dict[str, Any] | None = None,
    notes: str = "",
    extra_evidence: dict[str, Any] | None = None,
) -> Outcome:
    """Metrics, ROC evidence and the verdict for one attack's membership scores.

    A true-positive rate at false-positive rate ``f`` is reported only when the non-members
    can measure ``f``: at least ``1/f`` of them, so that one false positive fits under it
    (:func:`redline.util.stats.negatives_needed`); otherwise the metric is ``None``. Each
    reported rate carries its Clopper-Pearson interval over the members (``<name>_ci``).

    The verdict, tested at :data:`ALPHA`:

    - ``fpr`` measurable: vulnerable when the TPR at ``fpr`` reaches ``min_tpr``, its lower
      confidence bound beats ``fpr`` (what a guessing attacker gets), and the exact rank test
      of :func:`~redline.util.stats.rank_tail_pvalue` (which also counts the noise of the
      threshold set by few non-members) rejects chance; else not vulnerable.
      A model whose advantage reaches :func:`advantage_bar` with a significant AUC
      (one-sided Mann-Whitney at :data:`ALPHA`) is vulnerable too: an average-case leak that
      tied scores (a tree's leaves) can hide from every low-FPR threshold.
    - ``fpr`` not measurable (few records): vulnerable when the one-sided Mann-Whitney test
      says the AUC is above 0.5; otherwise inconclusive, saying how many records (and what
      budget) would measure ``fpr``. A run this small never passes a model.
    """
    if not 0 < fpr < 1:
        raise ValueError("fpr must be in (0, 1)")
    if not fpr < min_tpr <= 1:
        raise ValueError("min_tpr must exceed fpr (the rate a guessing attacker reaches) and be at most 1")
    scores = np.asarray(scores, dtype=np.float64)
    n_in, n_out = records.n_members, records.n_nonmembers
    curve_fpr, curve_tpr = roc.roc_curve(scores, records.is_member)
    metrics: dict[str, Any] = roc.membership_metrics(scores, records.is_member)
    for rate in sorted({*roc.REPORTED_FPRS, float(fpr)}):
        name = f"tpr_at_fpr_{rate:g}"
        if stats.fpr_measurable(rate, n_out):
            metrics[name] = roc.tpr_at_fpr(curve_fpr, curve_tpr, rate)
            metrics[f"{name}_ci"] = stats.rate_interval(metrics[name], n_in)
        else:
            metrics[name] = None  # with n_out non-members no rate below 1/n_out can be told apart
    auc_p = stats.mann_whitney_pvalue(scores[records.is_member], scores[~records.is_member])
    metrics.update({"auc_p_value": auc_p, "smallest_measurable_fpr": stats.smallest_measurable_fpr(n_out),
                    "members": n_in, "nonmembers": n_out})
    metrics.update(extra_metrics or {})

    evidence: dict[str, Any] = dict(extra_evidence or {})
    plot_fpr, plot_tpr = roc.thin_curve(curve_fpr, curve_tpr)
    evidence["roc"] = {"fpr": plot_fpr.tolist(), "tpr": plot_tpr.tolist()}
    arrays = save_arrays(ctx, f"{check_id}-scores.npz", scores=scores, is_member=records.is_member, y=records.y)
    if arrays:
        evidence["examples"] = arrays
    from ...util import plots

    plot = try_plot(ctx, f"{check_id}-roc.png", plots.roc_plot, {attack: (plot_fpr, plot_tpr)},
                    title=f"{check_id}: membership ROC (log-log)")
    if plot:
        evidence["plots"] = [plot]

    tail = f"AUC {metrics['auc']:.3f} (p = {auc_p:.2g}), advantage {metrics['advantage']:.2f}"
    inconclusive = ""
    name = f"tpr_at_fpr_{fpr:g}"
    if metrics[name] is not None:
        reached = metrics[name]
        allowed = int(np.floor(fpr * n_out + 1e-9))
        hits = int(round(reached * n_in))
        rank_p = stats.rank_tail_pvalue(hits, allowed, n_in, n_out)
        metrics["tpr_p_value"] = rank_p
        low = metrics[f"{name}_ci"][0]
        vulnerable = reached >= min_tpr and low > fpr and rank_p <= ALPHA
        # An average-case leak: large and significant, though no low-FPR threshold shows it.
        bar = advantage_bar(n_in, n_out)
        average_case = not vulnerable and metrics["advantage"] >= bar and auc_p <= ALPHA
        vulnerable = vulnerable or average_case
        summary = (
            f"{attack} identified {reached:.1%} of {n_in} training members (95% CI {low:.1%}-"
            f"{metrics[name + '_ci'][1]:.1%}) at a {fpr:.1%} false-positive rate measured on {n_out} non-members "
            f"(chance: {fpr:.1%}; p = {rank_p:.2g}; {tail})."
        )
        if average_case:
            summary += (f" No threshold isolates members at that rate, but the advantage of "
                        f"{metrics['advantage']:.2f} (at least {bar:.2f} at {n_in} and {n_out} records, AUC p = {auc_p:.2g}) is an "
                        f"average-case leak: the model tells members from non-members far better than chance.")
    else:
        need = stats.negatives_needed(fpr)
        vulnerable = auc_p <= ALPHA
        summary = (
            f"{attack} ranked {n_in} members against {n_out} non-members with {tail}. With {n_out} non-members "
            f"the smallest measurable false-positive rate is {1 / n_out:.1%}, so no true-positive rate at "
            f"{fpr:.1%} is claimed; the verdict rests on the AUC test."
        )
        if not vulnerable:
            short = records.available is not None and min(records.available) < need
            inconclusive = (
                f"{n_out} non-members cannot measure a {fpr:.1%} false-positive rate and the AUC of "
                f"{metrics['auc']:.2f} is not significant at this size (p = {auc_p:.2g} > {ALPHA:g}); "
                f"{need} members and {need} non-members (a budget of about {records.budget_for(need):,} queries) "
                f"would decide"
                + (f"; the data holds only {records.available[0]} train and {records.available[1]} test rows"
                   if short else "")
                + ("; the records were matched by class, the members' and non-members' class mixes differing"
                   if records.note else "")
            )
    if records.note:
        evidence["record_selection"] = records.note
    notes = " ".join(part for part in (records.note, notes) if part)
    if notes:
        summary += " " + notes
    return Outcome(vulnerable=vulnerable, metrics=metrics, evidence=evidence, summary=summary, inconclusive=inconclusive)


def power_trend(score_with: Any, n_models: int, records: Records, fpr: float, step: int = 1) -> dict[str, Any]:
    """What more reference models would buy, from the trend over fewer of them.

    ``score_with(k)`` scores the records with the first ``k`` reference models; ``k`` runs
    over ``step``, 2 ``step``, 4 ``step``... up to ``n_models`` (online models come in pairs,
    so ``step`` is 2 there). The measure is the TPR at ``fpr`` when the non-members can
    measure it, else the AUC. The estimated gain of doubling the models is the last
    doubling's gain (never below 0): power grows roughly linearly in log(models) until it
    saturates, so this is an upper estimate once the curve flattens. Uses the auditor's
    membership labels; it informs the report, never the verdict.
    """
    counts = []
    k = int(step)
    while k < n_models:
        counts.append(k)
        k *= 2
    counts.append(int(n_models))
    measurable = stats.fpr_measurable(fpr, records.n_nonmembers)
    measure = f"tpr_at_fpr_{fpr:g}" if measurable else "auc"
    values = {}
    for k in counts:
        curve_fpr, curve_tpr = roc.roc_curve(score_with(k), records.is_member)
        values[k] = roc.tpr_at_fpr(curve_fpr, curve_tpr, fpr) if measurable else roc.auc(curve_fpr, curve_tpr)
    label = f"TPR at {fpr:.1%} FPR" if measurable else "AUC"
    if len(counts) < 2:
        return {"measure": measure, "by_reference_models": {str(k): v for k, v in values.items()},
                "estimated_gain": None,
                "note": f"With {n_models} reference model(s) no trend can be measured; more would show what they buy."}
    gain = max(0.0, values[counts[-1]] - values[counts[-2]])
    trail = ", ".join(f"{v:.3f}" for v in values.values())
    note = (f"{label} over {', '.join(map(str, counts))} reference models: {trail}; doubling them to {2 * n_models} "
            f"(a larger compute budget, no extra queries) would add about {gain:.3f}.")
    return {"measure": measure, "by_reference_models": {str(k): v for k, v in values.items()},
            "estimated_gain": gain, "note": note}


@dataclasses.dataclass
class ReferenceOutputs:
    """Reference models' probabilities on the evaluated records (and optional extra rows),
    with which of those rows each model trained on."""

    probs: np.ndarray  # (models, records, classes)
    in_mask: np.ndarray  # (models, records) bool
    source: str
    models: Any  # the ReferenceModels, to answer on other rows (e.g. augmented views)
    extra_probs: np.ndarray | None = None  # (models, extra rows, classes)
    extra_in_mask: np.ndarray | None = None
    reused: int = 0  # leading models taken from the reference family's trial (trained on these records)

    @property
    def n_models(self) -> int:
        return int(self.in_mask.shape[0])


def online_universe(data: Any, records: Records, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows online reference models draw their training sets from: the evaluated records,
    then population rows (their indices into ``x_pool`` are returned too) when the records are
    fewer than twice the target's training-set size, so that a training set can have that size."""
    size = target_train_size(data)
    top_up = np.zeros(0, dtype=np.int64)
    if data.x_pool is not None and len(data.x_pool) and 2 * size > len(records):
        pool_x, pool_y = data.x_pool, np.asarray(data.y_pool).astype(np.int64)
        top_up = rng.choice(len(pool_x), size=min(len(pool_x), 2 * size - len(records)), replace=False)
        return (np.concatenate([records.x, pool_x[top_up].astype(records.x.dtype)]),
                np.concatenate([records.y, pool_y[top_up]]), top_up)
    return records.x, records.y, top_up


def reference_outputs(
    target: Any,
    data: Any,
    records: Records,
    *,
    online: bool,
    n_models: int,
    references: Any,
    rng: np.random.Generator,
    extra_pool_rows: np.ndarray | None = None,
) -> ReferenceOutputs:
    """Train reference models and collect their answers, in the auditor's setting.

    Each training set has the target's training-set size (:func:`target_train_size`),
    capped at half the rows drawn from. Online: the models train on random subsets of the
    evaluated records themselves (members and non-members alike), topped up with population
    rows when the records are fewer than twice the target's training-set size (an audit of
    a sample of a large training set), in complementary pairs, so each record is in the
    training set of some models and out of others. Offline: they train on random subsets
    of the pool only, so every evaluated record is out. ``extra_pool_rows`` (indices into
    ``x_pool``) are extra rows to answer on, e.g. RMIA's population samples. ``references`` (a
    :class:`~redline.checks.privacy.reference_choice.ReferencePlan`) says what trains them.

    Online, when the plan's family was chosen by a trial on these very records, the trial's
    models of that family come first and the ``n_models`` trained here follow them
    (:meth:`ReferenceOutputs.reused` says how many were reused).
    """
    from ...util.reference_models import (
        offline_plan,
        online_plan,
        train_reference_models,
    )

    size = target_train_size(data)
    seed = int(rng.integers(2**31))
    n_records = len(records)
    if online:
        if n_models < 2:
            raise ValueError("online reference models come in pairs: n_reference must be at least 2")
        universe_x, universe_y, top_up = online_universe(data, records, rng)
        plan = online_plan(len(universe_x), n_models, size, rng)
        in_mask = plan[:, :n_records]
        pool_columns = dict(zip(top_up.tolist(), range(n_records, n_records + len(top_up))))
    else:
        universe_x, universe_y = require_pool(data, "offline reference models")
        plan = offline_plan(len(universe_x), n_models, min(size, len(universe_x) // 2), rng)
        in_mask = np.zeros((n_models, n_records), dtype=bool)
        pool_columns = {row: row for row in range(len(universe_x))}
    if references.family is not None:
        models = references.family.train(universe_x, universe_y, plan, n_classes=target.n_classes,
                                        modality=data.modality, seed=seed)
    else:
        models = train_reference_models(
            target, universe_x, universe_y, plan, modality=data.modality, seed=seed, source=references.source
        )
    extra_in_mask = None
    if extra_pool_rows is not None:
        extra_in_mask = _pool_in_mask(plan, pool_columns, extra_pool_rows)
    trial = getattr(references, "trial_models", None) if online else None
    columns = trial.columns_for(records) if trial is not None else None
    reused = 0
    if columns is not None:
        # The trial's models first: its pairs stay pairs, so fewer-model prefixes stay balanced.
        reused = trial.n_models
        in_mask = np.concatenate([trial.plan[:, columns], in_mask])
        trial_pool = dict(zip(trial.top_up.tolist(), range(len(trial.record_keys), trial.plan.shape[1])))
        if extra_pool_rows is not None:
            extra_in_mask = np.concatenate([_pool_in_mask(trial.plan, trial_pool, extra_pool_rows), extra_in_mask])
        models = _joined(trial.models, models)
    out = ReferenceOutputs(models.predict_proba(records.x), in_mask, models.source, models, reused=reused)
    if extra_pool_rows is not None:
        pool_x = require_pool(data, "population samples")[0]
        out.extra_probs = models.predict_proba(pool_x[extra_pool_rows])
        out.extra_in_mask = extra_in_mask
    return out


def reference_count_text(refs: ReferenceOutputs) -> str:
    """'16 reference models (8 trained for the check, 8 from the family trial)' or '8 reference models'."""
    if not refs.reused:
        return f"{refs.n_models} reference models"
    return (f"{refs.n_models} reference models ({refs.n_models - refs.reused} trained for the check, "
            f"{refs.reused} from the family trial on the same records)")


def _pool_in_mask(plan: np.ndarray, pool_columns: dict[int, int], pool_rows: np.ndarray) -> np.ndarray:
    """(models, rows): which models trained on each of the pool rows ``pool_rows``, given the
    plan's column of each pool row it drew from."""
    mask = np.zeros((plan.shape[0], len(pool_rows)), dtype=bool)
    for j, row in enumerate(np.asarray(pool_rows).tolist()):
        if row in pool_columns:
            mask[:, j] = plan[:, pool_columns[row]]
    return mask


def _joined(first: Any, second: Any) -> Any:
    """Two sets of reference models answering as one, ``first``'s models first."""
    from ...util.reference_models import ReferenceModels

    def predict(x: np.ndarray) -> np.ndarray:
        return np.concatenate([first.predict_proba(x), second.predict_proba(x)])

    return ReferenceModels(second.source, first.n_models + second.n_models, predict)
