"""Data sets with roles: the target's training data, held-out data, and attacker-owned data."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from ..errors import DataError


@dataclasses.dataclass
class Dataset:
    """Arrays by role.

    ``x_train/y_train``: the target's training data (members, known to an auditor).
    ``x_test/y_test``: held out from training (non-members, for evaluation).
    ``x_pool/y_pool``: population data an attacker could own (surrogates, reference models).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_pool: np.ndarray | None = None
    y_pool: np.ndarray | None = None
    modality: Literal["image", "tabular"] = "tabular"
    task: Literal["classification", "regression"] = "classification"
    feature_names: list[str] | None = None
    class_names: list[str] | None = None
    spec: str = ""
    # Free-form facts a check may use, e.g. {"sensitive_feature": "religious"}.
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for role in ("train", "test", "pool"):
            x, y = getattr(self, f"x_{role}"), getattr(self, f"y_{role}")
            if x is None and y is None and role == "pool":
                continue
            if x is None or y is None:
                raise DataError(f"data set {self.name!r}: x_{role} and y_{role} must both be given")
            if len(x) != len(y):
                raise DataError(f"data set {self.name!r}: x_{role} has {len(x)} rows but y_{role} has {len(y)}")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"data set {self.name!r}: train rows {self.x_train.shape[1:]} and test rows {self.x_test.shape[1:]} differ"
            )

    @property
    def n_classes(self) -> int:
        ys = [self.y_train, self.y_test] + ([self.y_pool] if self.y_pool is not None else [])
        return int(max(int(np.max(y)) for y in ys if len(y)) + 1)

    @property
    def bounds(self) -> tuple[float, float]:
        parts = [self.x_train, self.x_test] + ([self.x_pool] if self.x_pool is not None else [])
        return float(min(p.min() for p in parts)), float(max(p.max() for p in parts))

    def attacker_data(self) -> tuple[np.ndarray, np.ndarray]:
        """Data an outside attacker may own: the pool if present, else the test split."""
        if self.x_pool is not None and len(self.x_pool):
            return self.x_pool, self.y_pool
        return self.x_test, self.y_test

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec or self.name,
            "modality": self.modality,
            "task": self.task,
            "rows": {
                "train": int(len(self.x_train)),
                "test": int(len(self.x_test)),
                "pool": int(len(self.x_pool)) if self.x_pool is not None else 0,
            },
            "shape": list(self.x_train.shape[1:]),
        }
