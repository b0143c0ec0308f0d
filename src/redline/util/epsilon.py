"""The perturbation budget of the evasion checks (FM01, FM07), feature by feature.

**Units.** An evasion check's ``epsilon`` is measured in units of each feature's range: a
perturbation ``delta`` has size ``|| delta_j / (upper_j - lower_j) ||`` (L-inf or L2 over
the features j). At L-inf ``epsilon`` 0.2 every feature may move by a fifth of its own
range: 0.2 on an image pixel in [0, 1], 0.01 on a column 0.05 wide, 800 on a column 4000
wide. One absolute number cannot say "a small change" for columns in raw units that differ
by five orders of magnitude, and a user-set ``epsilon`` means the same as the default.
Ranges come from :meth:`redline.targets.base.InputSpec.feature_bounds`: the target config's
``input: {lower, upper}`` (numbers, or one per feature) and ``constraints.ranges``, else
each column's minimum and maximum in the data (tables), else the shared pixel range (images,
so pixel-range images, [0, 1], see exactly the absolute budget they always saw).

**Defaults** (the same for every FM01/FM07 check, white or black box, so their results
compare): L-inf 0.2 of each feature's range, the strength the zoo's adversarially trained
MNIST twin was trained for and close to the usual 0.3 of MNIST robustness benchmarks. L2 on
images (one shared range): 0.1 * sqrt(d), a tenth of the range-diagonal of d pixels (2.8 on
28x28 images). L2 on tables (features with ranges of their own): 0.2, the L-inf budget. A
table's columns are different quantities, not pixels of one signal, and an L2 ball of
0.1 * sqrt(d) would let an attacker spend it all on one column and move it by half its
range (d = 21) or more: rewriting the record, not perturbing it. At 0.2 no column moves
further than the L-inf default allows, and a change spread over k columns moves each by
0.2 / sqrt(k) of its range.

:class:`FeatureUnits` maps inputs into those units (``z = (x - lower) / range``) and back,
so an attack written for one shared range and one scalar epsilon (a step, a projection, a
random start) moves every feature in proportion to its own range.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

LINF_FRACTION = 0.2
L2_FRACTION = 0.1
UNITS = "fraction of each feature's range"


def default_epsilon_units(spec, norm: str) -> float:
    """The default epsilon in range units (see the module docstring)."""
    if norm == "linf":
        return LINF_FRACTION
    if norm == "l2":
        if getattr(spec, "per_feature", False):  # a table: see the module docstring
            return LINF_FRACTION
        return L2_FRACTION * math.sqrt(spec.n_features)
    raise ValueError(f"norm must be 'linf' or 'l2', not {norm!r}")


def epsilon_units(epsilon: float | None, spec, norm: str) -> float:
    """The user's epsilon (validated; in range units) or the default."""
    if epsilon is None:
        return default_epsilon_units(spec, norm)
    if not 0 < float(epsilon) < float("inf"):
        raise ValueError("epsilon must be positive and finite")
    return float(epsilon)


def default_epsilon(spec, norm: str) -> float:
    """The default in input units for one shared range: ``default_epsilon_units`` times the
    spec's overall span. Kept for checks that perturb whole inputs in absolute units (FM02
    feature collision); evasion checks use :class:`FeatureUnits`."""
    return default_epsilon_units(spec, norm) * (float(spec.upper - spec.lower) or 1.0)


def resolve_epsilon(epsilon: float | None, spec, norm: str) -> float:
    """The user's epsilon (validated, absolute) or :func:`default_epsilon`."""
    if epsilon is None:
        return default_epsilon(spec, norm)
    if not epsilon > 0:
        raise ValueError("epsilon must be positive")
    return float(epsilon)


#: The metrics :meth:`FeatureUnits.describe` adds to a finding.
EPSILON_METRICS = ("epsilon_units", "epsilon_abs_min", "epsilon_abs_median", "epsilon_abs_max")


