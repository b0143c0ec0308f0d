"""Opening a registry database: the URL a user gives, the engine, and the migrations.

``sqlite:///path`` (the default, ./redline-registry.db or $REDLINE_REGISTRY) or
``postgresql://user@host:port/db``. A bare path means an SQLite file. The schema is
brought up to date with the Alembic migrations shipped in this package when the registry
is opened; no alembic.ini is involved.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import UsageError

DEFAULT_URL = "sqlite:///redline-registry.db"
ENV_VAR = "REDLINE_REGISTRY"
_MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0001"  # the newest file in migrations/versions
SQLITE_BUSY_SECONDS = 60  # how long a writer waits for another's transaction to end


def resolve_url(url: str | None) -> str:
    """The SQLAlchemy URL for what the user gave (``None``: $REDLINE_REGISTRY, else the default file)."""
    text = (url if url is not None else os.environ.get(ENV_VAR) or DEFAULT_URL).strip()
    if not text:
        raise UsageError("the registry URL is empty; give sqlite:///PATH or postgresql://HOST/DB")
    if "://" not in text:
        return f"sqlite:///{text}"  # a bare file name
    scheme, rest = text.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return f"postgresql+psycopg://{rest}"
    if scheme == "sqlite":
        if not rest.startswith("/"):
            raise UsageError(f"registry URL {text!r}: write sqlite:///relative.db or sqlite:////absolute/path.db")
        return text
    raise UsageError(f"registry URL {scheme}://…: only sqlite:///PATH and postgresql://… are supported")


def sqlite_path(url: str) -> Path | None:
    """The file of an sqlite URL (None for other back ends and for an in-memory database)."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return None if path in ("", ":memory:") else Path(path)


def require_packages(url: str) -> None:
    """A one-line error naming the extra when SQLAlchemy, Alembic or (for PostgreSQL) psycopg is missing."""
    wanted = ["sqlalchemy", "alembic"] + (["psycopg"] if url.startswith("postgresql") else [])
    import importlib.util

    for name in wanted:
        if importlib.util.find_spec(name) is None:
            raise UsageError(f"the registry needs the optional package {name}: pip install 'redline[registry]'")


def make_engine(url: str, *, create: bool) -> Any:
    """An engine for ``url`` (from resolve_url); ``create=False`` refuses an SQLite file that does not exist."""
    require_packages(url)
    from sqlalchemy import create_engine, event

    path = sqlite_path(url)
    if path is not None:
        if not create and not path.is_file():
            raise UsageError(f"registry {path} does not exist (record something first: redline registry add REPORT.json)")
        if not path.parent.is_dir():
            raise UsageError(f"registry {path}: folder {path.parent} does not exist")
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_SECONDS})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection, _record):
            # Transactions are ours to begin (below), not the driver's; WAL lets readers read while one writes.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection):
            # IMMEDIATE takes the write lock at the start, so two writers queue instead of one
            # failing when it upgrades a read lock mid-transaction.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def current_revision(engine: Any) -> str | None:
    """The migration the database is at (None for a new database)."""
    from sqlalchemy import inspect, text

    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def migrate(engine: Any) -> None:
    """Bring the schema to the newest migration (a no-op when it is there).

    The check is a plain query, so opening an up-to-date registry does not load Alembic
    (a test keeps HEAD_REVISION equal to the newest migration's id).
    """
    found = current_revision(engine)
    if found == HEAD_REVISION:
        return
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if found is not None:
        try:
            ScriptDirectory.from_config(config).get_revision(found)
        except CommandError:
            raise UsageError(f"the registry's schema is at revision {found}, which this redline does not know "
                             "(a newer redline made it); upgrade redline") from None
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two processes opening a new registry at once: one migrates, the other waits and finds it done.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(720917)")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def connection_error(url: str, exc: Exception) -> UsageError:
    """A one-line error for a database that cannot be reached or read."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return UsageError(f"cannot open registry {display_url(url)}: {reason[0] if reason else type(exc).__name__}")


def display_url(url: str) -> str:
    """``url`` without its password, to print."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a URL SQLAlchemy cannot parse: show no part of it that may hold a secret
        return url.split("://", 1)[0] + "://…"
