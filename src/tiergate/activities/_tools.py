"""The tool runner: one `tool__<name>` activity per tool the worker serves.

Each activity first verifies its call where it executes (`ToolCallVerifier`): who
scheduled it, as the server says, and the gate's decision and the approvals re-derived from
the worker's own bundles, registry and controls. Only then does it mint the call's scoped
credential, hand the verified call to the tool's backend, and bound and measure the
result; the checks made are recorded in the result. The backend owns the effect: it applies each idempotency key at most once and
counts caps in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.activities._content import ContentStore
from tiergate.activities._identity import BackendGuard, CredentialBroker
from tiergate.activities._verifier import ToolCallVerifier
from tiergate.control import caps_for
from tiergate.core import (
    MAX_PREVIEW_CHARS,
    ToolCallInput,
    ToolKind,
    ToolResult,
    VerifiedCall,
    tool_activity_name,
)
from tiergate.errors import CapReachedError, ToolBackendError
from tiergate.sensitive import DEFAULT_REDACTOR, Redactor
from tiergate.tools import Ambiguous, Tool, ToolCall, ToolRegistry


class ToolBackend(Protocol):
    """Where a worker's tools take effect (the demo's is its SQLite store)."""

    def run(self, tool: Tool, arguments: BaseModel, call: ToolCall) -> tuple[dict[str, Any], bool]:
        """Run one verified call: its output, and whether this idempotency key had been
        applied before. A refusal raises ToolBackendError (recorded, never retried), a full
        cap CapReachedError."""
        ...


class ToolRunner:
    """A worker's tools as activities: each verifies its call, then acts on it."""

    def __init__(
        self,
        tools: ToolRegistry,
        backend: ToolBackend,
        content: ContentStore,
        verifier: ToolCallVerifier,
        broker: CredentialBroker | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.tools = tools
        # The worker's configured redactor (TIERGATE_REDACTION): what a preview may show.
        self.redactor = redactor or DEFAULT_REDACTOR
        self.backend = backend
        self.content = content
        self.verifier = verifier
        # The broker mints one credential per verified call; the backend's guard holds
        # only its public key and admits nothing else.
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
        """Verify ``call`` where it executes, then act on it (inside a tool activity)."""
        if call.tool != tool.name:
            raise ApplicationError(
                f"a {call.tool} call reached the {tool.name} activity",
                type="UnverifiedToolCall",
                non_retryable=True,
            )
        return self.act(tool, self.verifier.verify(call), call)

    def act(self, tool: Tool, verified: VerifiedCall, call: ToolCallInput) -> ToolResult:
        """Run a verified call: mint its credential, pass the backend's guard, apply it."""
        attempt = activity.info().attempt if activity.in_activity() else 1
        scope = f"{tool.spec.kind.value}:{tool.name}"
        token = self.broker.mint(verified, [scope])
        try:
            admitted = self.guard.admit(token, tool.name, verified.run_id, verified.step, scope)
            served = ToolCall(
                run_id=verified.run_id,
                step=verified.step,
                agent=verified.agent,
                idempotency_key=call.idempotency_key,
                credential=token,
                # The worker's caps for this agent, never the caller's.
                caps=tuple(caps_for(tool.name, verified.bundle.config.limits.caps)),
            )
            arguments = tool.args.model_validate(verified.arguments)
            output, replayed = self.backend.run(tool, arguments, served)
        except Ambiguous as marker:
            if tool.spec.kind is ToolKind.WRITE:
                # Whether a write took effect must be definite: the run counts it (session,
                # irreversible actions). Unsure is a refusal, as the backend's are.
                return ToolResult(
                    ok=False,
                    error=f"{tool.name} is a write and answered ambiguously: {marker.reason}",
                    attempt=attempt,
                    checks=list(verified.checks),
                )
            # The read answered, but not definitely: its output goes back as any answer does.
            unsure = self._result(tool, marker.output, False, attempt, admitted)
            return unsure.model_copy(
                update={"checks": list(verified.checks), "ambiguous": marker.reason}
            )
        except CapReachedError as hit:
            return ToolResult(
                ok=False,
                error=f"rate_limited by cap {hit.cap}: {hit.message}",
                attempt=attempt,
                code="rate_limited",
                cap=hit.cap,
                checks=list(verified.checks),
            )
        except ToolBackendError as error:
            # A refusal by the backend is an answer, not a transient fault: record, don't retry.
            return ToolResult(
                ok=False, error=error.message, attempt=attempt, checks=list(verified.checks)
            )
        result = self._result(tool, output, replayed, attempt, admitted)
        return result.model_copy(update={"checks": list(verified.checks)})

    def _result(
        self,
        tool: Tool,
        output: dict[str, Any],
        replayed: bool,
        attempt: int,
        admitted: dict[str, Any],
    ) -> ToolResult:
        text = json.dumps(output, sort_keys=True, default=str)
        # Found in the values as written (JSON escapes would hide a tab between a card's
        # groups), masked by the worker's configured redactor, patterns and fields included.
        kinds = self.redactor.kinds_in(output)
        shown = json.dumps(self.redactor.value(output), sort_keys=True, default=str)
        return ToolResult(
            ok=True,
            output_ref=self.content.put(text.encode()),
            output_size=len(text),
            preview=shown[:MAX_PREVIEW_CHARS],
            contains_pii=bool(kinds),
            pii_kinds=kinds,
            replayed=replayed,
            attempt=attempt,
            principal=admitted["principal"],
            credential=admitted["credential"],
            ambiguous=_ambiguous(tool, output),
        )


def _ambiguous(tool: Tool, output: dict[str, Any]) -> str | None:
    """Why ``output`` is ambiguous by the tool's ``ambiguous_when``, or None."""
    for name, values in tool.spec.ambiguous_when.items():
        value = output.get(name)
        if value is not None and str(value) in values:
            return f"{name} is {value}"
    return None
