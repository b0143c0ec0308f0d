"""How accurate is a classifier on a deployment sample whose labels nobody has?

Every method learns something on a labelled reference sample (the held-out test rows) and
transfers it to the unlabelled deployment sample:

- ``atc``, average thresholded confidence (Garg et al., ICLR 2022): a score per input
  (negative entropy of the predicted distribution by default, ``atc_mc`` uses the top
  probability) and a threshold fitted on the reference rows so that the share of them
  scoring above it equals their accuracy; the estimate is the share of deployment rows
  above the same threshold.
- ``doc``, difference of confidences (Guillory et al., ICCV 2021): reference accuracy
  minus the fall in average top probability from reference to deployment.
- ``iw``, importance weighting: a logistic domain classifier on the inputs tells reference
  rows from deployment rows; its odds, cross-fitted so no row is scored by a classifier that
  saw it, are density ratios, and the estimate is the reference accuracy with each row
  weighted by its ratio. It only works while the deployment inputs stay inside the support
  of the reference inputs: when a few rows carry all the weight (effective sample size
  below ``MIN_EFFECTIVE_FRACTION`` of the rows, or ``MIN_EFFECTIVE_ROWS``) or the mean
  weight says most deployment inputs lie outside that support, it answers None instead of
  a number.

Each estimate has a percentile bootstrap interval over both samples (reference rows
resampled and the threshold or weights re-used or refitted as the method needs), and the
drop from the reference accuracy with its interval from the same resamples. The methods
are estimates: they assume the shift leaves the link between confidence and correctness
(ATC, DoC) or between inputs and labels (IW) as it was, and none of them can see a change
of the labels themselves for the same inputs.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import DataError, UsageError

METHODS = ("atc", "atc_mc", "doc", "iw")
#: Bootstrap resamples behind every interval.
N_BOOTSTRAP = 300
CONFIDENCE = 0.95
#: Importance weighting gives up when the weights leave fewer effective rows than this share
#: of the reference rows or this count, whichever is larger: the estimate would rest on a
#: handful of reference rows that happen to look like the deployment sample.
MIN_EFFECTIVE_FRACTION = 0.1
MIN_EFFECTIVE_ROWS = 30
#: Importance weighting also gives up when the weights' mean (the share of deployment inputs
#: inside the reference inputs' support, see :func:`_importance_weighting`) is below this.
MIN_SUPPORT_COVERAGE = 0.8
#: The domain classifier sees at most this many principal components of the inputs, and is
#: strongly regularised: with hundreds of pixels an unregularised one separates two iid
#: samples by chance and the weights collapse for no reason.
DOMAIN_COMPONENTS = 20
DOMAIN_C = 0.1
#: Folds of the domain classifier's cross-fitting.
DOMAIN_FOLDS = 5
#: Domain probabilities are kept inside [CLIP, 1 - CLIP] so one row cannot get an infinite ratio.
DOMAIN_CLIP = 1e-3


@dataclasses.dataclass(frozen=True)
class AccuracyEstimate:
    """Estimated accuracy on the deployment sample (None when the method cannot tell),
    its interval, the reference accuracy it starts from, and the drop between the two."""

    accuracy: float | None
    interval: tuple[float, float] | None
    method: str
    reference_accuracy: float
    drop: float | None = None
    drop_interval: tuple[float, float] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "accuracy": self.accuracy,
            "interval": None if self.interval is None else list(self.interval),
            "reference_accuracy": self.reference_accuracy,
            "drop": self.drop,
            "drop_interval": None if self.drop_interval is None else list(self.drop_interval),
            "details": dict(self.details),
        }


def estimate_accuracy(
    reference_probs: Any,
    reference_labels: Any,
    deploy_probs: Any,
    method: str = "atc",
    reference_inputs: Any = None,
    deploy_inputs: Any = None,
    seed: int = 0,
    n_bootstrap: int = N_BOOTSTRAP,
) -> AccuracyEstimate:
    """Estimate the accuracy on the deployment rows from their predicted probabilities.

    ``reference_probs`` (n, k) and ``reference_labels`` (n,) are the model's probabilities
    and the true labels on a labelled reference sample; ``deploy_probs`` (m, k) its
    probabilities on the deployment sample. ``iw`` also needs the inputs of both samples.
    """
    if method not in METHODS:
        raise UsageError(f"unknown accuracy estimation method {method!r}; known: {', '.join(METHODS)}")
    ref_p = _probabilities(reference_probs, "reference_probs")
    dep_p = _probabilities(deploy_probs, "deploy_probs")
    if ref_p.shape[1] != dep_p.shape[1]:
        raise DataError(f"reference_probs has {ref_p.shape[1]} classes, deploy_probs {dep_p.shape[1]}")
    labels = np.asarray(reference_labels).reshape(-1)
    if len(labels) != len(ref_p):
        raise DataError(f"{len(labels)} reference labels for {len(ref_p)} reference rows")
    if int(n_bootstrap) < 10:
        raise UsageError("n_bootstrap must be at least 10")
    correct = (ref_p.argmax(axis=1) == labels).astype(np.float64)
    rng = np.random.default_rng(seed)
    ref_boot = rng.integers(0, len(ref_p), size=(int(n_bootstrap), len(ref_p)))
    dep_boot = rng.integers(0, len(dep_p), size=(int(n_bootstrap), len(dep_p)))
    if method != "iw" and np.ptp(ref_p.max(axis=1)) == 0:
        # Every answer equally sure (a tree or 1-NN's one-hot answers): confidence cannot tell
        # the rows the model gets right from the others, and ATC and DoC would return the
        # reference accuracy in every resample, a drop of exactly 0 whatever the shift.
        details = {"inconclusive": (f"the model answers every reference row with the same confidence "
                                    f"({float(ref_p.max(axis=1)[0]):.3g}), so its confidences say nothing about its "
                                    f"errors and the {method} estimate has nothing to go on")}
        return AccuracyEstimate(None, None, method, float(correct.mean()), details=details)
    if method in ("atc", "atc_mc"):
        score = "negative_entropy" if method == "atc" else "max_confidence"
        point, reps, details = _atc(_score(ref_p, score), correct, _score(dep_p, score), ref_boot, dep_boot)
        details["score"] = score
    elif method == "doc":
        point, reps, details = _doc(ref_p.max(axis=1), correct, dep_p.max(axis=1), ref_boot, dep_boot)
    else:
        point, reps, details = _importance_weighting(correct, reference_inputs, deploy_inputs, len(ref_p),
                                                     len(dep_p), ref_boot, seed)
    reference_accuracy = float(correct.mean())
    details.update(n_reference=len(ref_p), n_deploy=len(dep_p), n_bootstrap=int(n_bootstrap))
    if point is None:
        return AccuracyEstimate(None, None, method, reference_accuracy, details=details)
    ref_reps = correct[ref_boot].mean(axis=1)
    return AccuracyEstimate(
        accuracy=float(point),
        interval=_percentiles(reps),
        method=method,
        reference_accuracy=reference_accuracy,
        drop=reference_accuracy - float(point),
        drop_interval=_percentiles(ref_reps - reps),
        details=details,
    )


# -- the methods ----------------------------------------------------------------------


def _atc(ref_score, correct, dep_score, ref_boot, dep_boot):
    threshold, tie_share = _threshold(ref_score, correct.mean())
    point = _share_above(dep_score, threshold, tie_share)
    reps = np.array([_share_above(dep_score[d], *_threshold(ref_score[r], correct[r].mean()))
                     for r, d in zip(ref_boot, dep_boot)])
    return point, reps, {"threshold": float(threshold), "tie_share": float(tie_share)}


def _threshold(scores: np.ndarray, accuracy: float) -> tuple[float, float]:
    """(threshold, tie share): the score above which the share ``accuracy`` of ``scores``
    lies, and the share of the rows exactly at it that count as above. Scores that tie (a
    tree's leaves, a model with a few distinct confidences) can put the boundary inside a run
    of equal values; counting all of the run or none of it once made a tree's estimate 0%
    on a copy of its own test rows (a 70-point false drop), so that run is split in the
    proportion the accuracy needs."""
    ordered = np.sort(scores)
    below = round((1.0 - accuracy) * len(ordered))  # rows at or under the threshold
    if below <= 0:
        return float(ordered[0]) - 1.0, 0.0
    if below >= len(ordered):
        return float(ordered[-1]), 0.0
    low, high = ordered[below - 1], ordered[below]
    if low < high:
        return float(low + high) / 2.0, 0.0
    above, at = int(np.sum(ordered > low)), int(np.sum(ordered == low))
    return float(low), float(np.clip((len(ordered) - below - above) / at, 0.0, 1.0))


def _share_above(scores: np.ndarray, threshold: float, tie_share: float) -> float:
    """The share of ``scores`` above ``threshold``, those exactly at it counted ``tie_share``."""
    return float(np.mean(scores > threshold) + tie_share * np.mean(scores == threshold))


def _doc(ref_conf, correct, dep_conf, ref_boot, dep_boot):
    point = float(np.clip(correct.mean() - (ref_conf.mean() - dep_conf.mean()), 0.0, 1.0))
    reps = np.clip(correct[ref_boot].mean(axis=1) - ref_conf[ref_boot].mean(axis=1) + dep_conf[dep_boot].mean(axis=1),
                   0.0, 1.0)
    return point, reps, {"reference_confidence": float(ref_conf.mean()), "deploy_confidence": float(dep_conf.mean())}


def _importance_weighting(correct, reference_inputs, deploy_inputs, n_ref, n_dep, ref_boot, seed):
    if reference_inputs is None or deploy_inputs is None:
        raise UsageError("importance weighting (method iw) needs reference_inputs and deploy_inputs")
    ref_x = _flat(reference_inputs, "reference_inputs", n_ref)
    dep_x = _flat(deploy_inputs, "deploy_inputs", n_dep)
    if ref_x.shape[1] != dep_x.shape[1]:
        raise DataError(f"reference inputs have {ref_x.shape[1]} features, deployment inputs {dep_x.shape[1]}")
    p_deploy, auc = _domain_probabilities(ref_x, dep_x, seed)
    p_deploy = np.clip(p_deploy, DOMAIN_CLIP, 1.0 - DOMAIN_CLIP)
    weights = p_deploy / (1.0 - p_deploy) * (n_ref / n_dep)
    ess = float(weights.sum() ** 2 / np.sum(weights**2))
    needed = max(MIN_EFFECTIVE_ROWS, MIN_EFFECTIVE_FRACTION * n_ref)
    # The mean weight estimates the share of the deployment sample that lies where reference
    # rows do: when most deployment rows are unlike any reference row, every reference row
    # gets a small weight, the weights look even and the effective size stays high, yet
    # the reweighted accuracy only speaks for the small covered part.
    coverage = float(np.mean(weights))
    details = {"effective_sample_size": ess, "effective_needed": float(needed), "domain_auc": auc,
               "support_coverage": coverage, "max_weight_share": float(weights.max() / weights.sum())}
    if coverage < MIN_SUPPORT_COVERAGE:
        details["inconclusive"] = (
            f"only about {coverage:.0%} of the deployment inputs lie where reference inputs do (domain "
            f"classifier AUC {auc:.2f}); reweighting the reference rows cannot speak for the rest")
        return None, None, details
    if ess < needed:
        details["inconclusive"] = (
            f"the importance weights collapse: {ess:.0f} effective reference rows of {n_ref} (at least "
            f"{needed:.0f} needed); the deployment inputs lie largely outside the reference inputs' support "
            f"(domain classifier AUC {auc:.2f})")
        return None, None, details
    point = float(np.sum(weights * correct) / weights.sum())
    w = weights[ref_boot]
    reps = np.sum(w * correct[ref_boot], axis=1) / w.sum(axis=1)
    details["note"] = "bootstrap over reference rows with the cross-fitted weights held fixed"
    return point, reps, details


def _domain_probabilities(ref_x: np.ndarray, dep_x: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    """P(deployment | x) for each reference row from a classifier that never saw that row,
    and the classifier's cross-fitted AUC (0.5: the samples look alike)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x = np.concatenate([ref_x, dep_x])
    domain = np.concatenate([np.zeros(len(ref_x)), np.ones(len(dep_x))])
    # The projection never sees which sample a row came from, so fitting it once on all rows
    # leaks nothing into the cross-fitted classifier (and spares a decomposition per fold).
    components = min(DOMAIN_COMPONENTS, x.shape[1], len(x) - 1)
    # Each input on a common scale, but no scale below a tenth of the typical one: plain
    # standardising would let a pixel that is almost always blank (a tiny variance) dominate
    # and single out the few rows where it is not, collapsing the weights of two samples
    # from one population; then whitened principal components.
    spread = x.std(axis=0)
    floor = max(0.1 * float(np.median(spread[spread > 0])) if np.any(spread > 0) else 1.0, 1e-12)
    scaled = (x - x.mean(axis=0)) / np.maximum(spread, floor)
    reduced = PCA(n_components=components, whiten=True, svd_solver="randomized",
                  random_state=seed).fit_transform(scaled)
    out = np.empty(len(x))
    folds = StratifiedKFold(n_splits=min(DOMAIN_FOLDS, len(ref_x), len(dep_x)), shuffle=True, random_state=seed)
    for fit_rows, held_rows in folds.split(reduced, domain):
        model = LogisticRegression(C=DOMAIN_C, max_iter=1000).fit(reduced[fit_rows], domain[fit_rows])
        out[held_rows] = model.predict_proba(reduced[held_rows])[:, 1]
    return out[: len(ref_x)], float(roc_auc_score(domain, out))


# -- inputs and small helpers ---------------------------------------------------------------


def _probabilities(probs: Any, name: str) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2 or not len(p):
        raise DataError(f"{name} must be probabilities shaped (rows, classes) with at least 2 classes, got {p.shape}")
    if not np.isfinite(p).all() or p.min() < -1e-6 or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise DataError(f"{name} must hold probabilities: non-negative rows that sum to 1")
    return np.clip(p, 0.0, 1.0)


def _flat(x: Any, name: str, rows: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or len(x) != rows:
        raise DataError(f"{name} must hold one input per row of its probabilities ({rows}), got shape {x.shape}")
    return x.reshape(len(x), -1)


def _score(p: np.ndarray, kind: str) -> np.ndarray:
    if kind == "max_confidence":
        return p.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)  # negative entropy: higher is surer


def _percentiles(reps: np.ndarray) -> tuple[float, float]:
    tail = (1.0 - CONFIDENCE) / 2.0 * 100.0
    low, high = np.percentile(reps, [tail, 100.0 - tail])
    return float(low), float(high)