def units_note(units: "FeatureUnits") -> str:
    """What a summary adds after an epsilon when features have ranges of their own."""
    return "" if units.shared is not None else " of each feature's range"


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureUnits:
    """Per-feature bounds of an input spec, and the map into range units.

    ``lower``, ``upper`` and ``scale`` (the range, 1 where a feature has none: it is pinned
    by its bounds anyway) are float64 arrays shaped like one input. ``identity`` is True when
    the map changes nothing (every feature in [0, 1]); then no array is converted at all, so
    image attacks stay bit for bit what they were.
    """

    lower: np.ndarray
    upper: np.ndarray
    scale: np.ndarray
    identity: bool
    shared: tuple[float, float] | None = None  # the one range of every feature, if they share one

    @classmethod
    def from_spec(cls, spec) -> "FeatureUnits":
        lo, hi = spec.feature_bounds()
        shape = tuple(spec.shape)
        span = hi - lo
        scale = np.where(span > 0, span, 1.0)
        identity = bool(np.all(lo == 0.0) and np.all(scale == 1.0))
        shared = None if spec.per_feature else (float(spec.lower), float(spec.upper))
        return cls(lo.reshape(shape), hi.reshape(shape), scale.reshape(shape), identity, shared)

    # -- numpy ------------------------------------------------------------------------
    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """Inputs in range units (float64; unchanged when ``identity``)."""
        if self.identity:
            return x
        return (np.asarray(x, np.float64) - self.lower) / self.scale

    def from_unit(self, z: np.ndarray, dtype: Any = None) -> np.ndarray:
        """Inputs back in the target's units, cast to ``dtype`` when given."""
        x = z if self.identity else np.asarray(z, np.float64) * self.scale + self.lower
        return x if dtype is None else np.asarray(x).astype(dtype, copy=False)

    def unit_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's bounds in range units: [0, 1], or [0, 0] for a feature with no range."""
        return self.to_unit(self.lower), self.to_unit(self.upper)

    def clip(self, x: np.ndarray) -> np.ndarray:
        """``x`` (target units, a batch) clipped to each feature's bounds, dtype kept."""
        if self.shared is not None:  # one range: scalar bounds, as cheap as clipping gets
            return np.clip(x, *self.shared)
        return np.clip(x, self.lower, self.upper).astype(np.asarray(x).dtype, copy=False)

    def size(self, delta: np.ndarray, norm: str) -> np.ndarray:
        """Per row: the size of ``delta`` (target units) in range units."""
        from .norms import l2, linf

        scaled = delta if self.identity else np.asarray(delta, np.float64) / self.scale
        return (linf if norm == "linf" else l2)(scaled)

    # -- torch ------------------------------------------------------------------------
    def for_torch(self, torch) -> "TorchUnits":
        """The same map on torch tensors, for gradient attacks that run in range units."""
        return TorchUnits(self, torch)

    # -- what a finding records -------------------------------------------------------
    def describe(self, epsilon: float, max_listed: int = 64) -> tuple[dict[str, Any], dict[str, Any]]:
        """(metrics, evidence) stating the effective budget in target units.

        Metrics: ``epsilon_units`` and the smallest, median and largest per-feature epsilon in
        target units (L-inf: how far that feature may move; L2: how far it may move when the
        whole budget goes to it). Evidence: the per-feature list, for inputs of at most
        ``max_listed`` features whose ranges differ (a table; images share one range).
        """
        per = (epsilon * (self.upper - self.lower)).reshape(-1)
        metrics: dict[str, Any] = {
            "epsilon_units": UNITS,
            "epsilon_abs_min": float(per.min()) if per.size else 0.0,
            "epsilon_abs_median": float(np.median(per)) if per.size else 0.0,
            "epsilon_abs_max": float(per.max()) if per.size else 0.0,
        }
        evidence: dict[str, Any] = {}
        if 0 < per.size <= max_listed and not np.all(per == per[0]):
            evidence["epsilon_per_feature"] = [float(v) for v in per]
        return metrics, evidence


class TorchUnits:
    """:class:`FeatureUnits` on torch tensors. Points in range units are float64 (float32 when
    the map is the identity, as image attacks always were), so a 4000-wide raw column keeps
    its precision through ``z -> x`` and back. ``lower``/``upper`` are each feature's bounds
    in range units: plain numbers when every feature shares one range, else tensors."""

    def __init__(self, units: FeatureUnits, torch):
        self.units = units
        self.torch = torch
        self.dtype = torch.float32 if units.identity else torch.float64
        if units.shared is not None:
            lo, hi = units.shared
            self.lower, self.upper = (lo, hi) if units.identity else (0.0, 1.0 if hi > lo else 0.0)
        else:
            lo, hi = units.unit_bounds()
            self.lower = torch.as_tensor(np.asarray(lo), dtype=self.dtype)
            self.upper = torch.as_tensor(np.asarray(hi), dtype=self.dtype)
        self._scale = torch.as_tensor(units.scale, dtype=self.dtype)
        self._shift = torch.as_tensor(units.lower, dtype=self.dtype)

    def to_unit(self, x: np.ndarray):
        """A numpy batch in target units -> a tensor in range units."""
        return self.torch.from_numpy(np.ascontiguousarray(self.units.to_unit(x), dtype=np.float64)).to(self.dtype)

    def to_target(self, z):
        """A tensor in range units -> the same points in target units (differentiable)."""
        return z if self.units.identity else z * self._scale + self._shift

    def to_numpy(self, z, dtype) -> np.ndarray:
        """A tensor in range units -> a numpy batch in target units of ``dtype``."""
        return self.units.from_unit(z.detach().numpy(), dtype)

    def clamp(self, z):
        return z.clamp(self.lower, self.upper)

    def project_constraints(self, z, x0: np.ndarray, constraints):
        """Feature constraints (immutable, integer, categorical, ranges) applied in target
        units around the originals ``x0``, the result back in range units."""
        x = constraints.project(self.to_numpy(z, np.float64), np.asarray(x0, np.float64))
        return self.to_unit(x)
