"""The support fixture: each eval case's own support store, seeded from the case.

A case sets its store under ``fixtures: {support: ...}`` (the demo data, plus or instead of
its own rows) and checks what its run left there under ``expect.final_state: {support: ...}``:
``refunds`` (sorted by order and amount), ``tickets`` (status by id) and ``emails_sent``.
"""

from __future__ import annotations

import tempfile
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tiergate.demo._backend import SupportDesk
from tiergate.demo._store import DEMO_ORDERS, DEMO_TICKETS, DEMO_USERS, SupportStore
from tiergate.tools import CaseFixture


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Ticket(_Strict):
    id: str
    customer_id: str = "C-1"
    subject: str = "Support request"
    body: str
    status: str = "open"


class Order(_Strict):
    id: str
    customer_id: str = "C-1"
    status: str = "delivered"
    total_usd: str


class User(_Strict):
    id: str
    email: str
    name: str


class SupportState(_Strict):
    """A case's support store before its run: the demo data, plus or instead of these rows."""

    seed: Literal["demo", "empty"] = "demo"
    tickets: list[Ticket] = Field(default_factory=list)
    orders: list[Order] = Field(default_factory=list)
    users: list[User] = Field(default_factory=list)

    def ticket_ids(self) -> set[str]:
        demo = {t[0] for t in DEMO_TICKETS} if self.seed == "demo" else set()
        return demo | {t.id for t in self.tickets}

    def order_totals(self) -> dict[str, Decimal]:
        demo = {o[0]: Decimal(o[3]) for o in DEMO_ORDERS} if self.seed == "demo" else {}
        return demo | {o.id: Decimal(o.total_usd) for o in self.orders}

    def user_ids(self) -> set[str]:
        demo = {u[0] for u in DEMO_USERS} if self.seed == "demo" else set()
        return demo | {u.id for u in self.users}


class _ExpectedRefund(_Strict):
    order_id: str
    amount_usd: str
    reason_code: str | None = None


class _Expected(BaseModel):
    refunds: list[_ExpectedRefund] = Field(default_factory=list)
    tickets: dict[str, str] = Field(default_factory=dict)


_home: list[Path] = []
_home_lock = threading.Lock()


def _case_path(run_id: str) -> Path:
    with _home_lock:
        if not _home:
            _home.append(Path(tempfile.mkdtemp(prefix="tiergate-support-cases-")))
        return _home[0] / f"{run_id}.sqlite"


def setup(run_id: str, state: dict[str, Any]) -> None:
    """A fresh store for run ``run_id``, seeded with ``state``; its calls act on it."""
    wanted = SupportState.model_validate(state)
    store = SupportStore(_case_path(run_id))
    store.seed(
        demo=wanted.seed == "demo",
        tickets=[(t.id, t.customer_id, t.subject, t.body, t.status) for t in wanted.tickets],
        orders=[(o.id, o.customer_id, o.status, o.total_usd) for o in wanted.orders],
        users=[(u.id, u.email, u.name) for u in wanted.users],
    )
    SupportDesk.hold_case(run_id, store)


def final_state(run_id: str) -> dict[str, Any]:
    """What run ``run_id`` left in its store."""
    store = SupportDesk.case(run_id)
    if store is None:
        raise LookupError(f"no support store was set up for run {run_id}")
    return {
        "refunds": sorted(
            (
                {"order_id": r["order_id"], "amount_usd": r["amount_usd"]}
                | {"reason_code": r["reason_code"]}
                for r in store.rows("refunds")
            ),
            key=lambda r: (r["order_id"], Decimal(r["amount_usd"])),
        ),
        "tickets": {t["id"]: t["status"] for t in store.rows("tickets")},
        "emails_sent": len(store.rows("emails")),
    }


def teardown(run_id: str) -> None:
    """Run ``run_id``'s store is forgotten and its files removed."""
    store = SupportDesk.drop_case(run_id)
    if store is not None:
        store.close()
    if store is not None and store.path is not None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{store.path}{suffix}").unlink(missing_ok=True)


def check(state: dict[str, Any], expected: dict[str, Any]) -> None:
    """Refuses a case that cannot pass whatever the agent does (ValueError naming why)."""
    initial = SupportState.model_validate(state)
    wanted = _Expected.model_validate(expected)
    totals = initial.order_totals()
    for refund in wanted.refunds:
        cents = f"{Decimal(refund.amount_usd):.2f}"
        if refund.amount_usd != cents:
            raise ValueError(f"write refund amounts as the store does, with cents: {cents!r}")
        if refund.order_id not in totals:
            raise ValueError(
                f"expects a refund for order {refund.order_id}, which the case's initial "
                "state does not have"
            )
        if Decimal(refund.amount_usd) > totals[refund.order_id]:
            raise ValueError(
                f"expects a refund of ${refund.amount_usd} on order {refund.order_id} whose "
                f"total is ${totals[refund.order_id]}: the backend refuses that"
            )
    for ticket in wanted.tickets:
        if ticket not in initial.ticket_ids():
            raise ValueError(
                f"expects a status for ticket {ticket}, which the initial state does not have"
            )


def known_ids(state: dict[str, Any]) -> dict[str, set[str]]:
    """The ids a case's proposals may name, by argument."""
    initial = SupportState.model_validate(state)
    return {
        "ticket_id": initial.ticket_ids(),
        "order_id": set(initial.order_totals()),
        "user_id": initial.user_ids(),
    }


#: The support demo's eval fixture, ``support`` in a suite (its six toolsets share it).
SUPPORT_FIXTURE = CaseFixture(setup, final_state, check, known_ids, teardown)
