"""A throwaway PostgreSQL cluster for tests: Debian's `initdb` and `pg_ctl` on a local port.

PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
Debian's package creates (`runuser`). Each test gets a database of its own
(`PostgresCluster.fresh`), dropped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tiergate.cluster import free_port
from tiergate.state import close_database


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(f"{name} not found: `make postgresql` installs Debian's postgresql")
    return found


class PostgresCluster:
    """A cluster in a temporary folder, trusting local connections, on 127.0.0.1:port."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tiergate-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            self._as = ["runuser", "-u", "postgres", "--"]
            self.root.chmod(0o755)
            shutil.chown(self.root, "postgres")
        self._run(binary("initdb"), "-D", str(self.data), "-A", "trust", "-U", "tiergate")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            binary("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "60",
            "-l", str(self.root / "server.log"), "start",
        )  # fmt: skip

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self._as, *command], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed: {done.stdout}{done.stderr}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://tiergate@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    @contextmanager
    def fresh(self) -> Iterator[str]:
        """The URL of a new, empty database, dropped afterwards."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        url = self.url(name)
        try:
            yield url
        finally:
            close_database(url)
            self._admin(f"DROP DATABASE {name} WITH (FORCE)")

    @contextmanager
    def role(self, database_url: str) -> Iterator[str]:
        """A new login role, and the URL of ``database_url``'s database as that role;
        whatever it was granted there is dropped with it afterwards."""
        name = f"r_{uuid.uuid4().hex[:12]}"
        database = database_url.rsplit("/", 1)[1]
        self._admin(f"CREATE ROLE {name} LOGIN")
        url = f"postgresql://{name}@127.0.0.1:{self.port}/{database}"
        try:
            yield url
        finally:
            close_database(url)
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f"DROP OWNED BY {name}")
            self._admin(f"DROP ROLE {name}")

    def stop(self) -> None:
        self._run(binary("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
