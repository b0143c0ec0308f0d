"""Test adequacy measures for FM17: how many rows a claim needs, whether the class mix
matches the expected one, which tests to look at first, and neuron coverage.

- Precision: the Clopper-Pearson 95% interval of an accuracy measured on n rows, and the
  fewest rows whose interval is at most +-d wide (:func:`rows_for_precision`).
- Detection: rows a subgroup needs before a drop of its accuracy can be seen at all
  (:func:`rows_to_detect_drop`, the normal approximation of a one-sided binomial test).
- Balance: a chi-square test of the class counts against expected shares, and the total
  variation distance between the two mixes (the size of the difference, which a p-value
  on thousands of rows does not give).
- Prioritisation: orderings of the test rows that should put the model's errors first:
  smallest margin between the top two probabilities, highest entropy, and distance-based
  surprise adequacy (DSA, Kim, Feldt & Yoo, ICSE 2019) on a representation of the inputs.
  Each is scored by the errors among its first k rows and by APFD (the average percentage
  of faults detected, 1 = all errors first).
- Neuron coverage (Pei et al., DeepXplore, 2017): the share of neurons some test input
  activates above a threshold. It is reported to show that it is a poor adequacy measure
  (Harel-Canada et al., FSE 2020): it saturates after a few rows and an ordering that
  maximises it finds errors no faster than chance. Nothing decides on it.
"""
from __future__ import annotations

import math

import numpy as np

from ...util.stats import CONFIDENCE, clopper_pearson

# -- precision and sample size --------------------------------------------------------------


def interval_half_width(correct: int, rows: int) -> float:
    """The larger side of the Clopper-Pearson 95% interval around ``correct / rows``."""
    if rows <= 0:
        return 1.0
    low, high = clopper_pearson(correct, rows)
    rate = correct / rows
    return max(rate - low, high - rate)


