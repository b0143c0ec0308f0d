"""A PostgreSQL server for one test session or benchmark: a new cluster in a temporary folder,
trust authentication on 127.0.0.1 at a free port, removed when stopped.

.ci/run starts one the same way and exports its URL as REDLINE_TEST_POSTGRES_URL; without
that variable the registry tests start their own (when PostgreSQL's programs are installed).
initdb refuses to run as root, so as root the server runs as the ``postgres`` user (which
Debian's packages create), else as ``nobody``.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ENV_VAR = "REDLINE_TEST_POSTGRES_URL"


def bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[-3]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        self.folder: Path | None = None
        self.port = 0
        self.url = ""
        self._prefix: list[str] = []

    def _run(self, *args: str) -> None:
        subprocess.run([*self._prefix, *args], check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        bins = bin_dir()
        if bins is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self.folder = Path(tempfile.mkdtemp(prefix="redline-pg-"))
        if os.geteuid() == 0:
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(self.folder, entry.pw_uid, entry.pw_gid)
            self._prefix = ["runuser", "-u", user, "--"]
        data = self.folder / "data"
        self.port = _free_port()
        self._run(str(bins / "initdb"), "-D", str(data), "-U", "redline", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(str(bins / "pg_ctl"), "-D", str(data), "-l", str(self.folder / "server.log"), "-w", "-t", "60",
                  "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                        f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                  "start")
        self._bins = bins
        self.url = f"postgresql://redline@127.0.0.1:{self.port}/postgres"
        return self.url

    def stop(self) -> None:
        if self.folder is None:
            return
        try:
            self._run(str(self._bins / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database on the server at ``server_url``; its URL."""
    import psycopg

    with psycopg.connect(server_url.replace("postgresql://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"
