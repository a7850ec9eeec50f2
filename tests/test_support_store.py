"""The support backend applies each idempotency key once, on SQLite and on PostgreSQL, and
workers sharing one store apply a key once and count a cap together."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from multiprocessing.queues import Queue
from pathlib import Path

import pytest

from tests.processes import in_processes, new_queue
from tiergate.demo import SupportStore
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.state import Tx


@pytest.fixture
def store(database_url: str) -> Iterator[SupportStore]:
    s = SupportStore(database_url)
    s.seed_demo()
    yield s
    s.close()


def refund(store: SupportStore, key: str, amount: str = "10.00") -> tuple[dict[str, object], bool]:
    return store.apply_once(
        key,
        "payments.issue_refund",
        lambda conn: SupportStore.issue_refund(conn, key, "ORD-5001", Decimal(amount), "damaged"),
    )


def test_same_key_applies_once_and_returns_the_first_answer(store: SupportStore) -> None:
    first, replayed_first = refund(store, "run/1/step-3")
    second, replayed_second = refund(store, "run/1/step-3")
    assert (replayed_first, replayed_second) == (False, True)
    assert first == second
    assert len(store.rows("refunds")) == 1


def test_failed_effect_records_no_key(store: SupportStore) -> None:
    with pytest.raises(ToolBackendError, match="exceeds"):
        refund(store, "k", amount="999.00")
    assert store.rows("applied_keys") == []
    refund(store, "k")
    assert len(store.rows("refunds")) == 1


def test_key_reused_by_another_tool_is_refused(store: SupportStore) -> None:
    refund(store, "k")
    with pytest.raises(ToolBackendError, match=r"was used by payments\.issue_refund"):
        store.apply_once("k", "email.send", lambda conn: {})


def test_refunds_cannot_exceed_the_order(store: SupportStore) -> None:
    refund(store, "a", "30.00")
    with pytest.raises(ToolBackendError, match=r"5\.00 of 35\.00"):
        refund(store, "b", "10.00")


def test_a_path_is_a_sqlite_store(tmp_path: Path) -> None:
    store = SupportStore(tmp_path / "s.sqlite")
    assert store.path == tmp_path / "s.sqlite"
    store.seed_demo()
    assert (tmp_path / "s.sqlite").exists()


def _refund_keys(url: str, out: Queue[bool]) -> None:
    store = SupportStore(url)
    for i in range(5):
        out.put(refund(store, f"run/9/step-{i}", "1.00")[1])


def test_workers_sharing_a_store_apply_each_key_once(store: SupportStore) -> None:
    """Four processes apply the same five keys at once: five refunds, fifteen replays."""
    out: Queue[bool] = new_queue()
    in_processes(_refund_keys, [(store.url, out) for _ in range(4)])
    replays = [out.get(timeout=10) for _ in range(20)]
    assert replays.count(False) == 5
    assert len(store.rows("refunds")) == 5


def test_a_key_claimed_by_an_open_transaction_is_replayed_once_it_commits(
    store: SupportStore,
) -> None:
    """The second writer arrives while the first is inside its effect, not yet committed:
    it waits for the first, then replays its answer (CI once saw the unique index on refunds
    trip here instead)."""
    first_inside = threading.Event()
    first_answer: list[tuple[dict[str, object], bool]] = []

    def slow_refund(tx: Tx) -> dict[str, object]:
        made = SupportStore.issue_refund(tx, "k", "ORD-5001", Decimal("1.00"), "damaged")
        first_inside.set()
        time.sleep(0.5)  # long enough for the second writer to reach the key
        return made

    first = threading.Thread(
        target=lambda: first_answer.append(
            store.apply_once("k", "payments.issue_refund", slow_refund)
        )
    )
    first.start()
    assert first_inside.wait(10)
    second = refund(store, "k", "1.00")
    first.join(10)
    assert first_answer[0][1] is False
    assert second == (first_answer[0][0], True)
    assert len(store.rows("refunds")) == 1


def _capped_refunds(url: str, writer: int, out: Queue[str]) -> None:
    store = SupportStore(url)
    for i in range(5):
        key = f"run/{writer}/step-{i}"

        def effect(tx: Tx, key: str = key) -> dict[str, object]:
            SupportStore.reserve(tx, "cap|refunds|day", Decimal(1), 8, None, "refunds")
            return SupportStore.issue_refund(tx, key, "ORD-5003", Decimal("1.00"), "late")

        try:
            store.apply_once(key, "payments.issue_refund", effect)
            out.put("applied")
        except CapReachedError:
            out.put("capped")


def test_a_cap_counts_every_worker_sharing_the_store(store: SupportStore) -> None:
    """Twenty refunds from four processes against a cap of eight: eight apply."""
    out: Queue[str] = new_queue()
    in_processes(_capped_refunds, [(store.url, w, out) for w in range(4)])
    outcomes = [out.get(timeout=10) for _ in range(20)]
    assert outcomes.count("applied") == 8
    assert len(store.rows("refunds")) == 8