def rows_for_precision(accuracy: float, half_width: float, limit: int = 10_000_000) -> int:
    """The fewest rows on which an accuracy of ``accuracy`` gets a Clopper-Pearson 95%
    interval no wider than +-``half_width`` on either side (``limit`` if none up to it)."""
    if not 0 < half_width < 1:
        raise ValueError("half_width must be in (0, 1)")
    accuracy = min(max(float(accuracy), 0.0), 1.0)

    def ok(n: int) -> bool:
        return interval_half_width(round(accuracy * n), n) <= half_width

    # The normal approximation is close; search around it (exact intervals are a bit wider).
    z = 1.959963984540054
    guess = max(1, int(z * z * max(accuracy * (1 - accuracy), 1e-4) / half_width**2))
    low, high = max(1, guess // 2), max(2, guess)
    while not ok(high):
        low, high = high, high * 2
        if high > limit:
            return limit
    while low < high:
        middle = (low + high) // 2
        if ok(middle):
            high = middle
        else:
            low = middle + 1
    return high


def rows_to_detect_drop(base: float, drop: float, alpha: float = 1 - CONFIDENCE, power: float = 0.8) -> int:
    """Rows on which a one-sided test at ``alpha`` sees, with ``power``, that a subgroup's
    accuracy is ``base - drop`` rather than ``base`` (normal approximation)."""
    from scipy.stats import norm

    p0, p1 = float(base), float(base) - float(drop)
    if not 0 < p1 < p0 < 1:
        raise ValueError("need 0 < base - drop < base < 1")
    z_a, z_b = norm.ppf(1 - alpha), norm.ppf(power)
    n = ((z_a * math.sqrt(p0 * (1 - p0)) + z_b * math.sqrt(p1 * (1 - p1))) / (p0 - p1)) ** 2
    return math.ceil(n)


# -- balance ---------------------------------------------------------------------------------


def mix_against_priors(counts: np.ndarray, priors: np.ndarray) -> tuple[float, float]:
    """(chi-square p-value, total variation distance) of class ``counts`` against ``priors``
    (shares summing to 1). A class the priors give no share but the rows hold makes p 0."""
    from scipy.stats import chisquare

    counts = np.asarray(counts, float)
    priors = np.asarray(priors, float) / float(np.sum(priors))
    total = counts.sum()
    if total == 0:
        return 1.0, 0.0
    distance = 0.5 * float(np.abs(counts / total - priors).sum())
    if np.any((priors == 0) & (counts > 0)):
        return 0.0, distance
    keep = priors > 0
    if keep.sum() < 2:
        return 1.0, distance
    expected = priors[keep] * total
    return float(chisquare(counts[keep], expected * counts[keep].sum() / expected.sum()).pvalue), distance


def mix_against_sample(counts: np.ndarray, reference_counts: np.ndarray) -> tuple[float, float]:
    """(p-value, total variation distance) of class ``counts`` against the class counts of
    another sample (the training labels): a two-sample chi-square test on the classes either
    holds. The reference shares are estimates too; testing against them as exact priors (as
    :func:`mix_against_priors` does with declared ones) flagged 8-29% of random splits."""
    from scipy.stats import chi2_contingency

    counts, reference = np.asarray(counts, float), np.asarray(reference_counts, float)
    if counts.sum() == 0 or reference.sum() == 0:
        return 1.0, 0.0
    distance = 0.5 * float(np.abs(counts / counts.sum() - reference / reference.sum()).sum())
    present = (counts + reference) > 0
    if present.sum() < 2:
        return 1.0, distance
    return float(chi2_contingency(np.stack([counts[present], reference[present]]), correction=False).pvalue), distance


# -- prioritisation --------------------------------------------------------------------------


def margin_scores(probabilities: np.ndarray) -> np.ndarray:
    """Higher first: 1 minus the gap between the two largest probabilities."""
    top = np.sort(np.asarray(probabilities, float), axis=1)
    return 1.0 - (top[:, -1] - top[:, -2]) if top.shape[1] > 1 else np.zeros(len(top))


def entropy_scores(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, float), 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def distance_surprise(test: np.ndarray, predicted: np.ndarray, reference: np.ndarray,
                      reference_labels: np.ndarray) -> np.ndarray:
    """DSA of each test row: its distance to the nearest reference row of its predicted class,
    over the distance from that reference row to the nearest reference row of another class.
    A row of a class the reference rows lack gets the largest finite score."""
    test, reference = np.asarray(test, float), np.asarray(reference, float)
    predicted, reference_labels = np.asarray(predicted), np.asarray(reference_labels)
    scores = np.full(len(test), np.nan)
    for label in np.unique(predicted):
        rows = np.flatnonzero(predicted == label)
        same, other = reference[reference_labels == label], reference[reference_labels != label]
        if not len(same) or not len(other):
            continue
        d_same = _distances(test[rows], same)
        nearest = d_same.argmin(axis=1)
        dist_a = d_same[np.arange(len(rows)), nearest]
        dist_b = _distances(same[nearest], other).min(axis=1)
        scores[rows] = dist_a / np.maximum(dist_b, 1e-12)
    finite = scores[np.isfinite(scores)]
    scores[~np.isfinite(scores)] = (finite.max() * 2 + 1) if len(finite) else 1.0
    return scores


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a**2).sum(axis=1)[:, None] + (b**2).sum(axis=1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def ordering(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Row indices by decreasing score, ties in a seeded random order."""
    tiebreak = rng.random(len(scores))
    return np.lexsort((tiebreak, -np.asarray(scores, float)))


def errors_in_first(order: np.ndarray, wrong: np.ndarray, k: int) -> int:
    return int(np.asarray(wrong, bool)[order[:k]].sum())


def apfd(order: np.ndarray, wrong: np.ndarray) -> float | None:
    """Average percentage of faults detected: 1 - mean(position of each error)/n + 1/(2n),
    with each misclassified row one fault. None without errors."""
    wrong = np.asarray(wrong, bool)[order]
    n, m = len(wrong), int(wrong.sum())
    if m == 0 or n == 0:
        return None
    positions = np.flatnonzero(wrong) + 1
    return float(1 - positions.sum() / (n * m) + 1 / (2 * n))


# -- neuron coverage -------------------------------------------------------------------------


def coverage_curve(active: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Neuron coverage after each of the first 1..n rows of ``order`` (``active``: rows x neurons)."""
    seen = np.logical_or.accumulate(np.asarray(active, bool)[order], axis=0)
    return seen.mean(axis=1) if active.shape[1] else np.zeros(len(order))


def greedy_coverage_order(active: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The rows in the order that adds the most newly covered neurons each step (ties and the
    rows after coverage stops growing in a seeded random order): coverage-guided selection."""
    active = np.asarray(active, bool)
    remaining = list(rng.permutation(len(active)))
    covered = np.zeros(active.shape[1], bool)
    order = []
    while remaining:
        gains = (active[remaining] & ~covered).sum(axis=1)
        best = int(gains.argmax())
        if gains[best] == 0:
            order.extend(remaining)
            break
        row = remaining.pop(best)
        covered |= active[row]
        order.append(row)
    return np.asarray(order, int)


def rows_to_saturate(curve: np.ndarray, share: float = 0.95) -> int:
    """The fewest rows after which coverage reaches ``share`` of its final value."""
    if not len(curve) or curve[-1] == 0:
        return 0
    return int(np.argmax(curve >= share * curve[-1])) + 1


def torch_representations(target, x: np.ndarray, threshold: float,
                          batch_size: int = 256) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(penultimate activations (n, d), neuron activity (n, neurons) booleans) of a white-box
    torch target, or (None, None) when it offers no module with layers. Neurons are the units
    of every ``Linear`` layer but the last (the logits) and the channels of every ``Conv2d``
    (mean over the feature map, as DeepXplore counts them), active above ``threshold`` before
    the nonlinearity. One pass through ``target.logits``, charged to the ledger's phase."""
    import torch

    module = target.torch_module() if target.capabilities.gradients else None
    if module is None:
        return None, None
    try:
        layers = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))]
    except (AttributeError, RuntimeError, TypeError):  # scripted modules
        return None, None
    if not layers or not isinstance(layers[-1], torch.nn.Linear):
        return None, None
    head, hidden = layers[-1], layers[:-1]
    outputs: dict[int, list] = {i: [] for i in range(len(hidden))}
    penultimate: list = []

    def keep(i):
        def hook(_mod, _inputs, out):
            out = out.detach()
            outputs[i].append(out.mean(dim=(2, 3)) if out.dim() == 4 else out.flatten(1))
        return hook

    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(hidden)]
    handles.append(head.register_forward_pre_hook(lambda _m, inputs: penultimate.append(inputs[0].detach().flatten(1))))
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                target.logits(torch.from_numpy(np.ascontiguousarray(x[start:start + batch_size], dtype=np.float32)))
    finally:
        for handle in handles:
            handle.remove()
    rep = torch.cat(penultimate).numpy().astype(np.float64) if penultimate else None
    if hidden and all(outputs[i] for i in outputs):
        active = np.concatenate([torch.cat(outputs[i]).numpy() > threshold for i in outputs], axis=1)
    else:
        active = None
    return rep, active
