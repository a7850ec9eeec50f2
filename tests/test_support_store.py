"""The support backend applies each idempotency key once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tiergate.demo import SupportStore
from tiergate.errors import ToolBackendError


@pytest.fixture
def store(tmp_path: Path) -> SupportStore:
    s = SupportStore(tmp_path / "s.sqlite")
    s.seed_demo()
    return s


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
