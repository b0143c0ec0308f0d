"""Registry tests run against SQLite always and against a real PostgreSQL server: the one
.ci/run starts (REDLINE_TEST_POSTGRES_URL), else one this session starts in a temporary
folder. Without PostgreSQL's programs the PostgreSQL cases are skipped with the reason,
except under CI (REDLINE_CI set), where that is a failure."""
from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from throwaway_postgres import ENV_VAR, ThrowawayPostgres, bin_dir, fresh_database  # noqa: E402

_numbers = itertools.count()


@pytest.fixture(scope="session")
def postgres_server():
    url = os.environ.get(ENV_VAR)
    if url:
        yield url
        return
    if bin_dir() is None:
        if os.environ.get("REDLINE_CI"):
            pytest.fail("PostgreSQL is not installed, and CI must test the registry on it")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql) and REDLINE_TEST_POSTGRES_URL is not set")
    server = ThrowawayPostgres()
    try:
        url = server.start()
    except Exception as exc:  # noqa: BLE001 - say why the server did not start
        server.stop()
        pytest.fail(f"could not start a throwaway PostgreSQL: {exc}")
    yield url
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path):
    """The URL of a new, empty registry on each back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    server = request.getfixturevalue("postgres_server")
    return fresh_database(server, f"redline_test_{os.getpid()}_{next(_numbers)}")
