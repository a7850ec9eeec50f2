"""Which support store a tool call acts on, and how a write takes effect there.

A worker's desk has the store its settings name. An eval case's run has a store of its own,
set up by the support fixture (`tiergate.demo._cases`) and found by the run's workflow id,
which every call of that run carries: cases run side by side on one worker without seeing
each other's writes, and none touches the worker's store.

Writes run inside the store's apply-once table (one effect per idempotency key) when the
tool honors keys, and count their caps in the same transaction, so a refused or retried
write counts nothing twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel

from tiergate.control import cap_amount, cap_counter, cap_window
from tiergate.core import Cap
from tiergate.demo._store import SupportStore
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.state import Tx
from tiergate.tools import Replayed, ToolCall

Effect = Callable[[Tx], dict[str, Any]]


class SupportDesk:
    """The support tools' view of their stores: ``store`` is the worker's (None: specs only)."""

    # Eval case stores by run id. Run ids are unique, so one table serves every desk of the
    # process (the fixture that fills it is not told which worker will serve the case).
    _cases: ClassVar[dict[str, SupportStore]] = {}
    _cases_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, store: SupportStore | None) -> None:
        self.default = store

    @classmethod
    def hold_case(cls, run_id: str, store: SupportStore) -> None:
        """Calls of run ``run_id`` act on ``store`` from now on."""
        with cls._cases_lock:
            cls._cases[run_id] = store

    @classmethod
    def drop_case(cls, run_id: str) -> SupportStore | None:
        """Calls of run ``run_id`` no longer have a store of their own."""
        with cls._cases_lock:
            return cls._cases.pop(run_id, None)

    @classmethod
    def case(cls, run_id: str) -> SupportStore | None:
        with cls._cases_lock:
            return cls._cases.get(run_id)

    def store(self, call: ToolCall) -> SupportStore:
        """The store ``call`` acts on: its eval case's, else the worker's."""
        store = self.case(call.run_id) or self.default
        if store is None:
            raise ToolBackendError(
                "this support desk has no store: build it with SupportDesk(store)"
            )
        return store

    def write(
        self, tool: str, call: ToolCall, arguments: BaseModel, effect: Effect, *, once: bool = True
    ) -> dict[str, Any] | Replayed:
        """``effect`` in one transaction with the call's cap counts; with ``once``, at most
        once per idempotency key (a second call with the key gets the first answer back)."""
        amounts = arguments.model_dump(mode="json")

        def counted(tx: Tx) -> dict[str, Any]:
            for cap in call.caps:
                _reserve(tx, call.agent, cap, amounts)
            return effect(tx)

        store = self.store(call)
        if not once:
            return store.apply_each_time(counted)[0]
        answer, replayed = store.apply_once(call.idempotency_key, tool, counted)
        return Replayed(answer) if replayed else answer


def _reserve(tx: Tx, agent: str, cap: Cap, arguments: dict[str, Any]) -> None:
    window = cap_window(cap, datetime.now(UTC))
    try:
        SupportStore.reserve(
            tx,
            cap_counter(agent, cap, window),
            cap_amount(cap, arguments),
            cap.max_calls,
            Decimal(cap.max_sum) if cap.max_sum is not None else None,
            cap.name,
        )
    except CapReachedError as hit:
        raise CapReachedError(cap.name, f"{hit.message} ({cap.window} window {window})") from None
