"""Outlier statistics shared by backdoor detectors: MAD anomaly indices and flag scoring."""
from __future__ import annotations

from typing import Any

import numpy as np

# Scales the median absolute deviation to the standard deviation of a normal distribution.
MAD_CONSISTENCY = 1.4826


def mad_anomaly_index(values: np.ndarray) -> np.ndarray:
    """Signed distance of each value from the median in robust standard deviations.

    Negative for values below the median. When at least half the values coincide (MAD 0),
    the deviation is floored at 1e-6 of the median's magnitude so a lone outlier still
    stands out instead of dividing by zero.
    """
    values = np.asarray(values, dtype=np.float64)
    median = np.median(values)
    mad = MAD_CONSISTENCY * np.median(np.abs(values - median))
    floor = max(1e-6 * abs(median), 1e-12)
    return (values - median) / max(mad, floor)


def score_flags(flagged: np.ndarray, poisoned_indices: Any, n: int) -> dict[str, Any]:
    """Precision and recall of flagged rows against the known poisoned rows.

    ``flagged`` is a boolean mask over ``n`` rows; ``poisoned_indices`` the ground truth or
    None (then only the count is reported). A metric whose denominator is zero is None.
    """
    flagged = np.asarray(flagged, dtype=bool)
    out: dict[str, Any] = {"flagged_samples": int(flagged.sum())}
    if poisoned_indices is None:
        return out
    truth = np.zeros(n, dtype=bool)
    truth[np.asarray(poisoned_indices, dtype=np.int64)] = True
    hits = int((flagged & truth).sum())
    out["precision"] = hits / int(flagged.sum()) if flagged.any() else None
    out["recall"] = hits / int(truth.sum()) if truth.any() else None
    out["poisoned_samples"] = int(truth.sum())
    return out
