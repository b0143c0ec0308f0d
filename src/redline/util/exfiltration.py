"""Hiding training images in model parameters, and reading them back (Song et al. 2017).

*Machine learning models that remember too much* shows that whoever writes the training
code can make the delivered parameters carry the training data, with little or no loss of
accuracy. Three white-box encodings and one black-box encoding are implemented here, each
as an embedding (used by the zoo's malicious recipes) and a recovery (used by the FM08
check and the tests):

- **LSB**: after training, the low ``bits`` bits of every float parameter are overwritten
  with one pixel each, quantised to ``2**bits`` levels.
- **Correlated value**: a training-time penalty rewards the correlation between the
  parameters and the secret pixel values; the parameters, rescaled, look like the images.
- **Sign**: a training-time penalty forces the sign of each parameter to one bit of the
  binarised images.
- **Capacity abuse** (black box): the training set is augmented with synthetic inputs drawn
  from a secret seed, each labelled with one pixel of a secret image quantised to a class
  index; whoever knows the seed regenerates the inputs, queries the deployed model and reads
  the pixels back from the predicted labels.

Parameters are handled as one flat vector (all tensors concatenated in module order), and
the payload is laid out from its start, one image after another. numpy only.
"""
from __future__ import annotations

import numpy as np

ENCODINGS = ("lsb", "correlation", "sign")
SIGN_THRESHOLD = 0.5  # pixels above it (images in [0, 1]) become bit 1 in the sign encoding


def _uint_view(values: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(values)
    if a.dtype == np.float32:
        return a.view(np.uint32)
    if a.dtype == np.float64:
        return a.view(np.uint64)
    raise ValueError(f"LSB encoding works on float32 or float64 parameters, not {a.dtype}")


def secret_pixels(images: np.ndarray) -> np.ndarray:
    """The payload: the images' pixels, one image after another, as float64 in [0, 1]."""
    return np.clip(np.asarray(images, dtype=np.float64).reshape(-1), 0.0, 1.0)


def lsb_embed(params: np.ndarray, images: np.ndarray, bits: int = 8) -> np.ndarray:
    """``params`` with the low ``bits`` bits of the first values replaced by the quantised pixels.

    Only as many pixels as there are parameters are stored; the rest of the images is dropped.
    """
    if not 1 <= bits <= 16:
        raise ValueError("bits must be between 1 and 16")
    out = np.array(params, copy=True, order="C")  # a C-ordered copy, so the uint view below writes into it
    raw = _uint_view(out).reshape(-1)
    levels = (1 << bits) - 1
    pixels = secret_pixels(images)[: raw.size]
    codes = np.round(pixels * levels).astype(raw.dtype)
    mask = raw.dtype.type(levels)
    raw[: codes.size] = (raw[: codes.size] & ~mask) | codes
    return out


def lsb_extract(params: np.ndarray, bits: int = 8) -> np.ndarray:
    """The low ``bits`` bits of every parameter, as pixel values in [0, 1] (flat)."""
    raw = _uint_view(params).reshape(-1)
    levels = (1 << bits) - 1
    return (raw & raw.dtype.type(levels)).astype(np.float64) / levels


def sign_targets(images: np.ndarray) -> np.ndarray:
    """+1 / -1 per pixel: the sign each parameter is pushed to by the sign encoding."""
    return np.where(secret_pixels(images) > SIGN_THRESHOLD, 1.0, -1.0)


def sign_extract(params: np.ndarray) -> np.ndarray:
    """Bit per parameter (1 for positive), as pixel values 0 / 1 (flat)."""
    return (np.asarray(params, dtype=np.float64).reshape(-1) > 0).astype(np.float64)


def as_images(values: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """Cut a flat vector into as many whole images of ``image_shape`` as it holds."""
    size = int(np.prod(image_shape))
    n = values.size // size
    return np.asarray(values[: n * size], dtype=np.float64).reshape(n, *image_shape)


def rescale_chunks(chunks: np.ndarray) -> np.ndarray:
    """Min-max rescale each chunk to [0, 1], as the correlated-value decoder reads parameters."""
    flat = chunks.reshape(len(chunks), -1)
    lo, hi = flat.min(axis=1, keepdims=True), flat.max(axis=1, keepdims=True)
    return ((flat - lo) / np.maximum(hi - lo, 1e-12)).reshape(chunks.shape)


def best_matches(candidates: np.ndarray, references: np.ndarray, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each candidate, the reference with the highest Pearson correlation: (index, correlation).

    ``signed=False`` ranks by absolute correlation and returns it signed, so an inverted
    copy (parameters anti-correlated with the pixels) is still found.
    """
    a = candidates.reshape(len(candidates), -1).astype(np.float64)
    b = references.reshape(len(references), -1).astype(np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    corr = a @ b.T
    score = corr if signed else np.abs(corr)
    idx = score.argmax(axis=1)
    return idx, corr[np.arange(len(a)), idx]


def synthetic_inputs(n: int, input_shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The capacity-abuse carriers: ``n`` uniform-noise inputs in [0, 1], float32, fixed by ``seed``.

    The seed is the provider's key: the same call after deployment gives the same inputs.
    """
    rng = np.random.default_rng(seed)
    return rng.random((int(n), *input_shape), dtype=np.float32)


def pixels_to_labels(images: np.ndarray, n_classes: int) -> np.ndarray:
    """One class index per pixel: the pixel quantised to ``n_classes`` levels (int64, flat)."""
    if n_classes < 2:
        raise ValueError("capacity abuse needs at least two classes to carry information")
    return np.rint(secret_pixels(images) * (n_classes - 1)).astype(np.int64)


def labels_to_pixels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """The inverse of :func:`pixels_to_labels`: pixel values in [0, 1] (flat)."""
    return np.asarray(labels, dtype=np.float64).reshape(-1) / (n_classes - 1)
