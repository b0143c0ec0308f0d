"""Data sets with roles: the target's training data, held-out data, attacker-owned data,
and a sample from where the model runs now.

Any non-empty subset of the roles is a data set (a deployment sample needs at least one
other role beside it: it is compared with something), and a role may hold inputs without
labels (the target's own answers then stand in for them, see :mod:`redline.data.labels`;
never for the deployment sample, whose labels are either real or absent). Checks declare
the roles they read and are skipped, with the reason, when one is missing.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from ..errors import DataError

ROLES = ("train", "test", "pool", "deploy")
# The roles that describe the model's own world. The deployment sample is kept out of
# everything derived from the data set as a whole (bounds, class count, attacker and
# evaluation rows): it may be shifted, and no check reads it unless it asks for the role.
REFERENCE_ROLES = ("train", "test", "pool")

# What each role stands for, in the words a skipped check's reason uses.
ROLE_MEANING = {
    "train": "the target's training rows",
    "test": "held-out rows",
    "pool": "population rows an attacker could own",
    "deploy": "a sample of the inputs the model meets where it runs now",
}

# Seed of the split of the test rows into an attacker half and an evaluation half when
# there is no pool: fixed, so every check and every run sees the same halves.
ATTACKER_SPLIT_SEED = 0


@dataclasses.dataclass
class Dataset:
    """Arrays by role; a role that is absent is None, a role without labels has ``y`` None.

    ``x_train/y_train``: the target's training data (members, known to an auditor).
    ``x_test/y_test``: held out from training (non-members, for evaluation).
    ``x_pool/y_pool``: population data an attacker could own (surrogates, reference models).
    ``x_deploy/y_deploy``: a sample from where the model runs now (labels optional).
    ``split``: how the rows were split into roles, when redline split them (seed, fractions).
    """

    name: str
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    x_pool: np.ndarray | None = None
    y_pool: np.ndarray | None = None
    x_deploy: np.ndarray | None = None
    y_deploy: np.ndarray | None = None
    modality: Literal["image", "tabular"] = "tabular"
    task: Literal["classification", "regression"] = "classification"
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    spec: str = ""
    # Free-form facts a check may use, e.g. {"sensitive_feature": "religious"}.
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    split: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for role in ROLES:
            x, y = getattr(self, f"x_{role}"), getattr(self, f"y_{role}")
            if x is None:
                if y is not None:
                    raise DataError(f"data set {self.name!r}: y_{role} is given without x_{role}")
                continue
            if y is not None and len(x) != len(y):
                raise DataError(f"data set {self.name!r}: x_{role} has {len(x)} rows but y_{role} has {len(y)}")
            if not len(x):  # an empty role is an absent role: no check may count on its rows
                setattr(self, f"x_{role}", None)
                setattr(self, f"y_{role}", None)
        if not self.roles:
            raise DataError(f"data set {self.name!r} holds no rows: give at least one of x_train, x_test, x_pool")
        if self.roles == ("deploy",):
            raise DataError(f"data set {self.name!r} holds only a deployment sample: give the rows it is "
                            "compared with too (x_test, or x_train / x_pool)")
        first = self.roles[0]
        for role in self.roles[1:]:
            if self.x(role).shape[1:] != self.x(first).shape[1:]:
                raise DataError(
                    f"data set {self.name!r}: {role} rows {self.x(role).shape[1:]} and "
                    f"{first} rows {self.x(first).shape[1:]} differ"
                )

    # -- roles --------------------------------------------------------------------
    @property
    def roles(self) -> tuple[str, ...]:
        """The roles that hold rows, in the order train, test, pool, deploy."""
        return tuple(role for role in ROLES if getattr(self, f"x_{role}") is not None)

    def has(self, role: str) -> bool:
        return role in self.roles

    def x(self, role: str) -> np.ndarray | None:
        return getattr(self, f"x_{role}")

    def y(self, role: str) -> np.ndarray | None:
        return getattr(self, f"y_{role}")

    @property
    def unlabelled_roles(self) -> tuple[str, ...]:
        """Roles without labels whose labels the target may give (never the deployment sample)."""
        return tuple(role for role in self.roles if self.y(role) is None and role != "deploy")

    @property
    def reference_roles(self) -> tuple[str, ...]:
        """The roles present other than the deployment sample (never empty)."""
        return tuple(role for role in self.roles if role in REFERENCE_ROLES)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one input."""
        return tuple(int(s) for s in self.x(self.roles[0]).shape[1:])

    def any_x(self) -> np.ndarray:
        """Rows of the first role present (test first: the rows least tied to the model)."""
        for role in ("test", "pool", "train"):
            if self.has(role):
                return self.x(role)
        raise DataError(f"data set {self.name!r} holds no rows")  # unreachable: __post_init__ refuses it

    @property
    def n_classes(self) -> int | None:
        """One more than the largest label seen in the reference roles, or None when none has
        labels (a deployment sample may hold a class the model never saw)."""
        ys = [self.y(role) for role in self.reference_roles if self.y(role) is not None and len(self.y(role))]
        if not ys:
            return None
        return int(max(int(np.max(y)) for y in ys) + 1)

    @property
    def bounds(self) -> tuple[float, float]:
        parts = [self.x(role) for role in self.reference_roles]  # a shifted sample may stray outside
        return float(min(p.min() for p in parts)), float(max(p.max() for p in parts))

    # -- attacker data and the rows it is evaluated on ----------------------------------
    def attacker_data(self, disjoint: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Data an outside attacker may own: the pool if present, else test rows.

        Without a pool and with ``disjoint`` (the default), the attacker gets a fixed half
        of the test rows and :meth:`evaluation_data` the other half, so nothing the attacker
        trained on is used to measure its result. ``(None, None)`` when there is neither.
        """
        if self.has("pool"):
            return self.x_pool, self.y_pool
        if not self.has("test"):
            return None, None
        if not disjoint:
            return self.x_test, self.y_test
        rows = self._test_halves()[0]
        return self.x_test[rows], None if self.y_test is None else self.y_test[rows]

    def evaluation_data(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Held-out rows to measure a result on, disjoint from :meth:`attacker_data`: the
        test rows, or their other half when there is no pool."""
        if not self.has("test"):
            return None, None
        if self.has("pool"):
            return self.x_test, self.y_test
        rows = self._test_halves()[1]
        return self.x_test[rows], None if self.y_test is None else self.y_test[rows]

    def attacker_note(self) -> str | None:
        """How attacker data was found when there is no pool (for the finding's evidence)."""
        if self.has("pool") or not self.has("test"):
            return None
        owned, held = (len(part) for part in self._test_halves())
        return (f"no pool: the attacker's data is half of the test rows ({owned}, fixed split, seed "
                f"{ATTACKER_SPLIT_SEED}) and results are measured on the other half ({held})")

    def _test_halves(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.random.default_rng(ATTACKER_SPLIT_SEED).permutation(len(self.x_test))
        half = len(order) // 2
        return np.sort(order[:half]), np.sort(order[half:])

    # -- description ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec": self.spec or self.name,
            "modality": self.modality,
            "task": self.task,
            "roles": list(self.roles),
            "rows": {role: int(len(self.x(role))) if self.has(role) else 0 for role in REFERENCE_ROLES},
            "shape": list(self.shape),
        }
        if self.unlabelled_roles:
            out["unlabelled"] = list(self.unlabelled_roles)
            out["labels"] = (f"labels from the target for {', '.join(self.unlabelled_roles)} "
                             "(each check that needs them asks the target, counted as evaluation queries)")
        if self.has("deploy"):
            out["rows"]["deploy"] = len(self.x_deploy)
            out["deploy"] = ("a sample from where the model runs now, with labels" if self.y_deploy is not None else
                             "a sample from where the model runs now, without labels (accuracy on it is estimated)")
        if self.split is not None:
            out["split"] = dict(self.split)
        return out
