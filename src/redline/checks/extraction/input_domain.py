"""The space an attacker may query, feature by feature: categorical codes, integers, or intervals.

Stealing attacks explore the target's input space and measure fidelity on uniform random
inputs, so they need to know what each feature may take. The target's declared constraints
come first (categorical values, integer features, per-feature ranges); otherwise a feature
with few distinct values in the attacker's data is taken as categorical, an integral one
as integer, and any other as continuous between the data's minimum and maximum. Every
range is clipped to the input spec's bounds for that feature (``InputSpec.feature_bounds``).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ...targets.base import InputSpec

CATEGORICAL = "categorical"
INTEGER = "integer"
CONTINUOUS = "continuous"


@dataclasses.dataclass(frozen=True)
class FeatureDomain:
    """What one flat feature may take: ``values`` (sorted) for categorical ones, else [lower, upper]."""

    kind: str
    lower: float
    upper: float
    values: tuple[float, ...] = ()

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == CATEGORICAL:
            return rng.choice(np.asarray(self.values), size=n)
        if self.kind == INTEGER:
            return rng.integers(int(np.ceil(self.lower)), int(np.floor(self.upper)) + 1, size=n).astype(np.float64)
        return rng.uniform(self.lower, self.upper, size=n)


@dataclasses.dataclass(frozen=True)
class InputDomain:
    """One :class:`FeatureDomain` per flat feature of inputs shaped ``shape``."""

    shape: tuple[int, ...]
    features: tuple[FeatureDomain, ...]

    @property
    def n_features(self) -> int:
        return len(self.features)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` inputs drawn uniformly and independently per feature, flat (n, d) float64."""
        if all(f.kind == CONTINUOUS for f in self.features):  # the image case: one batched draw
            lo = np.array([f.lower for f in self.features])
            hi = np.array([f.upper for f in self.features])
            return rng.uniform(lo, hi, size=(n, len(lo)))
        return np.stack([f.sample(rng, n) for f in self.features], axis=1) if n else np.zeros((0, self.n_features))

    def kinds(self) -> dict[str, int]:
        counts = {CATEGORICAL: 0, INTEGER: 0, CONTINUOUS: 0}
        for f in self.features:
            counts[f.kind] += 1
        return counts


def infer_domain(spec: InputSpec, x_reference: np.ndarray | None, max_categories: int = 10) -> InputDomain:
    """The per-feature domain from ``spec`` (bounds, constraints) and the attacker's data.

    ``max_categories``: a feature with at most this many distinct values in ``x_reference``
    (and no declared kind) is treated as categorical with those values.
    """
    d = spec.n_features
    flat = None if x_reference is None or not len(x_reference) else np.asarray(x_reference, np.float64).reshape(len(x_reference), -1)
    constraints = spec.constraints
    categorical = {i: tuple(sorted(set(v))) for i, v in constraints.categorical}
    integer = set(constraints.integer)
    ranges = {i: (lo, hi) for i, lo, hi in constraints.ranges}
    # Images: every pixel spans the spec's bounds (a pixel that is always dark in the data
    # may still be set), so only tables are scanned for per-feature ranges and kinds.
    scan = flat is not None and len(spec.shape) <= 1
    # Each feature's bounds as the spec states them (its own, else the shared range; a
    # ranges constraint replaces either), which the attacker's data may only narrow.
    bound_lo, bound_hi = spec.feature_bounds()
    features = []
    for i in range(d):
        lo, hi = ranges.get(i, (None, None))
        column = flat[:, i] if scan else None
        if lo is None:
            lo, hi = (float(column.min()), float(column.max())) if column is not None else (bound_lo[i], bound_hi[i])
        lo, hi = max(float(lo), float(bound_lo[i])), min(float(hi), float(bound_hi[i]))
        if hi < lo:
            lo, hi = float(bound_lo[i]), float(bound_hi[i])
        if i in categorical:
            features.append(FeatureDomain(CATEGORICAL, min(categorical[i]), max(categorical[i]), categorical[i]))
            continue
        distinct = np.unique(column) if scan else None
        if i not in integer and distinct is not None and len(distinct) <= max_categories:
            values = tuple(float(v) for v in distinct if lo <= v <= hi) or (lo,)
            features.append(FeatureDomain(CATEGORICAL, min(values), max(values), values))
        elif i in integer or (distinct is not None and np.all(distinct == np.round(distinct))):
            features.append(FeatureDomain(INTEGER, float(np.ceil(lo)), float(np.floor(hi))))
        else:
            features.append(FeatureDomain(CONTINUOUS, lo, hi))
    return InputDomain(tuple(int(s) for s in spec.shape), tuple(features))
