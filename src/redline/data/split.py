"""Deterministic splits of one labelled array into the train / test / pool roles."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import DataError
from .base import REFERENCE_ROLES

# A split of one table draws every role from the same rows, so a "deployment sample" cut
# from it would match the test rows by construction and could never show a shift.
_NO_DEPLOY_SPLIT = ("a split cannot make the deploy role: deployment rows come from where the model runs now, "
                    "not from the same table; give them as their own file (deploy=SPEC) or x_deploy arrays")


def split_fractions(test: float, pool: float) -> tuple[float, float, float]:
    """(train, test, pool) fractions from the test and pool shares; DataError if they do not fit."""
    for name, value in (("test", test), ("pool", pool)):
        if not 0.0 <= value < 1.0:
            raise DataError(f"{name} fraction must lie in [0, 1), got {value}")
    train = 1.0 - test - pool
    if train <= 0.0:
        raise DataError(f"test ({test}) and pool ({pool}) fractions leave no rows for training")
    return train, test, pool


def parse_split(text: str) -> dict[str, float]:
    """``train:0.6,test:0.2,pool:0.2`` -> role fractions in role order; DataError if malformed.

    Roles left out get no rows; the shares must sum to 1."""
    fractions: dict[str, float] = {}
    for part in text.split(","):
        role, sep, share = part.partition(":")
        role = role.strip()
        if role == "deploy":
            raise DataError(_NO_DEPLOY_SPLIT)
        if not sep or role not in REFERENCE_ROLES:
            raise DataError(f"split takes ROLE:SHARE pairs with roles {', '.join(REFERENCE_ROLES)}, e.g. "
                            f"split=train:0.6,test:0.2,pool:0.2; got {part.strip()!r}")
        if role in fractions:
            raise DataError(f"split names the {role} role twice")
        try:
            fractions[role] = float(share)
        except ValueError:
            raise DataError(f"split share for {role} is not a number: {share.strip()!r}") from None
    check_role_fractions(fractions)
    return {role: fractions[role] for role in REFERENCE_ROLES if role in fractions}


def check_role_fractions(fractions: Mapping[str, float]) -> None:
    """Role shares must name known roles, lie in (0, 1] and sum to 1."""
    if not fractions:
        raise DataError("a split needs at least one ROLE:SHARE")
    for role, share in fractions.items():
        if role == "deploy":
            raise DataError(_NO_DEPLOY_SPLIT)
        if role not in REFERENCE_ROLES:
            raise DataError(f"unknown role {role!r} in a split; roles are {', '.join(REFERENCE_ROLES)}")
        if not 0.0 < share <= 1.0:
            raise DataError(f"the {role} share must lie in (0, 1], got {share}")
    if not np.isclose(sum(fractions.values()), 1.0):
        raise DataError(f"split shares must sum to 1, got {sum(fractions.values()):g}")


def split_indices(
    y: np.ndarray, fractions: Sequence[float], seed: int, *, stratify: bool = True
) -> list[np.ndarray]:
    """Row indices for each share in ``fractions`` (which sum to 1), disjoint and covering all rows.

    Part sizes are ``fractions * len(y)`` rounded, so they add up exactly. With ``stratify``
    every class is split in the same proportions (to within one row), so a small role still
    sees every class: each row gets its quantile within its class (after a shuffle), rows are
    ordered by that quantile, and the parts are cut from that order. The same ``y``,
    fractions and seed give the same split.
    """
    fractions = np.asarray(fractions, dtype=np.float64)
    if fractions.ndim != 1 or np.any(fractions < 0) or not np.isclose(fractions.sum(), 1.0):
        raise DataError(f"split fractions must be non-negative and sum to 1, got {fractions.tolist()}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    n = len(y)
    quantile = np.empty(n)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(n)]
    for members in groups:
        quantile[rng.permutation(members)] = (np.arange(len(members)) + 0.5) / len(members)
    order = np.lexsort((rng.random(n), quantile))  # random tie-break between classes
    cuts = np.floor(np.cumsum(fractions) * n + 0.5).astype(int)
    parts = np.split(order, np.minimum(cuts[:-1], n))
    # Shuffle within each role so the classes interleave instead of following the quantiles.
    return [rng.permutation(part) for part in parts]
