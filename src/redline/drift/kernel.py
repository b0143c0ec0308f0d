"""Kernel two-sample test: maximum mean discrepancy (Gretton et al. 2012) with a Gaussian
kernel whose width is the median distance between reference rows, and a permutation p-value.

The statistic is the biased (V-statistic) MMD², ``w' K w`` with weights ``1/m`` on the
reference rows and ``-1/n`` on the sample rows. The Gaussian kernel's diagonal is all ones,
so the diagonal adds the same constant to every permutation and the test is the unbiased
one's in all but name. All permutations are scored in one matrix product ``K @ W``. The
p-value ``(1 + #{permuted >= observed}) / (1 + permutations)`` is exact: under no shift it
is at most alpha with probability at most alpha, whatever the data.
"""
from __future__ import annotations

import numpy as np

# Rows used to pick the kernel width (pairwise distances grow as the square of this).
WIDTH_ROWS = 500


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances between the rows of ``a`` and ``b``."""
    d = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def median_width(reference: np.ndarray, rng: np.random.Generator) -> float:
    """The median heuristic: the median distance between distinct reference rows (1 if all coincide)."""
    rows = reference if len(reference) <= WIDTH_ROWS else reference[rng.choice(len(reference), WIDTH_ROWS, replace=False)]
    d2 = squared_distances(rows, rows)[np.triu_indices(len(rows), k=1)]
    d2 = d2[d2 > 0]
    return float(np.sqrt(np.median(d2))) if d2.size else 1.0


def gaussian_kernel(a: np.ndarray, b: np.ndarray, width: float) -> np.ndarray:
    return np.exp(-squared_distances(a, b) / (2.0 * width * width))


def mmd_permutation_test(
    reference: np.ndarray,
    sample: np.ndarray,
    width: float,
    permutations: int,
    rng: np.random.Generator,
    reference_kernel: np.ndarray | None = None,
) -> tuple[float, float]:
    """(MMD², permutation p-value). ``reference_kernel`` is the reference's own kernel
    matrix when the caller has it already (a fitted detector computes it once)."""
    m, n = len(reference), len(sample)
    k_rr = gaussian_kernel(reference, reference, width) if reference_kernel is None else reference_kernel
    k_rs = gaussian_kernel(reference, sample, width)
    k_ss = gaussian_kernel(sample, sample, width)
    kernel = np.block([[k_rr, k_rs], [k_rs.T, k_ss]])
    weights = np.concatenate([np.full(m, 1.0 / m), np.full(n, -1.0 / n)])
    observed = float(weights @ kernel @ weights)
    shuffled = np.stack([weights[rng.permutation(m + n)] for _ in range(permutations)], axis=1)
    null = np.einsum("ip,ip->p", shuffled, kernel @ shuffled)
    # A tiny tolerance so that a permutation equal to the observed split counts as "as large".
    exceed = int((null >= observed - 1e-12).sum())
    return observed, (1.0 + exceed) / (1.0 + permutations)
