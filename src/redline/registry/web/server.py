"""``redline registry serve``: the web pages on uvicorn.

Write tokens come from ``--token-file`` (one token per line; blank lines and ``#`` comments
skipped) or ``REDLINE_REGISTRY_WRITE_TOKEN``; the read token, which makes reads need a
token too, from ``REDLINE_REGISTRY_READ_TOKEN``. Neither is taken on the command line,
where other users of the machine could read it.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from ...errors import UsageError

__all__ = ["READ_TOKEN_ENV", "WRITE_TOKEN_ENV", "parse_listen", "serve", "serve_command", "tokens"]

WRITE_TOKEN_ENV = "REDLINE_REGISTRY_WRITE_TOKEN"
READ_TOKEN_ENV = "REDLINE_REGISTRY_READ_TOKEN"
MAX_TOKEN_FILE_BYTES = 1_000_000


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


def read_token_file(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_TOKEN_FILE_BYTES:
            raise UsageError(f"token file {path} is larger than {MAX_TOKEN_FILE_BYTES} bytes")
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read token file {path}: {exc.__class__.__name__}") from None
    found = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not found:
        raise UsageError(f"token file {path} holds no token (one per line)")
    return found


def tokens(write_tokens: str | Sequence[str] | None, read_token: str | None, *,
           token_file: str | Path | None = None) -> tuple[list[str], str | None]:
    """(write tokens, read token or None) from the arguments, the token file and the environment."""
    writers = [write_tokens] if isinstance(write_tokens, str) else list(write_tokens or [])
    if token_file:
        writers += read_token_file(token_file)
    if not writers and os.environ.get(WRITE_TOKEN_ENV, "").strip():
        writers = [os.environ[WRITE_TOKEN_ENV].strip()]
    writers = [w for w in writers if w and w.strip()]
    if not writers:
        raise UsageError(f"serving the registry needs a write token: give --token-file FILE or set {WRITE_TOKEN_ENV}")
    read = read_token or os.environ.get(READ_TOKEN_ENV, "").strip() or None
    return writers, read


def serve(db_url: str | None, listen: str = "127.0.0.1:8080", *, write_token: str | Sequence[str] | None = None,
          read_token: str | None = None, token_file: str | Path | None = None, log_level: str = "warning") -> None:
    """Open the registry at ``db_url`` and serve its pages until interrupted."""
    host, port = parse_listen(listen)
    writers, read = tokens(write_token, read_token, token_file=token_file)
    from .app import create_app
    from .store import open_store

    store = open_store(db_url)
    app = create_app(store, write_token=writers, read_token=read)
    import uvicorn

    from ...util.safe_text import echo

    shown = f"[{host}]" if ":" in host else host
    echo(f"redline registry: serving {store.url} at http://{shown}:{port}/ "
         f"(reads {'need a token' if read else 'open'}; writes need a token); Ctrl-C stops", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


def serve_command(args: argparse.Namespace) -> int:
    """What ``redline registry serve`` runs: ``--db``, ``--listen``, ``--token-file``."""
    serve(getattr(args, "db", None), getattr(args, "listen", None) or "127.0.0.1:8080",
          token_file=getattr(args, "token_file", None))
    return 0
