"""One interface for inference-time defences, and the defended model as a Target.

A :class:`Defence` sits between a client and a model and may do three things, each
optional: change the input before the model sees it (:meth:`~Defence.transform_input`),
change the answer before the client sees it (:meth:`~Defence.transform_output`), and
watch the traffic (:meth:`~Defence.observe`). It states how it changes what a client
receives (:meth:`~Defence.answers`) and checks that it suits a model (:meth:`~Defence.check`).

:class:`DefendedTarget` puts a list of defences in front of a target and is itself a
:class:`~redline.targets.base.Target`, so every check measures a defended model exactly as
it measures a bare one, and a server (the guard) can run the same objects on live traffic.
Queries are charged once, to the defended target's own ledger: the client-visible model.
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import inspect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import TargetError, UsageError
from ..targets.base import Outputs, Target
from .state import StateStore


class Refusal(TargetError):
    """A defence refuses to answer a request. ``status`` is the HTTP status the guard
    answers with and ``reason`` a short machine-readable word; the message says why in
    words a client may read (never details of the model or the upstream behind)."""

    status: int = 422
    reason: str = "input_rejected"

    def __init__(self, message: str, *, reason: str | None = None, detail: dict[str, Any] | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason
        self.detail = dict(detail or {})


class InputRejected(Refusal):
    """The input breaks the policy (shape, type, range, size): HTTP 422."""

    status = 422
    reason = "input_rejected"


class RateLimited(Refusal):
    """Too many requests or rows for the client's rate or budget: HTTP 429."""

    status = 429
    reason = "rate_limited"


class LockedOut(Refusal):
    """The client is locked out (for instance after a detected query attack): HTTP 403."""

    status = 403
    reason = "locked_out"


class QueryRefused(Refusal):
    """This one request is not answered because of what it asks (a query too like the
    account's recent ones), while the account stays open: HTTP 403, as the request was
    understood and sending it again unchanged will not help (a 429 would invite retries,
    a 422 would call a well-formed input malformed)."""

    status = 403
    reason = "query_refused"


# Events a defence records while it handles one request (a flag raised, a prediction
# smoothed, a lock-out started). The host opens a scope per request with
# :func:`collect_events` and writes what it gets to its audit log; outside a scope the
# events are dropped. A context variable keeps concurrent requests apart.
_EVENTS: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("redline_defence_events", default=None)


def emit(defence: str, event: str, **detail: Any) -> None:
    """Record that ``defence`` did ``event`` on the current request (no-op outside a scope)."""
    sink = _EVENTS.get()
    if sink is not None:
        sink.append({"defence": defence, "event": event, **detail})


@contextlib.contextmanager
def collect_events() -> Iterator[list[dict[str, Any]]]:
    """Collect the events :func:`emit` records inside the ``with`` block."""
    events: list[dict[str, Any]] = []
    token = _EVENTS.set(events)
    try:
        yield events
    finally:
        _EVENTS.reset(token)


class Defence:
    """An inference-time defence. Subclasses override the hooks they need; the defaults
    leave inputs, answers and the output kind unchanged and observe nothing.

    A defence refuses a batch by raising :class:`~redline.errors.TargetError` from any
    hook; the rows are then not charged, since the model did not answer them. State kept
    between batches (a detector's query history) belongs to the instance, so a server
    that tells clients apart gives each client its own instances.
    """

    #: Short tag appended to the defended target's spec (``zoo:fair_logreg+labels``).
    name: str = "defence"
    #: The key that names this defence in a guard policy (``guard.yaml``); ``None`` for a
    #: defence a policy cannot name. Constructor arguments are the policy's parameters.
    policy_key: str | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments as given (scikit-learn style), so a policy or a
        finding can rebuild this defence."""
        names = [p.name for p in inspect.signature(type(self).__init__).parameters.values()
                 if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        return {n: getattr(self, n) for n in names if hasattr(self, n)}

    def for_client(self, client: str, state: StateStore) -> "Defence":
        """This defence as it serves ``client``. Stateless defences are shared (the
        default); a defence that keeps per-client state (a query history, a rate
        counter) returns an instance that keeps it in ``state`` under ``client``, so
        every worker of a server sees the same history."""
        return self

    def metrics(self) -> dict[str, float]:
        """Gauges and counters this defence exposes (the guard's ``/metrics``)."""
        return {}

    def check(self, target: Target) -> None:
        """Raise :class:`~redline.errors.UsageError` if this defence cannot front ``target``
        (bad parameters, inputs of the wrong kind). Called once, when the defence is applied."""

    def answers(self, outputs: Outputs) -> Outputs:
        """What the client receives when the model behind answers ``outputs``."""
        return outputs

    def transform_input(self, x: np.ndarray) -> np.ndarray:
        """The batch the model behind this defence sees instead of ``x``."""
        return x

    def transform_output(self, x: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """The answer the client sees instead of ``scores``, the model's answer to ``x``
        (``x`` as this defence received it)."""
        return scores

    def observe(self, x: np.ndarray, answer: np.ndarray) -> None:
        """Watch one answered batch: ``x`` as this defence received it, ``answer`` as it
        passes it on. Called once per batch the model answers."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class DefendedTarget(Target):
    """``target`` behind ``defences``, listed from the model outwards.

    ``defences[0]`` sits next to the model, the last one faces the client: a request passes
    them last to first, the answer first to last, so ``DefendedTarget(t, [a, b])`` answers
    like ``DefendedTarget(DefendedTarget(t, [a]), [b])``. The defended model exposes no
    gradients (clients get answers only) and retrains behind the same defence objects.
    """

    def __init__(self, target: Target, defences: Sequence[Defence]):
        super().__init__()
        defences = list(defences)
        if not isinstance(target, Target):
            raise UsageError(f"a defence fronts a redline Target, not {type(target).__name__}")
        for defence in defences:
            if not isinstance(defence, Defence):
                raise UsageError(f"not a defence: {defence!r}")
            defence.check(target)
        self.inner = target
        self.defences = defences
        self.spec = target.spec + "".join(f"+{d.name}" for d in defences)
        self.input_spec = target.input_spec
        self.n_classes = target.n_classes
        # Batches reach the model in the sizes it takes (a service's request limit).
        self.max_batch = target.max_batch
        outputs = target.capabilities.outputs
        for defence in defences:
            outputs = defence.answers(outputs)
        self.capabilities = dataclasses.replace(target.capabilities, outputs=outputs, gradients=False)
        self.trainer = None if target.trainer is None else self._retrained

    def _retrained(self, x: np.ndarray, y: np.ndarray, seed: int) -> DefendedTarget:
        """A model retrained by the inner target's recipe, behind these same defences (a
        poisoning check measures the deployment, so the retrained model is defended too)."""
        twin = copy.copy(self)  # keeps a subclass's type and attributes
        DefendedTarget.__init__(twin, self.inner.trainer(x, y, seed), self.defences)
        return twin

    def wrapped(self) -> Target:
        """The target whose answers the defences change."""
        return self.inner

    def _predict(self, x: np.ndarray) -> np.ndarray:
        received = []  # the batch as each defence receives it, from the client inwards
        for defence in reversed(self.defences):
            received.append(x)
            x = defence.transform_input(x)
        out = self.inner._predict(x)
        for defence, seen in zip(self.defences, reversed(received)):
            out = defence.transform_output(seen, np.asarray(out))
            defence.observe(seen, out)
        return np.asarray(out)
