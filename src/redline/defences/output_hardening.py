"""Output hardening that keeps probabilities but gives less away (see also
:mod:`~redline.defences.rounding` and :mod:`~redline.defences.labels_only`).

* :class:`TopK` (policy key ``top_k``): keep the ``k`` largest probabilities of each row and
  set the others to 0. With ``renormalise: true`` (the default) the kept ones are scaled to
  sum to 1, so the answer is still a distribution; with ``false`` they keep their values and
  the row sums to less than 1 (the client sees how much mass was hidden). Either way the
  classes outside the top k, whose small values feed equation-solving extraction and
  confidence-based inversion, are gone; ``k: 1`` with renormalising is labels as one-hot rows.
* :class:`ConfidenceNoise` (policy key ``noise``): perturb each row's probabilities while
  keeping its top class, so every client still gets the right label and a usable
  confidence, but exact values (what equation solving and gradient estimation from tiny
  differences need) are blurred.
"""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence

# The standard deviation of the standard logistic distribution, pi / sqrt(3).
_LOGISTIC_SD = np.pi / np.sqrt(3.0)


def _needs_probabilities(key: str, target: Target) -> None:
    if target.capabilities.outputs != "probabilities":
        raise UsageError(f"{key}: {target.spec} answers labels only; there are no probabilities to harden")


class TopK(Defence):
    """Keep each row's ``k`` largest probabilities; zero the rest (renormalised by default)."""

    policy_key = "top_k"

    def __init__(self, k: int = 1, renormalise: bool = True):
        self.k = k
        self.renormalise = renormalise

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"top{self.k}"

    def check(self, target: Target) -> None:
        _needs_probabilities("top_k", target)
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise UsageError(f"top_k: k must be a whole number of at least 1, not {self.k!r}")
        if target.n_classes is not None and self.k >= target.n_classes:  # a service may not say until it answers
            raise UsageError(f"top_k: k={self.k} keeps all {target.n_classes} classes of {target.spec}, "
                             "so it would change nothing; use a k below the number of classes")
        if not isinstance(self.renormalise, bool):
            raise UsageError(f"top_k: renormalise must be true or false, not {self.renormalise!r}")

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, np.float64)
        if scores.ndim != 2:
            return scores
        # Stable sort of the negated scores: among equal values the lower class index is kept.
        keep = np.argsort(-scores, axis=1, kind="stable")[:, : int(self.k)]
        out = np.zeros_like(scores)
        np.put_along_axis(out, keep, np.take_along_axis(scores, keep, axis=1), axis=1)
        if self.renormalise:
            total = out.sum(axis=1, keepdims=True)
            out = np.divide(out, total, out=np.zeros_like(out), where=total > 0)
        return out


class ConfidenceNoise(Defence):
    """Multiply each probability by ``exp(noise)`` (noise of standard deviation ``scale`` in
    log space), renormalise, and keep the top class where it was.

    The noise of a row is a function of the row itself and ``seed``, not a fresh draw.
    Fresh noise on every query would be undone by asking the same question many times and
    averaging the answers (the mean converges on the true probabilities); answering the
    same input with the same noise leaves nothing to average. An attacker can still query
    many *nearby* inputs and average those, which costs queries the stateful detectors
    see. Keep ``seed`` as secret as an API key: whoever knows it can recompute the noise.
    """

    policy_key = "noise"

    def __init__(self, scale: float = 0.1, seed: int = 0):
        self.scale = scale
        self.seed = seed

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"noise{self.scale:g}"

    def check(self, target: Target) -> None:
        _needs_probabilities("noise", target)
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)) or not 0 < self.scale <= 10:
            raise UsageError(f"noise: scale must be a number in (0, 10], not {self.scale!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise UsageError(f"noise: seed must be a whole number of at least 0, not {self.seed!r}")

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, np.float64)
        if scores.ndim != 2 or not len(scores):
            return scores
        noise = self._noise(np.asarray(x), scores.shape[1])
        out = np.clip(scores, 0.0, None) * np.exp(float(self.scale) * noise)
        out /= np.maximum(out.sum(axis=1, keepdims=True), np.finfo(np.float64).tiny)
        # Keep the label: where the noise lifted another class to the top, swap the two
        # values, so the row keeps the same set of values and its original top class wins.
        top, new_top = scores.argmax(axis=1), out.argmax(axis=1)
        rows = np.flatnonzero(top != new_top)
        if len(rows):
            high = out[rows, new_top[rows]].copy()
            out[rows, new_top[rows]] = out[rows, top[rows]]
            out[rows, top[rows]] = high
        return out

    def _noise(self, x: np.ndarray, k: int) -> np.ndarray:
        """Unit-variance logistic noise, ``k`` values per row, from a hash of the row and the seed."""
        rows = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float64)
        key = int(self.seed).to_bytes(8, "little")
        words = np.frombuffer(
            b"".join(hashlib.shake_256(key + row.tobytes()).digest(8 * k) for row in rows), dtype="<u8"
        ).reshape(len(rows), k)
        uniform = ((words >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)  # in (0, 1)
        return np.log(uniform / (1.0 - uniform)) / _LOGISTIC_SD
