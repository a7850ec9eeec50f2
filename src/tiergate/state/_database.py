"""One database for the state tiergate keeps: SQLite on one machine, PostgreSQL for a fleet.

Everything goes through `Database.transaction(work)`: ``work`` gets a `Tx`, runs its SQL and
returns a value; the whole of it commits or none of it does. A transaction that loses to a
concurrent writer is run again from the start (SQLite: ``BEGIN IMMEDIATE`` takes the write
lock up front and waits for it; PostgreSQL: ``SERIALIZABLE``, retried on a serialization
failure or deadlock), so ``work`` must have no effect outside the database. SQL is written
once, with ``?`` placeholders and the syntax both dialects share (``ON CONFLICT ... DO
UPDATE`` included); the PostgreSQL side turns ``?`` into ``%s``.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from tiergate.errors import StateError

T = TypeVar("T")
Dialect = Literal["sqlite", "postgresql"]

#: How often a transaction that lost to a concurrent writer is tried again.
_ATTEMPTS = 30
#: How often a unique violation is tried again before it is taken as real (PostgreSQL).
_UNIQUE_ATTEMPTS = 3


class Tx(Protocol):
    """An open transaction: statements with ``?`` placeholders, rows as tuples."""

    dialect: Dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None: ...
    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...


class Database(Protocol):
    """Where tiergate's shared state lives (`open_database`)."""

    dialect: Dialect
    #: The URL with any password masked, for messages and `tiergate config show`.
    shown: str

    def transaction(self, work: Callable[[Tx], T]) -> T: ...
    def schema_transaction(self, work: Callable[[Tx], T]) -> T:
        """A transaction for schema changes: one process at a time, seeing what the one
        before it committed."""
        ...

    def close(self) -> None: ...


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def connect(url: str) -> Database:
    """The database at ``url``, as it is: not migrated, not shared with other callers
    (`open_database` is tiergate's own store). For a backend that keeps its own schema."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        # SQLAlchemy's convention: sqlite:///relative/path, sqlite:////absolute/path.
        path = url.removeprefix("sqlite:///")
        if path == url or not path:
            raise StateError(
                f"TIERGATE_DATABASE_URL={url!r} names no file",
                fix="sqlite:///relative/file.sqlite or sqlite:////absolute/file.sqlite",
            )
        return SqliteDatabase(Path(path))
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    raise StateError(
        f"TIERGATE_DATABASE_URL={masked(url)!r}: unknown scheme {scheme!r}",
        fix="use sqlite:///PATH (one machine) or postgresql://USER:PASSWORD@HOST/DB (a fleet)",
    )


class _SqliteTx:
    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        # Read to the end: an INSERT ... RETURNING is not finished until its cursor is.
        rows = self.conn.execute(sql, params).fetchall()
        return tuple(rows[0]) if rows else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(sql, params).fetchall())


class SqliteDatabase:
    """One SQLite file in WAL mode: the processes of one machine share it."""

    dialect: Dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown = f"sqlite:///{path}"
        # One writer at a time inside the process; other processes wait on SQLite's lock.
        self._writer = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateError(f"cannot create the folder of {self.shown}: {error}") from None
        with self._connect() as conn:
            # Switching to WAL takes the file whole and SQLite's busy timeout does not wait
            # for it: processes opening one new file at once would see "database is locked".
            # Once the file is WAL (it stays so) nobody needs to switch it again.
            for attempt in range(50):
                try:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or attempt == 49:
                        raise
                    time.sleep(0.02)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def transaction(self, work: Callable[[Tx], T]) -> T:
        for attempt in range(_ATTEMPTS):
            try:
                with self._writer, self._connect() as conn:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(_SqliteTx(conn))
                        conn.execute("COMMIT")
                        return result
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
            except sqlite3.OperationalError as error:
                # The busy timeout covers most waits; a lock held past it is tried again.
                if "locked" not in str(error) or attempt == _ATTEMPTS - 1:
                    raise StateError(f"{self.shown}: {error}") from None
                _pause(attempt)
        raise AssertionError("unreachable")

    def schema_transaction(self, work: Callable[[Tx], T]) -> T:
        return self.transaction(work)

    def close(self) -> None:
        """Nothing held open: every transaction has its own connection."""


_PLACEHOLDER = re.compile(r"\?")
#: The advisory lock migrations hold (any constant; this one spells "tiergate" in hex-ish).
_SCHEMA_LOCK = 0x71E76A7E


class _PostgresTx:
    dialect: Dialect = "postgresql"

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.cursor.execute(_PLACEHOLDER.sub("%s", sql), params)

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.execute(sql, params)
        row: tuple[Any, ...] | None = self.cursor.fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.execute(sql, params)
        return list(self.cursor.fetchall())


class PostgresDatabase:
    """A PostgreSQL database through a small pool of connections (psycopg 3)."""

    dialect: Dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.shown = masked(url)
        try:
            import psycopg
            from psycopg_pool import ConnectionPool
        except ImportError:
            raise StateError(
                f"{self.shown} needs the PostgreSQL driver, which is not installed",
                fix="pip install 'tiergate[postgres]'",
            ) from None
        self._errors = psycopg
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=8,
            kwargs={"autocommit": False},
            configure=_serializable,
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=15)
        except Exception as error:
            self._pool.close()
            raise StateError(
                f"cannot reach {self.shown}: {error}",
                fix="check TIERGATE_DATABASE_URL and that the server is up",
            ) from None

    def transaction(self, work: Callable[[Tx], T]) -> T:
        retryable = (
            self._errors.errors.SerializationFailure,
            self._errors.errors.DeadlockDetected,
        )
        for attempt in range(_ATTEMPTS):
            try:
                with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                    return work(_PostgresTx(cur))
            except self._errors.errors.UniqueViolation:
                # Serializable isolation can surface a concurrent writer's insert as a unique
                # violation rather than a serialization failure (PostgreSQL's manual, 13.2.3),
                # when the key was not read first through that index. Tried again, the
                # snapshot sees the committed row; a violation that persists is a real one.
                if attempt >= _UNIQUE_ATTEMPTS - 1:
                    raise
                _pause(attempt)
            except retryable:
                if attempt == _ATTEMPTS - 1:
                    raise StateError(
                        f"{self.shown}: a transaction lost to concurrent writers {_ATTEMPTS} times"
                    ) from None
                _pause(attempt)
            except self._errors.errors.InsufficientPrivilege as error:
                raise StateError(
                    f"{self.shown}: {error}".strip(),
                    fix="this host's database role may not change that (`tiergate store "
                    "grant`): run the command where the owner role is configured",
                ) from None
            except self._errors.OperationalError as error:
                raise StateError(f"{self.shown}: {error}") from None
        raise AssertionError("unreachable")

    def schema_transaction(self, work: Callable[[Tx], T]) -> T:
        # Serializable snapshots start before the lock is granted, so the second process
        # would not see the tables the first made; read committed sees them once it waits.
        with self._pool.connection() as conn:
            conn.isolation_level = self._errors.IsolationLevel.READ_COMMITTED
            try:
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    return work(_PostgresTx(cur))
            except self._errors.Error as error:
                raise StateError(f"{self.shown}: migrating the schema: {error}") from None
            finally:
                conn.isolation_level = self._errors.IsolationLevel.SERIALIZABLE

    def close(self) -> None:
        self._pool.close()


def _serializable(conn: Any) -> None:
    import psycopg

    conn.isolation_level = psycopg.IsolationLevel.SERIALIZABLE


def _pause(attempt: int) -> None:
    # Jittered so writers that collided do not collide again in step.
    time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
