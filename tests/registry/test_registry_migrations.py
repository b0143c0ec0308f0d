"""The shipped migrations build the schema the code queries, on both back ends; opening an
up-to-date registry runs nothing; a newer schema than the code knows is refused plainly."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

import redline.registry.db as db
from redline.registry import Registry, schema


def test_head_revision_is_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(db.__file__).with_name("migrations")))
    assert ScriptDirectory.from_config(config).get_current_head() == db.HEAD_REVISION


def test_migrations_create_every_table_and_column_the_code_uses(registry_url):
    with Registry(registry_url) as registry:
        inspector = inspect(registry._engine)
        for table in schema.metadata.sorted_tables:
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            assert {c.name for c in table.columns} <= columns, table.name
        assert db.current_revision(registry._engine) == db.HEAD_REVISION


def test_opening_an_up_to_date_registry_does_not_migrate(registry_url, monkeypatch):
    Registry(registry_url).close()
    import alembic.command

    monkeypatch.setattr(alembic.command, "upgrade", lambda *a, **k: (_ for _ in ()).throw(AssertionError("migrated")))
    with Registry(registry_url) as registry:
        assert registry.list().total == 0


def test_a_registry_from_a_newer_redline_is_refused_in_one_line(registry_url):
    import pytest
    from sqlalchemy import text

    from redline.errors import UsageError

    with Registry(registry_url) as registry, registry._engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(UsageError, match="revision 9999, which this redline does not know"):
        Registry(registry_url)
