"""The policy in force and how one request is decided under it.

A :class:`Runtime` is built whole from the policy file (and the keys file) and never
changes: its clients, limits, upstream and one defended model per client, each defence
already checked. :class:`Guard` holds the current runtime; a reload builds a new one off
to the side and swaps the reference in one assignment, so a request that started under
the old policy finishes under it and no request ever sees half of each. A policy that
fails to load leaves the old one in force.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..defences.base import DefendedTarget, Refusal, collect_events
from ..defences.policy import Client, Policy, load_policy
from ..defences.state import StateStore
from ..errors import RedlineError, TargetError, UsageError
from ..targets.base import Target
from ..targets.config import load_target_config
from .keys import KeyRing, read_keys_file
from .payload import parse_inputs
from .upstream import Upstream, UpstreamFailed

log = logging.getLogger("redline.guard")


@dataclasses.dataclass(frozen=True)
class GuardOptions:
    """What the command line fixes for the life of the server."""

    policy_path: Path | None = None
    keys_path: Path | None = None
    upstream: str | None = None  # --upstream; overrides the policy's
    target_config: Path | None = None  # headers, auth, input for reaching the upstream
    reload_interval: float = 1.0  # seconds between looks at the files; 0: SIGHUP only


@dataclasses.dataclass(frozen=True)
class Decision:
    """How one request was answered."""

    status: int
    body: dict[str, Any]
    rows: int = 0
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    upstream_error: str | None = None  # kind, when the model behind failed
    detail: str | None = None  # for the guard's own log and audit, never for the client

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", "ok"))


def refusal(status: int, reason: str, message: str, **extra: Any) -> Decision:
    return Decision(status, {"error": message, "reason": reason}, **extra)


class GuardedModel(DefendedTarget):
    """One client's view of the upstream behind the policy's defences. Without a stated
    input shape, any rectangular batch goes on to the defences and the model.

    The defences' state operations on the way in, and those on the way out, each run as
    one batch of the state store when it has batches (SQLite: one commit for a request's
    rate counters and query history together, instead of one per counter and set), never
    across the call to the model, so no write lock is held while the model thinks. The
    request to an :class:`Upstream` is written at the end of the first batch, so that
    batch's commit overlaps the model's work; its answer is read after the commit."""

    def __init__(self, target: Target, defences: list, state: StateStore | None = None):
        super().__init__(target, defences)
        batch = getattr(state, "batch", None)
        self._batch = batch if callable(batch) else contextlib.nullcontext

    def _predict(self, x: np.ndarray) -> np.ndarray:  # DefendedTarget's order, in two batches
        received = []  # the batch as each defence receives it, from the client inwards
        start = self.inner.start if isinstance(self.inner, Upstream) else None
        pending = None
        try:
            with self._batch():
                for defence in reversed(self.defences):
                    received.append(x)
                    x = defence.transform_input(x)
                if start is not None:
                    # The request goes out as the last step of the batch, so the batch's
                    # commit (half a millisecond of SQLite writes) runs while the model
                    # works instead of before it starts; the write lock is released
                    # before the answer is read, as the model answers.
                    pending = start(x)
        except BaseException:
            if pending is not None:  # the commit failed: the answer must not be used
                pending.abandon()
            raise
        out = pending.result() if pending is not None else self.inner._predict(x)
        with self._batch():
            for defence, seen in zip(self.defences, reversed(received)):
                out = defence.transform_output(seen, np.asarray(out))
                defence.observe(seen, out)
        return np.asarray(out)

    def _validate(self, x: np.ndarray) -> np.ndarray:
        upstream = self.inner
        if isinstance(upstream, Upstream) and not upstream.shape_known:
            return np.asarray(x, dtype=np.float32)
        return super()._validate(x)


class Runtime:
    """One policy in force (immutable once built)."""

    def __init__(self, policy: Policy, upstream: Upstream, state: StateStore):
        if not policy.clients:
            raise UsageError(f"{policy.source}: no clients: list them under clients: or give --keys FILE")
        policy.check(upstream)
        self.policy = policy
        self.upstream = upstream
        self.keyring = KeyRing(policy.clients)
        self.limits = policy.limits
        # Every client's defended model is built now, so a defence that cannot serve one
        # fails the load (and a reload keeps the old policy), not a request later.
        self.models: dict[str, GuardedModel] = {
            c.name: GuardedModel(upstream, policy.defences_for(c.name, state), state) for c in policy.clients
        }

    def decide(self, client: Client, body: bytes) -> Decision:
        """Answer ``body`` from ``client``; every outcome is a Decision, never an exception."""
        x = None
        with collect_events() as events:
            try:
                x = parse_inputs(body, self.limits.max_batch)
                model = self.models[client.name]
                if self.upstream.shape_known and tuple(x.shape[1:]) != tuple(self.upstream.input_spec.shape):
                    return refusal(422, "bad_request",
                                   f"rows have shape {list(x.shape[1:])}; this model takes {list(self.upstream.input_spec.shape)}",
                                   rows=len(x), events=list(events))
                out = np.asarray(model.predict(x))
                return self._answer(out, len(x), list(events))
            except UpstreamFailed as exc:  # before Refusal: never tell the client why the model failed
                message = "the model timed out" if exc.status == 504 else "the model behind the guard failed"
                return refusal(exc.status, exc.reason, message, rows=_rows(x), events=list(events),
                               upstream_error=exc.kind, detail=str(exc))
            except Refusal as exc:
                return refusal(exc.status, exc.reason, str(exc), rows=_rows(x), events=list(events),
                               detail=str(exc.detail) if exc.detail else None)
            except TargetError as exc:  # a defence refusing the old way: its message may name a service
                return refusal(422, "input_rejected", "a defence rejected the input", rows=_rows(x),
                               events=list(events), detail=str(exc))
            except RedlineError as exc:
                log.error("request failed: %s", exc)
                return refusal(500, "internal_error", "the guard could not answer", events=list(events), detail=str(exc))
            except Exception as exc:  # a bug: fail closed, log it, tell the client nothing
                log.exception("request failed")
                return refusal(500, "internal_error", "the guard could not answer", events=list(events),
                               detail=type(exc).__name__)

    def _answer(self, out: np.ndarray, rows: int, events: list[dict[str, Any]]) -> Decision:
        if len(out) != rows or out.ndim not in (1, 2):
            return refusal(500, "internal_error", "the guard could not answer", rows=rows, events=events,
                           detail=f"answer shaped {out.shape} for {rows} rows")
        if out.ndim == 2:
            values = out.astype(np.float64)
            if not np.isfinite(values).all():
                return refusal(500, "internal_error", "the guard could not answer", rows=rows, events=events,
                               detail="non-finite probabilities")
            return Decision(200, {"probabilities": values.tolist()}, rows=rows, events=events)
        if out.dtype.kind == "f":
            if not np.isfinite(out).all() or not np.all(out == np.round(out)):
                return refusal(500, "internal_error", "the guard could not answer", rows=rows, events=events,
                               detail="labels that are not whole numbers")
        elif out.dtype.kind not in "iub":
            return Decision(200, {"labels": [str(v) for v in out.tolist()]}, rows=rows, events=events)
        return Decision(200, {"labels": out.astype(np.int64).tolist()}, rows=rows, events=events)

    def defence_metrics(self) -> list[tuple[str, str, str, float]]:
        """(defence, client, metric, value) of every defence: a shared one once (client
        ``*``), a per-client one for each client."""
        values: list[tuple[str, str, str, float]] = []
        keys = [key for key, _ in reversed(self.policy.entries)]  # DefendedTarget order
        shared = {id(d) for d in self.policy.defences}
        for defence, key in zip(reversed(self.policy.defences), keys):
            values.extend((key, "*", m, float(v)) for m, v in _metrics_of(defence))
        for client, model in self.models.items():
            for defence, key in zip(model.defences, keys):
                if id(defence) not in shared:
                    values.extend((key, client, m, float(v)) for m, v in _metrics_of(defence))
        return values


def _metrics_of(defence: Any) -> list[tuple[str, float]]:
    try:
        return [(str(k), float(v)) for k, v in (defence.metrics() or {}).items()]
    except Exception:  # a broken gauge must not break the scrape
        log.exception("defence %r: metrics() failed", defence)
        return []


def _rows(x: np.ndarray | None) -> int:
    return 0 if x is None else len(x)


def load_runtime(options: GuardOptions, state: StateStore) -> Runtime:
    """Read the files named in ``options`` and build the runtime they describe."""
    policy = load_policy(options.policy_path) if options.policy_path is not None else Policy(source="(no policy)")
    if options.keys_path is not None:
        policy = policy.with_clients(read_keys_file(options.keys_path), str(options.keys_path))
    url = options.upstream or policy.upstream
    if url is None:
        raise UsageError("no upstream model: give --upstream URL or upstream: in the policy")
    config = load_target_config(options.target_config) if options.target_config is not None else None
    upstream = Upstream(url, timeout=policy.limits.upstream_timeout_s, config=config, input_spec=policy.input_spec)
    return Runtime(policy, upstream, state)


def _stamp(path: Path | None) -> tuple[int, int] | None:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class Guard:
    """The current runtime, swapped whole on reload (file change or SIGHUP)."""

    def __init__(self, options: GuardOptions, state: StateStore, metrics: Any = None):
        self.options = options
        self.state = state
        self.metrics = metrics
        self._stamps = self._file_stamps()
        self.current: Runtime = load_runtime(options, state)
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _file_stamps(self) -> tuple:
        return (_stamp(self.options.policy_path), _stamp(self.options.keys_path))

    def reload(self, why: str) -> bool:
        """Build a runtime from the files as they are now and put it in force; on any
        error keep the one in force. Returns whether the new one is in force."""
        with self._reload_lock:
            self._stamps = self._file_stamps()
            old = self.current
            try:
                new = load_runtime(self.options, self.state)
            except RedlineError as exc:
                log.error("policy reload (%s) failed, keeping policy %s: %s", why, old.policy.digest[:12], exc)
                ok = False
            except Exception:
                log.exception("policy reload (%s) failed, keeping policy %s", why, old.policy.digest[:12])
                ok = False
            else:
                for what in ("state", "audit_log"):
                    if getattr(new.policy, what) != getattr(old.policy, what):
                        log.warning("policy reload: a new %s takes effect when the guard restarts", what)
                self.current = new  # one assignment: requests already running keep `old`
                log.info("policy reloaded (%s): %s", why, new.policy.digest[:12] or "(no policy file)")
                ok = True
            if self.metrics is not None:
                self.metrics.reloaded(ok)
            return ok

    def start_watching(self) -> None:
        """Poll the policy and keys files; reload when either changes."""
        if self.options.reload_interval <= 0 or self._watcher is not None:
            return
        self._watcher = threading.Thread(target=self._watch, name="guard-policy-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.options.reload_interval):
            if self._file_stamps() != self._stamps:
                self.reload("file changed")

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
