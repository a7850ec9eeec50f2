"""The cap ledger that counts a team toolset's caps: once per key, given back on refusal."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tiergate.control import CapLedger
from tiergate.core import Cap
from tiergate.errors import CapReachedError

CALLS = Cap(name="calls", tools=["t.x"], window="day", max_calls=2)
DOLLARS = Cap(name="dollars", tools=["t.x"], window="day", sum_field="usd", max_sum="10")
NOON = datetime(2026, 12, 3, 12, tzinfo=UTC)


def test_a_key_is_charged_once_and_a_refused_call_counts_nothing(tmp_path: Path) -> None:
    ledger = CapLedger(tmp_path / "caps.sqlite")
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


def test_concurrent_charges_never_exceed_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "caps.sqlite"
    cap = Cap(name="calls", tools=["t.x"], window="day", max_calls=5)
    admitted: list[str] = []
    failed: list[BaseException] = []

    def call(index: int) -> None:
        # A ledger per thread, as workers sharing a home each open their own (the first
        # ones at once, on a file that does not exist yet).
        try:
            CapLedger(path).charge("a", (cap,), {}, f"k{index}", NOON)
            admitted.append(f"k{index}")
        except CapReachedError:
            pass
        except BaseException as error:  # a thread's error would otherwise only be a warning
            failed.append(error)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failed == []
    assert len(admitted) == 5
    assert CapLedger(path).usage("a", cap, NOON) == (5, Decimal(0))
