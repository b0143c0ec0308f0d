"""Univariate two-sample tests, one per column, and the corrections that make a family of
them keep its false-alarm rate.

A column is tested with Kolmogorov-Smirnov when it is continuous and with a chi-square test
of homogeneity when it takes few values. Both are valid at small samples in the direction
that matters: KS on tied (discrete) data is conservative, and where the chi-square
approximation fails (an expected count under 5) each category gets an exact test instead.
scipy is imported lazily.
"""
from __future__ import annotations

import numpy as np

from ..util.stats import adjust_p_values

# Cochran's rule for the chi-square approximation: every expected count at least this.
MIN_EXPECTED = 5.0
CORRECTIONS = ("bonferroni", "holm")


def adjust(p_values: np.ndarray, correction: str) -> np.ndarray:
    """p-values adjusted for testing every feature at once (:func:`redline.util.stats.adjust_p_values`)."""
    return adjust_p_values(p_values, correction)


def ks_columns(sorted_reference: np.ndarray, sample: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """KS statistic and two-sided p-value of every column of ``sample`` against the same
    column of ``sorted_reference`` (each column sorted ascending, as a fitted detector keeps
    it, so a batch costs O(n log m) per column, not a sort of the reference).

    The statistic is exact, ties included: between two sample values the sample's CDF is
    flat and the reference's rises, so the largest gap sits at a sample value or just below
    one. The p-value is the Kolmogorov limit with Stephens' small-sample correction
    (``(sqrt(e) + 0.12 + 0.11 / sqrt(e)) D`` with ``e = mn / (m + n)``), which matches the
    exact distribution to about 1e-3 from ten rows on and errs on the large (safe) side.
    """
    from scipy.special import kolmogorov

    m, width = sorted_reference.shape
    n = sample.shape[0]
    stat = np.zeros(width)
    ordered = np.sort(sample, axis=0)
    for j in range(width):
        ref, s = sorted_reference[:, j], ordered[:, j]
        at = np.searchsorted(ref, s, side="right") / m - np.searchsorted(s, s, side="right") / n
        below = np.searchsorted(ref, s, side="left") / m - np.searchsorted(s, s, side="left") / n
        stat[j] = max(np.abs(at).max(), np.abs(below).max())
    root = np.sqrt(m * n / (m + n))
    p = kolmogorov((root + 0.12 + 0.11 / root) * stat)
    return stat, np.clip(p, 0.0, 1.0)


def chi2_counts(reference_counts: np.ndarray, sample_counts: np.ndarray) -> tuple[float, float]:
    """(chi-square statistic, p-value) for two count vectors over the same categories.

    With every expected count at least 5 (Cochran's rule) the p-value is the chi-square
    test of homogeneity's. Below that the approximation can raise false alarms, and merging
    sparse categories would hide exactly what matters at small samples (values the reference
    never showed), so each category is tested on its own instead: the sample's count in it
    against the hypergeometric law of a random split of the pooled rows (Fisher's exact test,
    two-sided by doubling the smaller tail), Bonferroni over the categories.
    """
    from scipy.stats import hypergeom

    table = np.vstack([reference_counts, sample_counts]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or (rows == 0).any():
        return 0.0, 1.0
    totals = table.sum(axis=0)
    expected = np.outer(rows, totals) / rows.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    if expected.min() >= MIN_EXPECTED:
        from scipy.stats import chi2

        return statistic, float(chi2.sf(statistic, table.shape[1] - 1))
    pooled, drawn, hits = int(rows.sum()), int(rows[1]), table[1]
    upper = hypergeom.sf(hits - 1, pooled, totals, drawn)
    lower = hypergeom.cdf(hits, pooled, totals, drawn)
    per_category = np.minimum(1.0, 2.0 * np.minimum(upper, lower))
    # With two categories both tests are one test.
    tests = 1 if table.shape[1] == 2 else table.shape[1]
    return statistic, float(min(1.0, tests * per_category.min()))


def category_counts(values: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Counts of ``values`` per category, plus one last bin for values never seen in the reference."""
    index = np.searchsorted(categories, values)
    index = np.clip(index, 0, len(categories) - 1)
    known = categories[index] == values
    counts = np.bincount(index[known], minlength=len(categories))
    return np.append(counts, int((~known).sum()))


def chi2_columns(reference_counts: list[np.ndarray], sample: np.ndarray, categories: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square statistic and p-value of every column of ``sample``, each against its
    reference counts over its reference categories (``category_counts``)."""
    stats, ps = [], []
    for j, (counts, cats) in enumerate(zip(reference_counts, categories)):
        s, p = chi2_counts(counts, category_counts(sample[:, j], cats))
        stats.append(s)
        ps.append(p)
    return np.asarray(stats, dtype=float), np.asarray(ps, dtype=float)
