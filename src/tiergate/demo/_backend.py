"""The support tools' effects on the demo store: what the tool runner hands a verified call to.

Reads answer from the store. Writes run inside the store's apply-once table (one effect per
idempotency key) when the tool's backend honors keys, and count their caps in the same
transaction, so a refused or retried write counts nothing twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from tiergate.control import cap_amount, cap_counter, cap_window
from tiergate.core import Cap, ToolKind
from tiergate.demo._store import SupportStore
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.tools import Tool, ToolCall

Read = Callable[[Any], dict[str, Any]]
Write = Callable[[sqlite3.Connection, str, Any], dict[str, Any]]


class SupportBackend:
    """The demo's tool backend, on one SupportStore."""

    def __init__(self, store: SupportStore) -> None:
        self.store = store
        self.reads: dict[str, Read] = {
            "crm.read_ticket": lambda a: store.read_ticket(a.ticket_id),
            "orders.get_status": lambda a: store.order_status(a.order_id),
        }
        self.writes: dict[str, Write] = {
            "crm.update_ticket": lambda c, _k, a: SupportStore.update_ticket(
                c, a.ticket_id, a.status, a.reply
            ),
            "payments.issue_refund": lambda c, k, a: SupportStore.issue_refund(
                c, k, a.order_id, a.amount_usd, a.reason_code
            ),
            "email.send": lambda c, k, a: SupportStore.send_email(c, k, a.to, a.subject, a.body),
            "users.delete_data": lambda c, _k, a: SupportStore.delete_user_data(c, a.user_id),
            "billing.change_plan": lambda c, k, a: SupportStore.change_plan(
                c, k, a.customer_id, a.plan
            ),
        }

    def run(self, tool: Tool, arguments: BaseModel, call: ToolCall) -> tuple[dict[str, Any], bool]:
        if tool.spec.kind is ToolKind.READ:
            read = self.reads.get(tool.name)
            if read is None:
                raise ToolBackendError(f"the support store has no tool {tool.name}")
            return read(arguments), False
        write = self.writes.get(tool.name)
        if write is None:
            raise ToolBackendError(f"the support store has no tool {tool.name}")
        amounts = arguments.model_dump(mode="json")

        def effect(conn: sqlite3.Connection) -> dict[str, Any]:
            for cap in call.caps:
                _reserve(conn, call.agent, cap, amounts)
            return write(conn, call.idempotency_key, arguments)

        if tool.spec.honors_idempotency_key:
            return self.store.apply_once(call.idempotency_key, tool.name, effect)
        return self.store.apply_each_time(effect)


def _reserve(conn: sqlite3.Connection, agent: str, cap: Cap, arguments: dict[str, Any]) -> None:
    window = cap_window(cap, datetime.now(UTC))
    try:
        SupportStore.reserve(
            conn,
            cap_counter(agent, cap, window),
            cap_amount(cap, arguments),
            cap.max_calls,
            Decimal(cap.max_sum) if cap.max_sum is not None else None,
            cap.name,
        )
    except CapReachedError as hit:
        raise CapReachedError(cap.name, f"{hit.message} ({cap.window} window {window})") from None
