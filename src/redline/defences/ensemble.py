"""Models that sanity-check each other: ask diverse members too, vote, and act on disagreement.

Every batch the fronted model answers is also sent to each member (``members``: target
specs as ``redline scan`` takes them: ``zoo:NAME``, model files, ``http://`` URLs; or Target
objects from Python), resolved in :meth:`Ensemble.check` with redline's own
:func:`~redline.targets.load_target`. Members get the input as this defence receives it.

Per row, every model votes for its top class. The answer is the plurality label, ties going
to the fronted model; the **disagreement** of a row is the share of the members whose label
differs from the fronted model's (0 when all agree, 1 when every member says otherwise).
A member that disagrees with the model it checks is the signal: an adversarial example
made for one model transfers to a differently built one less often than it fools the one
it was made for. Rows whose disagreement is above ``max_disagreement``:

* ``on_disagreement: abstain``: the whole request is refused (HTTP 422, reason
  ``abstained``); a client gets no label the models do not stand behind;
* ``on_disagreement: flag``: the request is answered with the vote and a ``disagreement``
  event is recorded for the audit log.

Where the vote differs from the fronted model's label the answer is the mean of the
probability rows of the models that voted for the winning label (a one-hot row when none of
them gave probabilities); other rows keep the fronted model's answer untouched.
:meth:`Ensemble.metrics` counts rows seen and rows above the threshold in this process.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..targets.base import Target
from .base import Defence, InputRejected, emit

ACTIONS = ("abstain", "flag")


class Ensemble(Defence):
    """Vote with ``members``; act on rows where more than ``max_disagreement`` of them disagree."""

    name = "ensemble"
    policy_key = "ensemble"

    def __init__(self, members: Sequence[Any] = (), max_disagreement: float = 0.5, on_disagreement: str = "abstain"):
        self.members = members
        self.max_disagreement = max_disagreement
        self.on_disagreement = on_disagreement
        self._lock = threading.Lock()
        self._rows = 0
        self._disagreeing = 0

    def check(self, target: Target) -> None:
        if isinstance(self.members, (str, bytes)) or not isinstance(self.members, Sequence) or not self.members:
            raise UsageError("ensemble: members must be a non-empty list of target specs (zoo:NAME, a file, a URL)")
        value = self.max_disagreement
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise UsageError(f"ensemble: max_disagreement must be a share in [0, 1), not {value!r}")
        if self.on_disagreement not in ACTIONS:
            raise UsageError(f"ensemble: on_disagreement must be {' or '.join(ACTIONS)}, not {self.on_disagreement!r}")
        fronts = (tuple(target.input_spec.shape), target.n_classes)
        if getattr(self, "_fronts_", None) == fronts:
            return  # resolved already (check runs again when a server binds the defence to a client)
        self._members_ = [self._resolve(member, target) for member in self.members]
        self._fronts_ = fronts

    def _resolve(self, member: Any, target: Target) -> Target:
        from ..targets import load_target
        from ..targets.config import TargetConfig

        if isinstance(member, Target):
            resolved = member
        elif isinstance(member, str) and member.strip():
            # A member that does not answer fails the request at once (no retries, 10 s at
            # most): a guard must not hold a client while a member backs off.
            config = TargetConfig(input_shape=tuple(target.input_spec.shape), n_classes=target.n_classes,
                                  retries=0, timeout=10.0, source=f"ensemble member {member}")
            resolved = load_target(member.strip(), config=config)
        else:
            raise UsageError(f"ensemble: a member is a target spec string, not {member!r}")
        if tuple(resolved.input_spec.shape) != tuple(target.input_spec.shape):
            raise UsageError(f"ensemble: member {resolved.spec} takes inputs shaped {list(resolved.input_spec.shape)}, "
                             f"the fronted model {list(target.input_spec.shape)} (a guard policy states it as input:)")
        if None not in (resolved.n_classes, target.n_classes) and resolved.n_classes != target.n_classes:
            raise UsageError(f"ensemble: member {resolved.spec} has {resolved.n_classes} classes, "
                             f"the fronted model {target.n_classes}")
        return resolved

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        answers = [scores] + [np.asarray(member.predict(x)) for member in self._members_]
        labels = np.stack([a.argmax(axis=1) if a.ndim == 2 else a.astype(int) for a in answers])  # (voters, n)
        # Classes: as the fronted model states them, else as wide as any answer shows.
        k = self._fronts_[1] or max([a.shape[1] for a in answers if a.ndim == 2] + [int(labels.max()) + 1])
        disagreement = (labels[1:] != labels[0]).mean(axis=0)
        counts = np.stack([(labels == c).sum(axis=0) for c in range(k)], axis=1)  # (n, classes)
        best = counts.max(axis=1)
        # Plurality; when the fronted model's label ties for the most votes, it stands.
        vote = np.where(counts[np.arange(len(best)), labels[0]] == best, labels[0], counts.argmax(axis=1))
        over = np.flatnonzero(disagreement > self.max_disagreement)
        with self._lock:
            self._rows += len(disagreement)
            self._disagreeing += len(over)
        if len(over):
            detail = {"rows": over.tolist()[:20], "disagreement": [round(float(d), 3) for d in disagreement[over][:20]]}
            if self.on_disagreement == "abstain":
                emit(self.name, "abstained", **detail)
                raise InputRejected(f"no answer: the models disagree on {len(over)} of {len(disagreement)} inputs",
                                    reason="abstained", detail=detail)
            emit(self.name, "disagreement", **detail)
        return _answer(scores, answers, labels, vote, k)

    def metrics(self) -> dict[str, float]:
        with self._lock:
            rows, over = self._rows, self._disagreeing
        return {"ensemble_rows": float(rows), "ensemble_disagreeing_rows": float(over),
                "ensemble_disagreement_rate": over / rows if rows else 0.0}

    def __getstate__(self) -> dict[str, Any]:  # a lock does not copy; a copy gets its own
        state = dict(self.__dict__)
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()


def _answer(scores: np.ndarray, answers: list[np.ndarray], labels: np.ndarray, vote: np.ndarray, k: int) -> np.ndarray:
    """The fronted answer, with rows the vote overturned replaced by the winners' mean."""
    changed = np.flatnonzero(vote != labels[0])
    if not len(changed):
        return scores
    if scores.ndim == 1:
        out = scores.copy()
        out[changed] = vote[changed]
        return out
    out = np.array(scores, dtype=np.float64)
    for row in changed:
        winners = [a[row] for a, lab in zip(answers, labels[:, row]) if lab == vote[row] and a.ndim == 2]
        out[row] = np.mean(winners, axis=0) if winners else np.eye(k)[vote[row]]
    return out
