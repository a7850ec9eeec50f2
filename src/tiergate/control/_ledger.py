"""A cap ledger for backends tiergate cannot count inside: a team's own tool functions.

The demo's store counts caps in the same transaction as the effect. A team's function calls
its own API, whose transaction tiergate is not part of, so the worker counts the call here
first, once per idempotency key, and gives the count back when the function refuses the
call (`ToolBackendError`: nothing took effect). Any other failure keeps the count, since the
effect may have happened: a crash between count and effect costs a count, never an uncounted
effect. A retry of the step (same key) is not counted again, even in a later window.

One SQLite file per worker home (WAL): the workers sharing that home share the counts.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tiergate.control._caps import cap_amount, cap_counter, cap_window
from tiergate.core import Cap
from tiergate.errors import CapReachedError, ToolBackendError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cap_usage (
  counter TEXT PRIMARY KEY, calls INTEGER NOT NULL, total TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cap_charges (
  idempotency_key TEXT NOT NULL, counter TEXT NOT NULL, amount TEXT NOT NULL,
  PRIMARY KEY (idempotency_key, counter));
"""


class CapLedger:
    """Counts of an agent's caps per window, charged per idempotency key."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            # Switching to WAL takes the file whole and SQLite's busy timeout does not wait
            # for it: workers opening one new ledger at once would see "database is locked".
            # Once the file is WAL (it stays so) nobody needs to switch it again.
            for attempt in range(50):
                try:
                    if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        conn.execute("PRAGMA journal_mode=WAL")
                    conn.executescript(_SCHEMA)
                    break
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) or attempt == 49:
                        raise
                    time.sleep(0.02)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._writer, self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    def charge(
        self,
        agent: str,
        caps: tuple[Cap, ...],
        arguments: dict[str, Any],
        key: str,
        now: datetime | None = None,
    ) -> None:
        """Count the call ``key`` against every cap in ``caps``, or raise CapReachedError
        naming the first one it would exceed (then nothing is counted). A key already
        charged is not charged again."""
        moment = now or datetime.now(UTC)
        with self._transaction() as conn:
            if conn.execute(
                "SELECT 1 FROM cap_charges WHERE idempotency_key = ?", (key,)
            ).fetchone():
                return
            for cap in caps:
                window = cap_window(cap, moment)
                counter = cap_counter(agent, cap, window)
                amount = cap_amount(cap, arguments)
                row = conn.execute(
                    "SELECT calls, total FROM cap_usage WHERE counter = ?", (counter,)
                ).fetchone()
                calls, total = (row[0], Decimal(row[1])) if row else (0, Decimal(0))
                if cap.max_calls is not None and calls + 1 > cap.max_calls:
                    raise CapReachedError(
                        cap.name,
                        f"{calls} of {cap.max_calls} calls used in this window "
                        f"({cap.window} window {window})",
                    )
                if cap.max_sum is not None and total + amount > Decimal(cap.max_sum):
                    raise CapReachedError(
                        cap.name,
                        f"{total} of {cap.max_sum} used in this window; this call needs "
                        f"{amount} ({cap.window} window {window})",
                    )
                conn.execute(
                    "INSERT INTO cap_usage VALUES (?, 1, ?) ON CONFLICT(counter) DO UPDATE "
                    "SET calls = calls + 1, total = excluded.total",
                    (counter, str(total + amount)),
                )
                conn.execute(
                    "INSERT INTO cap_charges VALUES (?, ?, ?)", (key, counter, str(amount))
                )

    @contextmanager
    def charging(
        self, agent: str, caps: tuple[Cap, ...], arguments: dict[str, Any], key: str
    ) -> Iterator[None]:
        """Around a call's effect: charged first (`charge`), given back if the backend
        refuses it (`ToolBackendError`: nothing took effect); nothing to do without caps."""
        if not caps:
            yield
            return
        self.charge(agent, caps, arguments, key)
        try:
            yield
        except ToolBackendError:
            self.refund(key)
            raise

    def refund(self, key: str) -> None:
        """Give back what call ``key`` was charged (it took no effect)."""
        with self._transaction() as conn:
            charges = conn.execute(
                "SELECT counter, amount FROM cap_charges WHERE idempotency_key = ?", (key,)
            ).fetchall()
            for counter, amount in charges:
                row = conn.execute(
                    "SELECT calls, total FROM cap_usage WHERE counter = ?", (counter,)
                ).fetchone()
                if row is not None:
                    conn.execute(
                        "UPDATE cap_usage SET calls = ?, total = ? WHERE counter = ?",
                        (max(0, row[0] - 1), str(Decimal(row[1]) - Decimal(amount)), counter),
                    )
            conn.execute("DELETE FROM cap_charges WHERE idempotency_key = ?", (key,))

    def usage(self, agent: str, cap: Cap, now: datetime | None = None) -> tuple[int, Decimal]:
        """(calls, sum) counted against ``agent``'s ``cap`` in the window of ``now``."""
        counter = cap_counter(agent, cap, cap_window(cap, now or datetime.now(UTC)))
        with self._connect() as conn:
            row = conn.execute(
                "SELECT calls, total FROM cap_usage WHERE counter = ?", (counter,)
            ).fetchone()
        return (row[0], Decimal(row[1])) if row else (0, Decimal(0))
