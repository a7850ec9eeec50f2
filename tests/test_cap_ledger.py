"""The cap ledger that counts a team toolset's caps: once per key, given back on refusal,
in the shared store (SQLite and PostgreSQL alike), across processes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from multiprocessing.queues import Queue
from pathlib import Path

import pytest

from tests.processes import in_processes, new_queue
from tiergate.control import CapLedger
from tiergate.core import Cap
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.state import open_database

CALLS = Cap(name="calls", tools=["t.x"], window="day", max_calls=2)
DOLLARS = Cap(name="dollars", tools=["t.x"], window="day", sum_field="usd", max_sum="10")
NOON = datetime(2026, 12, 3, 12, tzinfo=UTC)


def test_a_key_is_charged_once_and_a_refused_call_counts_nothing(database_url: str) -> None:
    ledger = CapLedger(open_database(database_url))
    ledger.charge("a", (CALLS, DOLLARS), {"usd": "4"}, "k1", NOON)
    ledger.charge("a", (CALLS, DOLLARS), {"usd": "4"}, "k1", NOON)  # a retry of the step
    assert ledger.usage("a", CALLS, NOON) == (1, Decimal(0))
    assert ledger.usage("a", DOLLARS, NOON) == (1, Decimal(4))
    # Over the sum: refused whole, the calls cap is not charged either.
    with pytest.raises(CapReachedError, match="4 of 10 used in this window; this call needs 7"):
        ledger.charge("a", (CALLS, DOLLARS), {"usd": "7"}, "k2", NOON)
    assert ledger.usage("a", CALLS, NOON) == (1, Decimal(0))
    ledger.charge("a", (CALLS, DOLLARS), {"usd": "6"}, "k3", NOON)
    with pytest.raises(CapReachedError, match="2 of 2 calls"):
        ledger.charge("a", (CALLS,), {}, "k4", NOON)
    ledger.refund("k3")  # the function refused k3: nothing took effect
    assert ledger.usage("a", DOLLARS, NOON) == (1, Decimal(4))
    ledger.refund("k3")  # twice is harmless
    assert ledger.usage("a", CALLS, NOON) == (1, Decimal(0))
    # Another agent, another day: counters of their own.
    ledger.charge("b", (CALLS,), {}, "k5", NOON)
    assert ledger.usage("a", CALLS, NOON) == (1, Decimal(0))
    tomorrow = datetime(2026, 12, 4, 1, tzinfo=UTC)
    assert ledger.usage("a", CALLS, tomorrow) == (0, Decimal(0))
    # A retry in a later window is still the same call: not charged again.
    ledger.charge("a", (CALLS,), {}, "k1", tomorrow)
    assert ledger.usage("a", CALLS, tomorrow) == (0, Decimal(0))


def _charge_in_a_process(url: str, keys: list[str], out: Queue[str]) -> None:
    """A worker process of its own: opens the store (migrating it, maybe with others at
    once) and charges its calls; reports what was admitted."""
    cap = Cap(name="calls", tools=["t.x"], window="day", max_calls=5)
    ledger = CapLedger(open_database(url))
    for key in keys:
        try:
            ledger.charge("a", (cap,), {}, key, NOON)
            out.put(key)
        except CapReachedError:
            out.put("refused")


def test_processes_charging_at_once_never_pass_the_cap(database_url: str) -> None:
    """Four processes, five calls each, on one store that none of them has opened yet."""
    out: Queue[str] = new_queue()
    in_processes(
        _charge_in_a_process,
        [(database_url, [f"p{p}-k{i}" for i in range(5)], out) for p in range(4)],
    )
    answers = [out.get(timeout=10) for _ in range(20)]
    admitted = [a for a in answers if a != "refused"]
    assert len(admitted) == 5
    cap = Cap(name="calls", tools=["t.x"], window="day", max_calls=5)
    assert CapLedger(open_database(database_url)).usage("a", cap, NOON) == (5, Decimal(0))


def test_a_reservation_settles_on_an_answer_and_stays_when_the_outcome_is_unknown(
    tmp_path: Path,
) -> None:
    ledger = CapLedger(open_database(f"sqlite:///{tmp_path / 'state.sqlite'}"))
    with ledger.charging("a", (CALLS,), {}, "acted"):
        pass
    with pytest.raises(ToolBackendError), ledger.charging("a", (CALLS,), {}, "refused"):
        raise ToolBackendError("the backend said no")
    with pytest.raises(TimeoutError), ledger.charging("a", (CALLS,), {}, "lost"):
        raise TimeoutError("no answer: it may have acted")
    assert ledger.usage("a", CALLS) == (2, Decimal(0))  # acted + lost; refused given back
    assert [key for key, _, _ in ledger.unsettled()] == ["lost"]
