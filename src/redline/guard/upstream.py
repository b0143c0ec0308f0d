"""The model behind the guard: redline's HTTP target, asked once per batch, failing closed.

:class:`Upstream` is an :class:`~redline.targets.http.HttpTarget` (same protocol, same
parsing and checks of the answer) that sends over kept-alive connections
(:mod:`~redline.guard.transport`), one deadline per request, and does not retry: a client waiting on the
guard is better served by a quick 502 than by minutes of back-off. Its failures are
:class:`UpstreamFailed` (502) or :class:`UpstreamTimeout` (504). Their message is for
the guard's own log; what a client is told never comes from here (see ``app.py``).

Without an input shape (neither the policy's ``input`` nor the target config states
one) the guard cannot check the shape of a row itself; it then accepts any rectangular
batch of numbers and leaves the shape to the defences and the model (``shape_known``).
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from ..errors import TargetError
from ..targets.base import InputSpec
from ..targets.config import TargetConfig
from ..targets.http import HttpTarget, _MalformedAnswer
from ..targets.http_client import Answer, HttpFailure
from .transport import Exchange, KeptAlive

# The stand-in row shape when nobody states one: a single number per row.
UNSTATED_INPUT = InputSpec(shape=(1,))


class UpstreamFailed(TargetError):
    """The model answered with an error or a body that breaks the protocol: HTTP 502."""

    status = 502
    reason = "upstream_error"
    kind = "error"  # a word for the metrics: error, status, malformed, timeout

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


class UpstreamTimeout(UpstreamFailed):
    """The model did not answer within ``upstream_timeout_s``: HTTP 504."""

    status = 504
    reason = "upstream_timeout"


class Upstream(HttpTarget):
    """The guarded model at ``url``; ``timeout`` bounds each whole request."""

    def __init__(self, url: str, *, timeout: float, config: TargetConfig | None = None,
                 input_spec: InputSpec | None = None):
        # The guard does not retry, and waits for the model as long as its policy says.
        config = dataclasses.replace(config or TargetConfig(), retries=0, timeout=float(timeout))
        self.shape_known = input_spec is not None or config.input_shape is not None
        super().__init__(url, config=config, input_spec=input_spec or (None if config.input_shape else UNSTATED_INPUT))
        self._pool = KeptAlive(url, self._headers, max_bytes=self.config.max_response_bytes)

    def _post(self, body: bytes, **_: object):
        return self._pool.post(body, self.config.timeout)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self.start(x).result()

    def start(self, x: np.ndarray) -> Pending:
        """Send ``x`` to the model now; the answer is :meth:`Pending.result` (same thread)."""
        body = json.dumps(self._request_body(x)).encode("utf-8")
        try:
            exchange = self._pool.send(body, self.config.timeout)
        except HttpFailure as exc:
            raise self._failure(exc) from None
        return Pending(self, exchange, len(x))

    def _failure(self, exc: HttpFailure) -> UpstreamFailed:
        if exc.timed_out:
            return UpstreamTimeout(f"{self.spec}: {exc}", kind="timeout")
        return UpstreamFailed(f"{self.spec}: {exc}", kind="connection")

    def _checked(self, answer: Answer, rows: int) -> np.ndarray:
        if not 200 <= answer.status < 300:
            raise UpstreamFailed(f"{self.spec}: HTTP {answer.status}", kind="status")
        try:
            return self._parse(answer.body, rows)
        except _MalformedAnswer as exc:
            raise UpstreamFailed(f"{self.spec}: malformed answer: {exc}", kind="malformed") from None


class Pending:
    """A request the model is working on."""

    def __init__(self, upstream: Upstream, exchange: Exchange, rows: int):
        self.upstream, self.exchange, self.rows = upstream, exchange, rows

    def result(self) -> np.ndarray:
        """The model's checked answer, or UpstreamFailed / UpstreamTimeout."""
        try:
            answer = self.exchange.answer()
        except HttpFailure as exc:
            raise self.upstream._failure(exc) from None
        return self.upstream._checked(answer, self.rows)

    def abandon(self) -> None:
        """The answer is not wanted (the guard failed meanwhile): drop the connection."""
        self.exchange.abandon()
