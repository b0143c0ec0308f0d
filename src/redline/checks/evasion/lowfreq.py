"""Random unit directions for gradient-free attacks, drawn in a low-frequency subspace.

Decision boundaries of image classifiers are far better aligned with smooth, low-frequency
directions than with white noise, so probing the boundary with directions spanned by the
lowest 2-D DCT frequencies estimates its normal with fewer queries (the observation behind
QEBA's frequency subspace and GeoDA). Inputs that are not images get plain Gaussian
directions in the full space.
"""
from __future__ import annotations

import numpy as np


def dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix (n, n): row k is the k-th cosine basis vector."""
    i = np.arange(n)
    m = np.cos(np.pi * (2 * i[None, :] + 1) * i[:, None] / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


class DirectionSampler:
    """Draws unit-L2 directions shaped like one input.

    ``ratio`` is the fraction of each image side kept in the DCT subspace (1 = full space).
    Inputs shaped (c, h, w) with h, w >= 8 are treated as images.
    """

    def __init__(self, shape: tuple[int, ...], ratio: float = 0.5):
        self.shape = tuple(int(s) for s in shape)
        self.image = len(self.shape) == 3 and min(self.shape[1:]) >= 8 and ratio < 1
        if self.image:
            _, h, w = self.shape
            kh, kw = max(2, round(h * ratio)), max(2, round(w * ratio))
            self._rows = dct_matrix(h)[:kh].astype(np.float32)  # (kh, h)
            self._cols = dct_matrix(w)[:kw].astype(np.float32)  # (kw, w)

    def sample(self, n: int, m: int, rng: np.random.Generator) -> np.ndarray:
        """(n, m, features) unit directions, float32."""
        if not self.image:
            u = rng.standard_normal((n, m, int(np.prod(self.shape))), dtype=np.float32)
            return u / np.maximum(np.linalg.norm(u, axis=2, keepdims=True), 1e-12)
        c, h, w = self.shape
        kh, kw = len(self._rows), len(self._cols)
        z = rng.standard_normal((n * m, c * kh * kw), dtype=np.float32)
        # The kept DCT basis vectors are orthonormal, so a coefficient block has the norm of
        # the image it makes: normalise the small block, not the image.
        z /= np.maximum(np.sqrt(np.einsum("ij,ij->i", z, z)), 1e-12)[:, None]
        return self._inverse_dct(z.reshape(-1, kh, kw)).reshape(n, m, -1)

    def _inverse_dct(self, z: np.ndarray) -> np.ndarray:
        """(blocks, h, w) images of (blocks, kh, kw) coefficient blocks: rows.T @ z @ cols.

        numpy's stacked matmul runs this as two batched products with no transposed copies
        (15x faster than one large product per axis with transposes in between).
        """
        return np.matmul(self._rows.T, z @ self._cols)
