"""A cap ledger for backends tiergate cannot count inside: a team's own tools and MCP tools.

Where tiergate owns the backend (the demo's store), caps are counted in the same transaction
as the effect, so count and effect cannot part. A team's function or MCP server acts in its
own system, whose transaction tiergate is not part of, so the worker counts *by
reservation*, in the shared store every worker of the fleet uses:

- **reserve** before the call, once per idempotency key (a retry of the step, even in a
  later window, is not counted again); a reservation that would pass a cap refuses the call
  before anything acts (`CapReachedError`);
- **settle** when the backend answers: kept and marked ``settled`` when it acted, given back
  when it refused (`ToolBackendError`: nothing took effect);
- **keep** the reservation when the outcome is unknown (a crash, a timeout, a broken
  session): the effect may have happened, so a lost answer costs a count, never an
  uncounted effect. Such reservations stay ``reserved`` (`CapLedger.unsettled`), for an
  operator to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tiergate.control._caps import cap_amount, cap_counter, cap_window
from tiergate.core import Cap
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.state import Database, Tx


class CapLedger:
    """Counts of agents' caps per window, reserved per idempotency key, in ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def charge(
        self,
        agent: str,
        caps: tuple[Cap, ...],
        arguments: dict[str, Any],
        key: str,
        now: datetime | None = None,
    ) -> None:
        """Reserve the call ``key`` against every cap in ``caps``, or raise CapReachedError
        naming the first one it would exceed (then nothing is counted). A key already
        reserved is not reserved again."""
        moment = now or datetime.now(UTC)

        def work(tx: Tx) -> None:
            if tx.one("SELECT 1 FROM cap_charges WHERE idempotency_key = ?", (key,)):
                return
            for cap in caps:
                window = cap_window(cap, moment)
                counter = cap_counter(agent, cap, window)
                amount = cap_amount(cap, arguments)
                row = tx.one("SELECT calls, total FROM cap_usage WHERE counter = ?", (counter,))
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
                tx.execute(
                    "INSERT INTO cap_usage VALUES (?, 1, ?) ON CONFLICT (counter) DO UPDATE "
                    "SET calls = cap_usage.calls + 1, total = excluded.total",
                    (counter, str(total + amount)),
                )
                tx.execute(
                    "INSERT INTO cap_charges VALUES (?, ?, ?, 'reserved', ?)",
                    (key, counter, str(amount), moment.isoformat()),
                )

        self.database.transaction(work)

    @contextmanager
    def charging(
        self, agent: str, caps: tuple[Cap, ...], arguments: dict[str, Any], key: str
    ) -> Iterator[None]:
        """Around a call's effect: reserved first (`charge`), settled when the backend
        answers, given back if it refuses (`ToolBackendError`), kept reserved when the
        outcome is unknown (any other exception); nothing to do without caps."""
        if not caps:
            yield
            return
        self.charge(agent, caps, arguments, key)
        try:
            yield
        except ToolBackendError:
            self.refund(key)
            raise
        self.settle(key)

    def settle(self, key: str) -> None:
        """Mark what call ``key`` reserved as spent (the backend acted)."""
        self.database.transaction(
            lambda tx: tx.execute(
                "UPDATE cap_charges SET state = 'settled' WHERE idempotency_key = ?", (key,)
            )
        )

    def refund(self, key: str) -> None:
        """Give back what call ``key`` reserved (it took no effect)."""

        def work(tx: Tx) -> None:
            charges = tx.all(
                "SELECT counter, amount FROM cap_charges WHERE idempotency_key = ?", (key,)
            )
            for counter, amount in charges:
                row = tx.one("SELECT calls, total FROM cap_usage WHERE counter = ?", (counter,))
                if row is not None:
                    tx.execute(
                        "UPDATE cap_usage SET calls = ?, total = ? WHERE counter = ?",
                        (max(0, row[0] - 1), str(Decimal(row[1]) - Decimal(amount)), counter),
                    )
            tx.execute("DELETE FROM cap_charges WHERE idempotency_key = ?", (key,))

        self.database.transaction(work)

    def usage(self, agent: str, cap: Cap, now: datetime | None = None) -> tuple[int, Decimal]:
        """(calls, sum) counted against ``agent``'s ``cap`` in the window of ``now``."""
        counter = cap_counter(agent, cap, cap_window(cap, now or datetime.now(UTC)))
        row = self.database.transaction(
            lambda tx: tx.one("SELECT calls, total FROM cap_usage WHERE counter = ?", (counter,))
        )
        return (row[0], Decimal(row[1])) if row else (0, Decimal(0))

    def unsettled(self) -> list[tuple[str, str, str]]:
        """(idempotency key, counter, reserved at) of reservations whose outcome is unknown."""
        rows = self.database.transaction(
            lambda tx: tx.all(
                "SELECT idempotency_key, counter, charged_at FROM cap_charges "
                "WHERE state = 'reserved' ORDER BY charged_at"
            )
        )
        return [(str(a), str(b), str(c)) for a, b, c in rows]
