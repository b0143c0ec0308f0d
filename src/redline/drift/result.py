"""The answer of one shift test: a verdict, its p-value and what led to it."""
from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class ShiftTest:
    """One batch tested against the reference.

    ``p_value`` is the p-value of the whole decision (already corrected for every feature,
    output dimension and method that took part), so ``shifted`` is ``p_value <= alpha``.
    ``statistic`` is the statistic of the test that decided (the one with the smallest
    p-value). ``per_feature`` lists the univariate tests on the inputs (or on the model's
    outputs when only those were tested): ``feature``, ``test``, ``statistic``, ``p`` and
    ``p_adjusted``; it is None when no univariate test ran. ``details`` holds each
    method's own result and the sizes used.
    """

    shifted: bool
    p_value: float
    statistic: float
    method: str
    per_feature: list[dict] | None
    details: dict

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (numpy scalars become Python numbers, NaN becomes None)."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if hasattr(value, "item") and not isinstance(value, (int, float)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (int, float, bool)):
        return value
    return str(value)
