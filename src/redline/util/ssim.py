"""Structural similarity (SSIM, Wang et al. 2004) between batches of images, in numpy.

Local means, variances and covariances come from a uniform square window over the valid
region (no padding). The window shrinks to fit small images (the 8x8 digits get a 5x5
window instead of the usual 7x7). Channels, if any, are averaged.
"""
from __future__ import annotations

import numpy as np

_K1, _K2 = 0.01, 0.03


def _as_planes(images: np.ndarray) -> np.ndarray:
    """(n, H, W) or (n, C, H, W) -> (n, C, H, W) float64."""
    a = np.asarray(images, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise ValueError(f"SSIM takes batches shaped (n, H, W) or (n, C, H, W), got {np.shape(images)}")
    return a


def _window_mean(a: np.ndarray, size: int) -> np.ndarray:
    """Mean over every size x size window of the last two axes (valid region), via 2-D cumulative sums."""
    c = np.cumsum(np.cumsum(a, axis=-1), axis=-2)
    c = np.pad(c, [(0, 0)] * (a.ndim - 2) + [(1, 0), (1, 0)])
    total = c[..., size:, size:] - c[..., :-size, size:] - c[..., size:, :-size] + c[..., :-size, :-size]
    return total / (size * size)


def window_size(height: int, width: int, preferred: int = 7) -> int:
    """The largest odd window up to ``preferred`` that fits the image (at least 3)."""
    size = min(preferred, height, width)
    size -= 1 - size % 2
    return max(size, 1)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, window: int = 7) -> np.ndarray:
    """SSIM of each pair ``a[i]``, ``b[i]`` (broadcasting over the batch axis): shape (n,), in [-1, 1]."""
    x, y = np.broadcast_arrays(_as_planes(a), _as_planes(b))
    size = window_size(x.shape[-2], x.shape[-1], window)
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    mx, my = _window_mean(x, size), _window_mean(y, size)
    # Sample (n-1) normalisation, as in the reference implementation.
    norm = size * size / max(size * size - 1, 1)
    vx = (_window_mean(x * x, size) - mx * mx) * norm
    vy = (_window_mean(y * y, size) - my * my) * norm
    cxy = (_window_mean(x * y, size) - mx * my) * norm
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.reshape(len(s), -1).mean(axis=1)


def ssim_matrix(a: np.ndarray, b: np.ndarray, data_range: float = 1.0, window: int = 7, chunk: int = 256) -> np.ndarray:
    """SSIM of every image in ``a`` against every image in ``b``: shape (len(a), len(b))."""
    x, y = _as_planes(a), _as_planes(b)
    out = np.empty((len(x), len(y)))
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk]
        # (m, 1, C, H, W) against (1, k, C, H, W), flattened to one batch of pairs.
        pairs_a = np.broadcast_to(part[:, None], (len(part), len(y), *x.shape[1:])).reshape(-1, *x.shape[1:])
        pairs_b = np.broadcast_to(y[None], (len(part), len(y), *y.shape[1:])).reshape(-1, *y.shape[1:])
        out[start : start + len(part)] = ssim(pairs_a, pairs_b, data_range, window).reshape(len(part), len(y))
    return out
