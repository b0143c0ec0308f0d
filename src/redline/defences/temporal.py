"""Temporal consistency for streams: a label that flips while the input barely changed is suspect.

A client's consecutive inputs are one stream (the defence is bound to one client by
:meth:`Temporal.for_client`; the rows of a batch count in their order). Each input is
compared with the one before it. The change is measured per feature in units of that
feature's range in the target's input spec (a feature without finite bounds counts in its
own units), then summarised by ``norm``:

* ``l2`` (default): the root mean square of the scaled changes, so 0.05 means "every feature
  moved 5% of its range", or one feature of 100 moved 50%;
* ``linf``: the largest scaled change of any one feature.

When the model's label differs from the label answered for the previous input while the
change is at most ``max_input_change``, the flip is suspect (a physical adversarial example
that works in one frame, sensor glitches, an attacker inching across the boundary):

* ``action: smooth``: answer the majority label of the last ``window`` model answers (this
  one included; ties keep the previous answer), as the mean of those answers that carry it,
  and record a ``smoothed`` event. A real change of label wins once it holds for most of the
  window, so smoothing delays a true change by about half a window and no more;
* ``action: flag``: answer as the model did and record a ``flip`` event.

The stream (last input, last answer, the window) lives in the :class:`~redline.defences.state.StateStore`
under ``temporal:<client>:...`` as bytes of numpy arrays, so every worker of a guard sees the
same stream; a stream idle for ``session_ttl`` seconds starts afresh. Two requests of one client
racing on two workers may read the same previous input; a stream is assumed to be sequential.
"""
from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, emit
from .state import MemoryState, StateStore

NORMS = ("l2", "linf")
ACTIONS = ("smooth", "flag")


class Temporal(Defence):
    """Smooth or flag a label flip between consecutive, nearly identical inputs of a client."""

    name = "temporal"
    policy_key = "temporal"

    def __init__(self, window: int = 5, max_input_change: float = 0.05, norm: str = "l2",
                 action: str = "smooth", session_ttl: float = 600.0):
        self.window = window
        self.max_input_change = max_input_change
        self.norm = norm
        self.action = action
        self.session_ttl = session_ttl
        self._client: str | None = None
        self._state: StateStore | None = None
        self._counts = {"rows": 0, "flips": 0, "smoothed": 0}
        self._lock = threading.Lock()

    def check(self, target: Target) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, (int, np.integer)) or self.window < 2:
            raise UsageError(f"temporal: window must be a whole number of at least 2, not {self.window!r}")
        change = self.max_input_change
        if isinstance(change, bool) or not isinstance(change, (int, float)) or not change > 0:
            raise UsageError(f"temporal: max_input_change must be a positive number, not {change!r}")
        if self.norm not in NORMS:
            raise UsageError(f"temporal: norm must be {' or '.join(NORMS)}, not {self.norm!r}")
        if self.action not in ACTIONS:
            raise UsageError(f"temporal: action must be {' or '.join(ACTIONS)}, not {self.action!r}")
        ttl = self.session_ttl
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise UsageError(f"temporal: session_ttl must be a positive number of seconds, not {ttl!r}")
        lower, upper = target.input_spec.feature_bounds()
        width = upper - lower
        self._width_ = np.where(np.isfinite(width) & (width > 0), width, 1.0)
        if self._state is None:  # used without a server: one stream, kept in this process
            self._client, self._state = "default", MemoryState()

    def for_client(self, client: str, state: StateStore) -> Temporal:
        bound = copy.copy(self)
        bound._client, bound._state = client, state
        bound._counts = {"rows": 0, "flips": 0, "smoothed": 0}
        bound._lock = threading.Lock()
        return bound

    def _key(self, part: str) -> str:
        return f"temporal:{self._client}:{part}"

    def change(self, a: np.ndarray, b: np.ndarray) -> float:
        """The size of the step from ``b`` to ``a`` in ``norm`` (see the module docstring)."""
        step = np.abs(np.ravel(a).astype(np.float64) - np.ravel(b).astype(np.float64))
        # Rows of a shape the target did not state (a guard told no input shape): raw units.
        scaled = step / self._width_ if step.shape == self._width_.shape else step
        return float(np.sqrt(np.mean(scaled ** 2)) if self.norm == "l2" else scaled.max())

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_width_"):
            raise UsageError("temporal: check(target) must run before the defence serves requests")
        scores = np.asarray(scores)
        out = np.array(scores, dtype=np.float64 if scores.ndim == 2 else scores.dtype)
        state, ttl = self._state, float(self.session_ttl)
        flips = smoothed = 0
        for i in range(len(x)):
            row = np.ravel(np.asarray(x[i], np.float64))
            answer = scores[i]
            label = int(np.argmax(answer)) if scores.ndim == 2 else int(answer)
            entry = np.concatenate([[label], np.ravel(answer).astype(np.float64)]) if scores.ndim == 2 else np.array([label], np.float64)
            previous = state.get(self._key("input"))
            last = state.get(self._key("answered"))
            if previous is None or last is None or len(previous) != row.nbytes:
                state.delete(self._key("window"))  # a new stream
            else:
                answered = int(np.frombuffer(last, np.int64)[0])
                step = self.change(row, np.frombuffer(previous, np.float64))
                if label != answered and step <= self.max_input_change:
                    flips += 1
                    detail = {"row": i, "input_change": round(step, 6), "from": answered, "to": label}
                    if self.action == "flag":
                        emit(self.name, "flip", **detail)
                    else:
                        history = [np.frombuffer(b, np.float64) for b in state.recent(self._key("window"), int(self.window) - 1)]
                        chosen = _majority([int(h[0]) for h in history] + [label], prefer=answered)
                        if chosen != label:
                            smoothed += 1
                            carriers = [h[1:] for h in history if int(h[0]) == chosen and len(h) > 1]
                            out[i] = np.mean(carriers, axis=0) if scores.ndim == 2 and carriers else (
                                np.eye(scores.shape[1])[chosen] if scores.ndim == 2 else chosen)
                            label = chosen
                            emit(self.name, "smoothed", **detail, answered=chosen)
            state.push(self._key("window"), [entry.tobytes()], keep=int(self.window))
            state.set(self._key("input"), row.tobytes(), ttl=ttl)
            state.set(self._key("answered"), np.array([label], np.int64).tobytes(), ttl=ttl)
        with self._lock:
            self._counts["rows"] += len(x)
            self._counts["flips"] += flips
            self._counts["smoothed"] += smoothed
        return out

    def metrics(self) -> dict[str, float]:
        with self._lock:
            return {f"temporal_{name}": float(value) for name, value in self._counts.items()}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _majority(labels: list[int], prefer: int) -> int:
    values, counts = np.unique(labels, return_counts=True)
    winners = values[counts == counts.max()]
    return prefer if prefer in winners else int(winners[0])
