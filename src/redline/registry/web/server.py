"""``redline registry serve``: the web pages on uvicorn.

Tokens come from the caller or, when not given, from the environment
(``REDLINE_REGISTRY_WRITE_TOKEN``, ``REDLINE_REGISTRY_READ_TOKEN``), so they need not sit
on a command line where other users of the machine can read them.
"""
from __future__ import annotations

import os

from ...errors import UsageError

__all__ = ["READ_TOKEN_ENV", "WRITE_TOKEN_ENV", "parse_listen", "serve"]

WRITE_TOKEN_ENV = "REDLINE_REGISTRY_WRITE_TOKEN"
READ_TOKEN_ENV = "REDLINE_REGISTRY_READ_TOKEN"


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) -> (host, port); a one-line UsageError otherwise."""
    text = (listen or "").strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--listen takes HOST:PORT (e.g. 127.0.0.1:8765), not {listen!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 < number < 65536:
        raise UsageError(f"--listen port must be 1-65535, not {number}")
    return host, number


def tokens(write_token: str | None, read_token: str | None) -> tuple[str, str | None]:
    write = write_token or os.environ.get(WRITE_TOKEN_ENV) or ""
    if not write.strip():
        raise UsageError(f"serving the registry needs a write token: set {WRITE_TOKEN_ENV} (writes are refused without it)")
    read = read_token or os.environ.get(READ_TOKEN_ENV) or None
    return write, read


def serve(db_url: str | None, listen: str = "127.0.0.1:8765", *, write_token: str | None = None,
          read_token: str | None = None, log_level: str = "warning") -> None:
    """Open the registry at ``db_url`` and serve its pages until interrupted."""
    host, port = parse_listen(listen)
    write, read = tokens(write_token, read_token)
    from .app import create_app
    from .store import open_store

    app = create_app(open_store(db_url), write_token=write, read_token=read)
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
