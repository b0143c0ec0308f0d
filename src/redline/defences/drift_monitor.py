"""Drift monitoring of live inputs: test each window of traffic against a reference sample.

``reference`` is a DATA spec (``npz:ref.npz``, ``csv:ref.csv#unlabelled=true``,
``builtin:NAME``) or a path to an ``.npz`` file, resolved in :meth:`DriftMonitor.check`
with :func:`redline.data.load_data`. Its reference rows (train, test and pool roles, never a
deployment sample; at most ``max_reference`` of them, drawn with ``seed``) fit a
:class:`~redline.drift.ShiftDetector` on the inputs alone (``method`` as the detector takes it;
``auto`` is the per-feature tests plus the kernel test).

Every answered row is buffered; each time ``window`` more rows have arrived, the last
``window`` rows are tested. A window whose p-value is at most ``alpha`` is a shift: the
defence records a ``shift_detected`` event (the guard writes it to the audit log) and the
gauge ``drift_shift_detected`` turns 1 until a later window tests clean. It never refuses
or changes a request: a shift says the model may be wrong more often, not that this client
did anything wrong.

The buffer, the row count and the last result live in the shared
:class:`~redline.defences.state.StateStore` under one key for all clients (drift is a
property of the whole traffic, not of one account), so every worker of a guard feeds one
buffer and reports the same numbers. Without a server (``redline scan --defend``) the
buffer lives in this process. The detector itself is fitted in every process (it is a
deterministic function of the reference and ``seed``).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..errors import DataError, UsageError
from ..targets.base import Target
from .base import Defence, emit
from .reference import reference_rows
from .state import MemoryState, StateStore


class DriftMonitor(Defence):
    """Test every ``window`` live rows against ``reference``; report, never refuse."""

    name = "drift_monitor"
    policy_key = "drift_monitor"

    def __init__(self, reference: str | None = None, window: int = 500, alpha: float = 0.05,
                 method: str = "auto", max_reference: int = 2000, seed: int = 0):
        self.reference = reference
        self.window = window
        self.alpha = alpha
        self.method = method
        self.max_reference = max_reference
        self.seed = seed
        self._state: StateStore | None = None

    def check(self, target: Target) -> None:
        if not isinstance(self.reference, str) or not self.reference.strip():
            raise UsageError("drift_monitor: reference must name a data set (npz:PATH, csv:PATH#unlabelled=true, builtin:NAME)")
        for name, least in (("window", 5), ("max_reference", 20)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise UsageError(f"drift_monitor: {name} must be a whole number of at least {least}, not {value!r}")
        if getattr(self, "_fronts_", None) == tuple(target.input_spec.shape):
            return  # fitted already (check runs again when a server binds the defence)
        from ..drift import ShiftDetector

        rows = reference_rows(self.reference, int(self.max_reference), int(self.seed), "drift_monitor")
        if tuple(rows.shape[1:]) != tuple(target.input_spec.shape):
            raise UsageError(f"drift_monitor: the reference rows have shape {list(rows.shape[1:])}, "
                             f"{target.spec} takes {list(target.input_spec.shape)} (a guard policy states it as input:)")
        try:
            self._detector_ = ShiftDetector(method=self.method, alpha=self.alpha, seed=self.seed).fit(rows)
        except DataError as exc:
            raise UsageError(f"drift_monitor: {exc}") from None
        self._prefix_ = "drift_monitor:" + hashlib.sha256(self.reference.encode()).hexdigest()[:12]
        self._fronts_ = tuple(target.input_spec.shape)
        if self._state is None:
            self._state = MemoryState()

    def for_client(self, client: str, state: StateStore) -> DriftMonitor:
        # One buffer for the whole traffic: every client feeds the same store keys.
        self._state = state
        return self

    def observe(self, x: np.ndarray, answer: np.ndarray) -> None:
        if not len(x):
            return
        window = int(self.window)
        flat = np.asarray(x, np.float64).reshape(len(x), -1)
        self._state.push(self._prefix_ + ":rows", [row.tobytes() for row in flat[-window:]], keep=window)
        seen = int(self._state.incr(self._prefix_ + ":seen", float(len(x))))
        if seen // window == (seen - len(x)) // window:
            return  # no window boundary crossed by this batch
        buffered = self._state.recent(self._prefix_ + ":rows", window)
        sample = np.stack([np.frombuffer(b, np.float64) for b in buffered]).reshape(-1, *self._detector_.input_shape_)
        result = self._detector_.test(sample)
        last = {"p_value": float(result.p_value), "shifted": bool(result.shifted), "seen": seen,
                "method": result.method, "windows": int(self._state.incr(self._prefix_ + ":windows"))}
        self._state.set(self._prefix_ + ":last", json.dumps(last).encode())
        if result.shifted:
            emit(self.name, "shift_detected", p_value=last["p_value"], rows_seen=seen, window=window,
                 decided_by=result.method)

    def metrics(self) -> dict[str, float]:
        if self._state is None or not hasattr(self, "_prefix_"):
            return {}
        last = self._state.get(self._prefix_ + ":last")
        out: dict[str, float] = {"drift_rows_seen": float(self._rows_seen())}
        if last is not None:
            record: dict[str, Any] = json.loads(last)
            out.update(drift_p_value=record["p_value"], drift_shift_detected=float(record["shifted"]),
                       drift_windows_tested=float(record["windows"]))
        return out

    def _rows_seen(self) -> int:
        # A counter is read by adding nothing to it (stores keep counters apart from bytes).
        return int(self._state.incr(self._prefix_ + ":seen", 0.0))
