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
from ..targets.http_client import HttpFailure
from .transport import KeptAlive

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
        body = json.dumps(self._request_body(x)).encode("utf-8")
        try:
            answer = self._post(body)
        except HttpFailure as exc:
            if exc.timed_out:
                raise UpstreamTimeout(f"{self.spec}: {exc}", kind="timeout") from None
            raise UpstreamFailed(f"{self.spec}: {exc}", kind="connection") from None
        if not 200 <= answer.status < 300:
            raise UpstreamFailed(f"{self.spec}: HTTP {answer.status}", kind="status")
        try:
            return self._parse(answer.body, len(x))
        except _MalformedAnswer as exc:
            raise UpstreamFailed(f"{self.spec}: malformed answer: {exc}", kind="malformed") from None
