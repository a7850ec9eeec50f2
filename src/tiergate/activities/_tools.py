"""The tool runner: one `tool__<name>` activity per tool the worker serves.

Each activity re-validates its arguments against the spec and recomputes the call digest,
refusing anything the gate did not allow for exactly this call; it mints the call's scoped
credential, hands the verified call to the tool's backend, and bounds and measures the
result. The backend owns the effect: it applies each idempotency key at most once and
counts caps in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.activities._content import ContentStore
from tiergate.activities._identity import BackendGuard, CredentialBroker
from tiergate.control import caps_for
from tiergate.core import (
    MAX_PREVIEW_CHARS,
    ToolCallInput,
    ToolResult,
    ToolSpec,
    call_digest,
    tool_activity_name,
)
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.sensitive import DEFAULT_REDACTOR, pii_kinds
from tiergate.tools import Tool, ToolCall, ToolRegistry


class ToolBackend(Protocol):
    """Where a worker's tools take effect (the demo's is its SQLite store)."""

    def run(self, tool: Tool, arguments: BaseModel, call: ToolCall) -> tuple[dict[str, Any], bool]:
        """Run one verified call: its output, and whether this idempotency key had been
        applied before. A refusal raises ToolBackendError (recorded, never retried), a full
        cap CapReachedError."""
        ...


class ToolRunner:
    """A worker's tools as activities."""

    def __init__(
        self,
        tools: ToolRegistry,
        backend: ToolBackend,
        content: ContentStore,
        broker: CredentialBroker | None = None,
    ) -> None:
        self.tools = tools
        self.backend = backend
        self.content = content
        # The broker mints one credential per call; the backend's guard holds only its
        # public key and admits nothing else.
        self.broker = broker or CredentialBroker.ephemeral()
        self.guard = BackendGuard(self.broker.verifier())

    def activities(self) -> list[Callable[..., Any]]:
        return [self._activity(tool) for tool in self.tools]

    def _activity(self, tool: Tool) -> Callable[[ToolCallInput], ToolResult]:
        @activity.defn(name=tool_activity_name(tool.name))
        def run_tool(call: ToolCallInput) -> ToolResult:
            return self.execute(tool, call)

        return run_tool

    def execute(self, tool: Tool, call: ToolCallInput) -> ToolResult:
        canonical = verified_arguments(tool.spec, call)
        attempt = activity.info().attempt if activity.in_activity() else 1
        scope = f"{tool.spec.kind.value}:{tool.name}"
        token = self.broker.mint(call.agent, call.run_id, call.step, tool.name, [scope])
        try:
            admitted = self.guard.admit(token, tool.name, call.run_id, call.step, scope)
            served = ToolCall(
                run_id=call.run_id,
                step=call.step,
                agent=call.agent,
                idempotency_key=call.idempotency_key,
                credential=token,
                caps=tuple(caps_for(tool.name, call.caps)),
            )
            output, replayed = self.backend.run(tool, tool.args.model_validate(canonical), served)
        except CapReachedError as hit:
            return ToolResult(
                ok=False,
                error=f"rate_limited by cap {hit.cap}: {hit.message}",
                attempt=attempt,
                code="rate_limited",
                cap=hit.cap,
            )
        except ToolBackendError as error:
            # A refusal by the backend is an answer, not a transient fault: record, don't retry.
            return ToolResult(ok=False, error=error.message, attempt=attempt)
        return self._result(output, replayed, attempt, admitted)

    def _result(
        self, output: dict[str, Any], replayed: bool, attempt: int, admitted: dict[str, Any]
    ) -> ToolResult:
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


def verified_arguments(spec: ToolSpec, call: ToolCallInput) -> dict[str, Any]:
    """The call's canonical arguments, or a non-retryable refusal when they do not fit the
    spec or their digest is not the one the call claims (it was not the gate's allow)."""
    try:
        canonical = spec.canonical_arguments(call.arguments)
    except ValidationError as error:
        raise ApplicationError(
            f"{spec.name}: arguments fail the schema: {error}",
            type="InvalidToolArguments",
            non_retryable=True,
        ) from None
    if call_digest(spec.name, canonical) != call.call_digest:
        raise ApplicationError(
            f"{spec.name}: call digest mismatch; refusing a call the gate did not allow",
            type="UngatedToolCall",
            non_retryable=True,
        )
    return canonical
