"""Near-identical cases: MinHash signatures of shingled, normalised text, banded for lookup.

The text of a case is its mode, check, target, title and summary, lower-cased, with numbers
replaced by ``#`` (a re-run that measured 0.91 instead of 0.93 describes the same failure)
and punctuation dropped. Shingles are overlapping runs of ``SHINGLE`` characters; the
MinHash signature estimates the Jaccard similarity of two shingle sets, and
locality-sensitive banding finds the candidates without comparing every pair.

The threshold was calibrated with benchmarks/bench_registry.py: 300 generated cases, a
re-submission and a paraphrase of each, and 150 different failures of the same check on the
same target. Estimated similarity to the original: paraphrases median 0.72, those different
failures at most 0.48. Precision / recall by threshold: 0.4: 0.990 / 1.000, 0.5: 1.000 /
1.000, 0.6: 1.000 / 0.965, 0.7: 1.000 / 0.822. 0.6 keeps a margin above the highest
different failure (a false merge hides a failure; a missed one only adds a case), and the
store then measured precision 1.000, recall 1.000 on re-submissions and 0.927 on paraphrases.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

SHINGLE = 5  # characters
PERMUTATIONS = 64
BANDS = 16  # of PERMUTATIONS // BANDS rows: candidates from about Jaccard 0.4 on
THRESHOLD = 0.6  # estimated Jaccard at or above which two cases are the same failure
_PRIME = (1 << 31) - 1

_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?")
_NON_WORD = re.compile(r"[^\w#]+")


def normalise(text: str) -> str:
    text = _NUMBER.sub("#", text.lower())
    return " ".join(_NON_WORD.sub(" ", text).split())


def case_text(mode: str, check: str, target: str, title: str, summary: str) -> str:
    return normalise(" ".join(part for part in (mode, check, target, title, summary) if part))


def shingles(text: str) -> set[str]:
    if len(text) <= SHINGLE:
        return {text} if text else set()
    return {text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}


def _coefficients() -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(20261206)  # fixed: signatures stored today must compare with tomorrow's
    a = rng.integers(1, _PRIME, size=PERMUTATIONS, dtype=np.uint64)
    b = rng.integers(0, _PRIME, size=PERMUTATIONS, dtype=np.uint64)
    return a, b


_COEFFICIENTS: tuple[Any, Any] | None = None


def signature(text: str) -> list[int]:
    """PERMUTATIONS minimum hashes of the text's shingles (all 0 for an empty text)."""
    import numpy as np

    global _COEFFICIENTS
    if _COEFFICIENTS is None:
        _COEFFICIENTS = _coefficients()
    a, b = _COEFFICIENTS
    items = shingles(text)
    if not items:
        return [0] * PERMUTATIONS
    hashes = np.fromiter(
        (int.from_bytes(hashlib.blake2b(s.encode(), digest_size=4).digest(), "little") for s in items),
        dtype=np.uint64, count=len(items))
    # (a*x + b) mod p with a, b < 2^31 and x < 2^32: the product stays below 2^63.
    values = (a[:, None] * hashes[None, :] + b[:, None]) % np.uint64(_PRIME)
    return [int(v) for v in values.min(axis=1)]


def bands(sig: Sequence[int]) -> list[str]:
    """One bucket key per band: cases that share a key in some band are candidates."""
    rows = len(sig) // BANDS
    # The band's number is part of its key, so one indexed IN over the keys finds the candidates.
    return [hashlib.blake2b(repr((i, *sig[i * rows:(i + 1) * rows])).encode(), digest_size=8).hexdigest()
            for i in range(BANDS)]


def similarity(sig_a: Sequence[int], sig_b: Sequence[int]) -> float:
    """The MinHash estimate of the Jaccard similarity of two texts."""
    if not sig_a or len(sig_a) != len(sig_b):
        return 0.0
    return sum(x == y for x, y in zip(sig_a, sig_b)) / len(sig_a)
