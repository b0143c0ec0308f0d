"""Which inputs a learning-based stealing attack should send next, and synthetic ones to add.

Active selection spends a query budget where the surrogate is unsure (small margin between
its top two classes) and spreads it out (k-center greedy: each pick is the candidate
farthest from everything already chosen), as in active-learning model extraction
(Pal et al. 2020, ActiveThief). Synthetic inputs reach beyond a small pool: mixup of two
owned inputs (Zhang et al. 2018) and a Jacobian-sign step across the surrogate's decision
boundary (Papernot et al. 2017).
"""
from __future__ import annotations

import numpy as np

STRATEGIES = ("random", "margin", "kcenter", "margin_kcenter")
AUGMENTATIONS = ("none", "mixup", "jacobian")


def margins(probs: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row: small where the surrogate is unsure."""
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def k_center_greedy(candidates: np.ndarray, chosen: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``m`` rows of ``candidates`` (n, f), each farthest from ``chosen`` and earlier picks."""
    n = len(candidates)
    m = min(m, n)
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    sq = (candidates**2).sum(axis=1)
    if len(chosen):
        nearest = np.full(n, np.inf)
        for start in range(0, len(chosen), 512):  # bounded memory: (n, 512) distances at a time
            block = chosen[start : start + 512]
            d2 = sq[:, None] - 2 * candidates @ block.T + (block**2).sum(axis=1)[None, :]
            nearest = np.minimum(nearest, d2.min(axis=1))
    else:
        nearest = np.full(n, np.inf)
        nearest[rng.integers(n)] = -1.0  # start anywhere when nothing is chosen yet
    picks = np.empty(m, dtype=np.int64)
    for j in range(m):
        picks[j] = int(np.argmax(nearest))
        c = candidates[picks[j]]
        nearest = np.minimum(nearest, sq - 2 * candidates @ c + c @ c)
        nearest[picks[j]] = -np.inf
    return picks


def select(
    strategy: str,
    pool_flat: np.ndarray,
    available: np.ndarray,
    chosen_flat: np.ndarray,
    probs: np.ndarray | None,
    m: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Indices into ``pool_flat`` of ``m`` inputs to query next, among the ``available`` indices.

    ``probs``: the surrogate's probabilities on ``pool_flat[available]`` (None before any
    surrogate exists, when margin-based strategies fall back to k-center or random).
    """
    m = min(m, len(available))
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    if strategy == "random" or (probs is None and strategy == "margin"):
        return rng.choice(available, size=m, replace=False)
    if strategy == "kcenter" or probs is None:
        return available[k_center_greedy(pool_flat[available], chosen_flat, m, rng)]
    order = np.argsort(margins(probs), kind="stable")
    if strategy == "margin":
        return available[order[:m]]
    # margin_kcenter: the least certain candidates (three per pick), spread out by k-center.
    shortlist = order[: min(len(order), 3 * m)]
    return available[shortlist[k_center_greedy(pool_flat[available[shortlist]], chosen_flat, m, rng)]]


def mixup(x: np.ndarray, m: int, rng: np.random.Generator, lower: float, upper: float) -> np.ndarray:
    """``m`` convex combinations of random pairs of rows of ``x`` (weights in [0.2, 0.8])."""
    a, b = rng.integers(0, len(x), size=m), rng.integers(0, len(x), size=m)
    lam = rng.uniform(0.2, 0.8, size=(m,) + (1,) * (x.ndim - 1))
    return np.clip(lam * x[a] + (1 - lam) * x[b], lower, upper).astype(x.dtype)


def jacobian_step(module, x: np.ndarray, m: int, step: float, rng: np.random.Generator, lower: float, upper: float) -> np.ndarray:
    """``m`` rows of ``x`` pushed by ``step`` along the sign of the gradient that lowers the
    surrogate's margin for its own predicted class, towards a decision boundary."""
    import torch

    rows = x[rng.integers(0, len(x), size=m)]
    x_t = torch.as_tensor(np.ascontiguousarray(rows, dtype=np.float32)).requires_grad_(True)
    logits = module(x_t)
    top2 = logits.topk(2, dim=1).values
    (top2[:, 0] - top2[:, 1]).sum().backward()
    moved = rows - step * np.sign(x_t.grad.numpy())
    return np.clip(moved, lower, upper).astype(x.dtype)
