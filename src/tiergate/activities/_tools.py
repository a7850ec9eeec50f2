"""Tool activities: one `tool__<name>` activity per registered tool.

Each activity re-validates its arguments and recomputes the call digest, refusing anything
the gate did not allow for exactly this call; writes go through the backend's apply-once
table keyed by the step's idempotency key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.activities._content import ContentStore
from tiergate.activities._support_store import RateLimited, SupportStore
from tiergate.digest import call_digest
from tiergate.errors import ToolBackendError
from tiergate.identity import BackendGuard, CredentialBroker
from tiergate.pii import pii_kinds
from tiergate.redaction import DEFAULT_REDACTOR
from tiergate.shared import (
    MAX_PREVIEW_CHARS,
    Cap,
    ToolCallInput,
    ToolResult,
    tool_activity_name,
)
from tiergate.tools import ToolKind, ToolRegistry, ToolSpec

Read = Callable[[Any], dict[str, Any]]
Write = Callable[[sqlite3.Connection, str, Any], dict[str, Any]]


def _support_reads(store: SupportStore) -> dict[str, Read]:
    return {
        "crm.read_ticket": lambda a: store.read_ticket(a.ticket_id),
        "orders.get_status": lambda a: store.order_status(a.order_id),
    }


def _support_writes() -> dict[str, Write]:
    return {
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


class _CapHit(ToolBackendError):
    def __init__(self, cap: str, detail: str) -> None:
        super().__init__(detail)
        self.cap, self.detail = cap, detail


class ToolActivities:
    """The support domain's tools as activities, acting on a real SQLite store."""

    def __init__(
        self,
        store: SupportStore,
        content: ContentStore,
        tools: ToolRegistry,
        broker: CredentialBroker | None = None,
    ) -> None:
        self.store = store
        self.content = content
        self.tools = tools
        # The broker mints one credential per call; the backend's guard holds only its
        # public key and admits nothing else.
        self.broker = broker or CredentialBroker.ephemeral()
        self.guard = BackendGuard(self.broker.verifier())
        self.reads = _support_reads(store)
        self.writes = _support_writes()
        missing = [t.name for t in tools if t.name not in self.reads and t.name not in self.writes]
        if missing:
            raise ToolBackendError(f"no implementation for tools {missing}")

    def activities(self) -> list[Callable[..., Any]]:
        return [self._activity(spec) for spec in self.tools]

    def _activity(self, spec: ToolSpec) -> Callable[[ToolCallInput], ToolResult]:
        @activity.defn(name=tool_activity_name(spec.name))
        def run_tool(call: ToolCallInput) -> ToolResult:
            return self.execute(spec, call)

        return run_tool

    def execute(self, spec: ToolSpec, call: ToolCallInput) -> ToolResult:
        arguments = self.verified_arguments(spec, call)
        attempt = activity.info().attempt if activity.in_activity() else 1
        scope = f"{spec.kind.value}:{spec.name}"
        token = self.broker.mint(call.agent, call.run_id, call.step, spec.name, [scope])
        try:
            admitted = self.guard.admit(token, spec.name, call.run_id, call.step, scope)
            if spec.kind is ToolKind.WRITE:
                write = self.writes[spec.name]
                caps = [c for c in call.caps if spec.name in c.tools]

                def effect(conn: sqlite3.Connection) -> dict[str, Any]:
                    for cap in caps:
                        self._reserve(conn, cap, call)
                    return write(conn, call.idempotency_key, arguments)

                if spec.honors_idempotency_key:
                    output, replayed = self.store.apply_once(
                        call.idempotency_key, spec.name, effect
                    )
                else:
                    output, replayed = self.store.apply_each_time(effect)
            else:
                output, replayed = self.reads[spec.name](arguments), False
        except _CapHit as hit:
            return ToolResult(
                ok=False,
                error=f"rate_limited by cap {hit.cap}: {hit.detail}",
                attempt=attempt,
                code="rate_limited",
                cap=hit.cap,
            )
        except ToolBackendError as error:
            # A refusal by the backend is an answer, not a transient fault: record, don't retry.
            return ToolResult(ok=False, error=error.message, attempt=attempt)
        text = json.dumps(output, sort_keys=True, default=str)
        kinds = pii_kinds(text)
        return ToolResult(
            ok=True,
            output_ref=self.content.put(text.encode()),
            output_size=len(text),
            preview=(DEFAULT_REDACTOR.text(text) if kinds else text)[:MAX_PREVIEW_CHARS],
            contains_pii=bool(kinds),
            pii_kinds=kinds,
            replayed=replayed,
            attempt=attempt,
            principal=admitted["principal"],
            credential=admitted["credential"],
        )

    @staticmethod
    def _reserve(conn: sqlite3.Connection, cap: Cap, call: ToolCallInput) -> None:
        now = datetime.now(UTC)
        window = {
            "minute": now.strftime("%Y-%m-%dT%H:%M"),
            "hour": now.strftime("%Y-%m-%dT%H"),
            "day": now.strftime("%Y-%m-%d"),
        }[cap.window]
        amount = Decimal(str(call.arguments.get(cap.sum_field, 0))) if cap.sum_field else Decimal(0)
        try:
            SupportStore.reserve(
                conn,
                f"{call.agent}:{cap.name}:{window}",
                amount,
                cap.max_calls,
                Decimal(cap.max_sum) if cap.max_sum is not None else None,
            )
        except RateLimited as error:
            raise _CapHit(cap.name, f"{error.message} ({cap.window} window {window})") from None

    @staticmethod
    def verified_arguments(spec: ToolSpec, call: ToolCallInput) -> BaseModel:
        try:
            arguments = spec.args.model_validate(call.arguments)
        except ValidationError as error:
            raise ApplicationError(
                f"{spec.name}: arguments fail the schema: {error}",
                type="InvalidToolArguments",
                non_retryable=True,
            ) from None
        if call_digest(spec.name, arguments.model_dump(mode="json")) != call.call_digest:
            raise ApplicationError(
                f"{spec.name}: call digest mismatch; refusing a call the gate did not allow",
                type="UngatedToolCall",
                non_retryable=True,
            )
        return arguments


__all__ = ["ToolActivities"]
