"""Starting the guard: the state store, the audit log, the policy, then uvicorn.

Timeouts against slow or idle clients: a request's headers must arrive within
``protocol.HEADER_TIMEOUT_S`` (else the connection is closed), its body within the policy's
``body_timeout_s`` (408), an idle keep-alive connection is closed after
``KEEP_ALIVE_S``, a request's head is capped at ``protocol.MAX_HEADER_BYTES`` (431 with
httptools, the parser the guard uses when it is installed; h11's own cap otherwise), and at most
``limit_concurrency`` connections are served at once (more get 503), so clients that
trickle bytes hold a bounded number of connections and never the event loop. SIGTERM or
SIGINT stops accepting, lets requests in flight finish (up to ``GRACEFUL_S``), then syncs
the audit log and closes the store; SIGHUP reloads the policy.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .protocol import MAX_HEADER_BYTES
from .runtime import Guard, GuardOptions

KEEP_ALIVE_S = 5
GRACEFUL_S = 30
DEFAULT_AUDIT_LOG = "guard-audit.jsonl"
WORKER_HEALTHCHECK_S = 60
# How a parent hands its settled options to the worker processes of --workers N.
_WORKER_SPEC = "REDLINE_GUARD_WORKER_SPEC"
_PATH_FIELDS = ("policy_path", "keys_path", "target_config")


@dataclasses.dataclass
class Built:
    """A guard ready to serve: the app and what its shutdown must close."""

    app: Any
    guard: Guard
    audit: Any
    state: Any
    state_url: str


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8100`` for IPv6)."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8100")
    return host, int(port)


def build(options: GuardOptions, *, audit_path: str | Path | None = None, state_url: str | None = None) -> Built:
    """Everything the guard needs, from its options; UsageError on a bad policy.
    ``state_url`` and ``audit_path`` override the policy's (workers get their parent's)."""
    from ..defences.policy import Policy, load_policy
    from .app import create_app
    from .audit import AuditLog
    from .metrics import GuardMetrics
    from .stores import (
        close_store,
        default_store_url,
        describe_store,
        open_store,
        remove_default_store,
    )

    first = load_policy(options.policy_path) if options.policy_path is not None else Policy()
    temporary = state_url is None and first.state is None  # this process made it, this process removes it
    state_url = state_url or first.state or default_store_url()
    state = open_store(state_url)
    audit = None
    try:
        metrics = GuardMetrics()
        guard = Guard(options, state, metrics)
        audit = AuditLog(audit_path or first.audit_log or Path(DEFAULT_AUDIT_LOG).resolve())
    except BaseException:
        close_store(state)
        raise

    def shut_down() -> None:
        close_store(state)
        if temporary:
            remove_default_store(state_url)

    app = create_app(guard, audit, metrics, on_shutdown=shut_down)
    logging.getLogger("redline.guard").info("state store %s, audit log %s", describe_store(state_url), audit.path)
    return Built(app, guard, audit, state, state_url)


def uvicorn_settings(host: str, port: int, *, limit_concurrency: int = 512, log_level: str = "warning") -> dict[str, Any]:
    """uvicorn's settings for the guard (the timeouts and limits of the module docstring)."""
    return {
        "host": host, "port": port, "log_level": log_level, "access_log": False,
        "timeout_keep_alive": KEEP_ALIVE_S, "timeout_graceful_shutdown": GRACEFUL_S,
        "limit_concurrency": limit_concurrency, "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "server_header": False, "proxy_headers": False, "lifespan": "on",
        # a deadline on each request's head and a cap on its size (protocol.py)
        "http": http_protocol(),
    }


def http_protocol() -> str:
    """uvicorn's protocol for the guard: httptools (C) where installed, else h11 (Python,
    about a fifth of the guard's CPU time per request)."""
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "redline.guard.protocol:HeaderDeadlineH11"
    return "redline.guard.protocol_httptools:HeaderLimitsHttpTools"


def uvicorn_config(app: Any, host: str, port: int, **settings: Any) -> Any:
    import uvicorn

    return uvicorn.Config(app, **uvicorn_settings(host, port, **settings))


def serve(options: GuardOptions, listen: str, *, workers: int = 1, limit_concurrency: int = 512,
          log_level: str = "warning") -> None:
    """Run the guard until SIGTERM/SIGINT, in one process or ``workers`` processes.

    With several workers, uvicorn's supervisor owns the socket and the signals: SIGHUP
    brings up a fresh worker (which reads the files as they are now) before it retires
    each old one, so a reload drops nothing; each worker also polls the files itself.
    The workers share the state store and the audit log the parent settles on.
    """
    import uvicorn

    host, port = parse_listen(listen)
    logging.basicConfig(level=log_level.upper(), format="redline guard: %(levelname)s %(message)s")
    if workers > 1:
        from ..defences.policy import Policy, load_policy
        from .stores import default_store_url, remove_default_store

        first = load_policy(options.policy_path) if options.policy_path is not None else Policy()
        load_runtime_check(options)  # a bad policy is a one-line error here, not in N workers
        state_url = first.state or default_store_url()
        os.environ[_WORKER_SPEC] = json.dumps({
            "options": {k: (None if v is None else str(v) if isinstance(v, Path) else v)
                        for k, v in dataclasses.asdict(options).items()},
            "state_url": state_url,
            "audit_path": str(first.audit_log or Path(DEFAULT_AUDIT_LOG).resolve()),
        })
        try:
            uvicorn.run("redline.guard.server:worker_app", factory=True, workers=workers,
                        # a worker starting on a busy machine takes seconds to import; uvicorn's
                        # default 5 s would abort a SIGHUP restart (and kill slow workers)
                        timeout_worker_healthcheck=WORKER_HEALTHCHECK_S,
                        **uvicorn_settings(host, port, limit_concurrency=limit_concurrency, log_level=log_level))
        finally:
            if first.state is None:
                remove_default_store(state_url)
        return
    built = build(options)
    settle_heap()
    server = uvicorn.Server(uvicorn_config(built.app, host, port, limit_concurrency=limit_concurrency, log_level=log_level))
    try:
        server.run()
    except SystemExit:  # uvicorn's own exit when it cannot bind (its code 3 means a scan error to redline)
        server.started = False
    if not server.started:
        raise UsageError(f"the guard could not listen on {host}:{port} (see the message above)")



def load_runtime_check(options: GuardOptions) -> None:
    """Load the policy and keys as a worker will, against a throw-away memory store."""
    from ..defences.state import MemoryState
    from .runtime import load_runtime

    load_runtime(options, MemoryState())


def worker_app() -> Any:
    """The app of one worker process (``--workers N``), from the spec its parent left."""
    spec = json.loads(os.environ[_WORKER_SPEC])
    raw = spec["options"]
    options = GuardOptions(**{k: (Path(v) if k in _PATH_FIELDS and v is not None else v) for k, v in raw.items()})
    app = build(options, audit_path=spec["audit_path"], state_url=spec["state_url"]).app
    settle_heap()
    return app


def settle_heap() -> None:
    """Take what the start-up built (FastAPI, numpy, the policy: well over 100,000 objects)
    out of the cyclic garbage collector's sight, so that its collections walk only what
    requests leave behind. Serving the benchmark's policy in one process for 3,000
    requests, one full collection took 99 ms and the middle generation's up to 2.7 ms,
    each a pause of the request it fell on; with the start-up frozen there was no full
    collection and the middle one took at most 0.8 ms. Objects freed by reference
    counting (nearly all) are freed as before; a frozen object that later becomes cyclic
    garbage (the first policy's, after a reload) stays."""
    import gc

    gc.collect()
    gc.freeze()
