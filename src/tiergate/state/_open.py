"""Opening the shared store: one `Database` per URL per process, migrated when opened."""

from __future__ import annotations

import threading

from tiergate.state._database import Database, connect
from tiergate.state._migrations import migrate

_OPEN: dict[str, Database] = {}
_OPEN_LOCK = threading.Lock()


def open_database(url: str) -> Database:
    """The database at ``url`` (``sqlite:///path/to/file.sqlite`` or
    ``postgresql://user:password@host:port/dbname``), its schema migrated to this version.

    One per URL per process, shared by every store that asks. Raises `StateError` naming the
    URL (password masked) when it is malformed or cannot be reached.
    """
    with _OPEN_LOCK:
        database = _OPEN.get(url)
        if database is None:
            database = connect(url)
            migrate(database)
            _OPEN[url] = database
        return database


def close_database(url: str) -> None:
    """Close the database at ``url`` if this process opened it (a later open opens anew)."""
    with _OPEN_LOCK:
        database = _OPEN.pop(url, None)
    if database is not None:
        database.close()


def close_all() -> None:
    """Close every database this process opened (tests, worker shutdown)."""
    with _OPEN_LOCK:
        for database in _OPEN.values():
            database.close()
        _OPEN.clear()
