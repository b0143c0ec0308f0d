"""Fixed maps from wide inputs (images, flattened) to a few coordinates, fitted on the
reference only, so every batch later is mapped the same way. Failing Loudly (Rabanser et
al. 2019) found two-sample tests on such reductions, or on the model's own outputs, detect
shift best on images.
"""
from __future__ import annotations

import numpy as np

REDUCTIONS = ("auto", "pca", "random", "none")  # auto: the detector picks pca or none
# Rows used to fit the principal components (an SVD of this many rows by the width).
PCA_ROWS = 2000


class Reduction:
    """``transform(x)`` maps flattened rows to ``width`` coordinates named ``names``."""

    def __init__(self, kind: str, width: int, mean: np.ndarray | None = None, matrix: np.ndarray | None = None):
        self.kind = kind
        self.mean = mean
        self.matrix = matrix
        prefix = {"pca": "pc", "random": "rp"}.get(kind)
        self.names: list = [f"{prefix}{i}" for i in range(width)] if prefix else list(range(width))

    @property
    def width(self) -> int:
        return len(self.names)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.matrix is None:
            return x
        return (x - self.mean) @ self.matrix


def fit_reduction(kind: str, reference: np.ndarray, components: int, rng: np.random.Generator) -> Reduction:
    """The reduction ``kind`` (pca, random or none) fitted on ``reference`` (rows, flattened)."""
    n, d = reference.shape
    if kind == "none":
        return Reduction("none", d)
    width = max(1, min(components, d, n - 1))
    mean = reference.mean(axis=0)
    if kind == "random":
        # A Gaussian random projection, scaled so distances are kept on average.
        matrix = rng.normal(size=(d, width)) / np.sqrt(width)
        return Reduction("random", width, mean, matrix)
    rows = reference if n <= PCA_ROWS else reference[rng.choice(n, PCA_ROWS, replace=False)]
    _, _, vt = np.linalg.svd(rows - mean, full_matrices=False)
    basis = vt[:width].T
    # Fix each component's sign so the map does not depend on the SVD routine's choice.
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(basis.shape[1])])
    return Reduction("pca", width, mean, basis * np.where(signs == 0, 1.0, signs))
