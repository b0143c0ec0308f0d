"""Opening the state store a policy names (``state:``): memory, SQLite or Redis."""
from __future__ import annotations

import tempfile
import urllib.parse
from pathlib import Path

from ..defences.state import MemoryState, StateStore
from ..errors import UsageError


def default_store_url() -> str:
    """A SQLite file in a fresh temporary folder: shared by the workers of one guard,
    forgotten when it stops (name ``state:`` in the policy to keep lock-outs)."""
    folder = tempfile.mkdtemp(prefix=_DEFAULT_PREFIX)
    return "sqlite:///" + str(Path(folder) / "state.db")


_DEFAULT_PREFIX = "redline-guard-"


def remove_default_store(url: str) -> None:
    """Delete the temporary folder of a :func:`default_store_url` store (nothing else)."""
    import shutil

    folder = Path(url[len("sqlite:///"):]).parent
    if url.startswith("sqlite:///") and folder.name.startswith(_DEFAULT_PREFIX) \
            and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)


def open_store(url: str) -> StateStore:
    """The store at ``url``: ``memory``, ``sqlite:///ABS/PATH`` (as the policy loader
    resolves it) or ``redis://…``. A Redis that does not answer is a UsageError now,
    not a failed request later."""
    if url == "memory":
        return MemoryState()
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme == "sqlite":
        import sqlite3

        from .state_sqlite import SQLiteState

        try:
            return SQLiteState(url[len("sqlite:///"):])
        except (OSError, sqlite3.Error) as exc:
            raise UsageError(f"state: cannot open the SQLite store {describe_store(url)}: {exc}") from None
    if scheme in ("redis", "rediss", "unix"):
        import redis

        from .state_redis import RedisState

        store = RedisState(url)
        try:
            store.ping()
        except redis.RedisError as exc:
            store.close()
            raise UsageError(f"state: the Redis store {describe_store(url)} does not answer: {' '.join(str(exc).split())}") from None
        return store
    raise UsageError(f"state: unknown store {describe_store(url)!r} (memory, sqlite:///FILE or redis://HOST:PORT/DB)")


def describe_store(url: str) -> str:
    """``url`` without a password, for logs and messages."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(unreadable URL)"
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="REDACTED@" + parts.netloc.rsplit("@", 1)[1]))


def close_store(store: StateStore) -> None:
    close = getattr(store, "close", None)
    if callable(close):
        close()
