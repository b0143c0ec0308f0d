"""The perturbation budget evasion checks use when the user gives none.

One definition for every FM01/FM07 check, so white-box and black-box results compare.
It scales with the input range (and, for L2, with the dimension): 0.2 of the range per
feature for L-inf — the strength the zoo's adversarially trained twin was trained for —
and 10% of the range-diagonal for L2 (2.8 on 28x28 images in [0, 1]).
"""
from __future__ import annotations

import math

LINF_FRACTION = 0.2
L2_FRACTION = 0.1


def default_epsilon(spec, norm: str) -> float:
    span = float(spec.upper - spec.lower) or 1.0
    if norm == "linf":
        return LINF_FRACTION * span
    if norm == "l2":
        return L2_FRACTION * span * math.sqrt(spec.n_features)
    raise ValueError(f"norm must be 'linf' or 'l2', not {norm!r}")


def resolve_epsilon(epsilon: float | None, spec, norm: str) -> float:
    """The user's epsilon (validated) or the default."""
    if epsilon is None:
        return default_epsilon(spec, norm)
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    return float(epsilon)
