"""Alembic's environment for the registry: always run from redline.registry.db.migrate, which
hands over an open connection (no alembic.ini, no URL in a file)."""
from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
