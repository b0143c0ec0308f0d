"""The guard's HTTP face: ``POST /predict``, ``GET /healthz``, ``GET /metrics`` (FastAPI).

``POST /predict`` answers in redline's HTTP target protocol. In order, a request must:
carry a known key (else 401), declare and send a body within ``max_body_bytes`` (else
413, checked before a byte is parsed) and within ``body_timeout_s`` (else 408), be a
valid request (else 422), and pass every defence (422, 429 or 403 as the defence says);
then the model's answer passes the defences back. If the model fails, times out or
answers out of protocol the client gets 502 or 504 with no detail of the model or its
address; nothing reaches the client that the defences did not see. Every answer that is
not a prediction is JSON ``{"error": ..., "reason": ...}``, and every answer is one
record in the audit log and in the metrics.
"""

import asyncio
import json
import logging
import os
import signal
import threading
import time
import uuid
from typing import Any

from .audit import AuditLog
from .keys import presented_key
from .metrics import CONTENT_TYPE, GuardMetrics
from .runtime import Decision, Guard, refusal

log = logging.getLogger("redline.guard")


class _TooLarge(Exception):
    pass


async def _read_body(request: Any, limit: int, timeout: float) -> bytes:
    """The body, refused past ``limit`` bytes (declared or sent) or ``timeout`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async with asyncio.timeout(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    return b"".join(chunks)


def create_app(guard: Guard, audit: AuditLog | None, metrics: GuardMetrics, *, on_shutdown: Any = None) -> Any:
    """The ASGI app serving ``guard`` (imports FastAPI)."""
    from contextlib import asynccontextmanager

    import anyio
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.requests import ClientDisconnect

    @asynccontextmanager
    async def lifespan(app: Any):
        loop = asyncio.get_running_loop()
        sighup = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP")
        if sighup:  # reload off the event loop: loading a policy may take a moment
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, guard.reload, "SIGHUP"))
        guard.start_watching()
        try:
            yield
        finally:  # uvicorn has stopped accepting and let the requests in flight finish
            if sighup:
                loop.remove_signal_handler(signal.SIGHUP)
            # each step runs whatever the one before did: the audit log is synced in any case
            for step in (guard.stop, audit.close if audit is not None else None, on_shutdown):
                if step is not None:
                    try:
                        step()
                    except Exception:
                        log.exception("shutdown step %s failed", getattr(step, "__qualname__", step))

    app = FastAPI(title="redline guard", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    def respond(decision: Decision, request_id: str) -> Response:
        return Response(json.dumps(decision.body, separators=(",", ":")), status_code=decision.status,
                        media_type="application/json", headers={"X-Request-Id": request_id})

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        started = time.perf_counter()
        request_id = uuid.uuid4().hex
        runtime = guard.current  # this request's policy, whatever a reload does meanwhile
        metrics.started()
        client = None
        decision = refusal(500, "internal_error", "the guard could not answer")
        try:
            client = runtime.keyring.identify(presented_key(request.headers))
            if client is None:
                decision = refusal(401, "unauthorized", "unknown or missing API key")
            else:
                limits = runtime.limits
                try:
                    body = await _read_body(request, limits.max_body_bytes, limits.body_timeout_s)
                except _TooLarge:
                    decision = refusal(413, "body_too_large", f"the body is over {limits.max_body_bytes} bytes")
                except TimeoutError:
                    decision = refusal(408, "body_timeout", f"the body did not arrive within {limits.body_timeout_s:g} s")
                except ClientDisconnect:  # nobody to answer; recorded as nginx does (499)
                    decision = refusal(499, "client_disconnected", "the client left before its body arrived")
                else:
                    decision = await anyio.to_thread.run_sync(runtime.decide, client, body)
        except Exception:  # a bug in the guard itself: fail closed
            log.exception("request %s failed", request_id)
        finally:
            seconds = time.perf_counter() - started
            metrics.finished(decision.status, decision.reason, seconds, decision.events, decision.upstream_error)
            if audit is not None:
                record = {"request_id": request_id, "client": None if client is None else client.name,
                          "status": decision.status, "reason": decision.reason, "rows": decision.rows,
                          "events": decision.events, "latency_ms": round(seconds * 1000, 3),
                          "policy": runtime.policy.digest[:12], "worker": os.getpid()}
                if decision.detail:
                    record["detail"] = decision.detail
                try:
                    audit.record(**record)
                except OSError:
                    log.exception("audit log write failed")
        return respond(decision, request_id)

    @app.get("/healthz")
    async def healthz() -> Response:
        runtime = guard.current
        body = {"status": "ok", "policy": runtime.policy.digest[:12], "clients": len(runtime.keyring)}
        return Response(json.dumps(body), media_type="application/json")

    @app.get("/metrics")
    async def prometheus() -> Response:
        runtime = guard.current
        text = await anyio.to_thread.run_sync(lambda: metrics.render(
            policy_digest=runtime.policy.digest[:12], clients=len(runtime.keyring),
            defence_values=runtime.defence_metrics()))
        return Response(text, media_type=CONTENT_TYPE)

    return app
