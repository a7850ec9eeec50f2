"""Client side of approvals: list what waits, sign an answer, send it as the update.

The CLI, the web page and the demo all answer through `decide`, so every channel signs the
same fields and meets the same validator.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from tiergate.approvals._registry import ApproverRegistry
from tiergate.approvals._signing import sign
from tiergate.core import (
    APPROVAL_UPDATE,
    PENDING_APPROVAL_QUERY,
    PENDING_MEMO,
    WORKFLOW_NAME,
    ApprovalDecision,
    ApprovalReceipt,
    ApprovalRequest,
    PendingAction,
)
from tiergate.errors import ApprovalRefusedError, NotWaitingError
from tiergate.workflows import PENDING_APPROVAL_ATTRIBUTE

#: How long a signed answer stays valid: long enough to reach the run, short enough to
#: be useless if captured.
ANSWER_TTL = timedelta(minutes=10)


async def pending_of(client: Client, run_id: str) -> PendingAction:
    """What ``run_id`` waits for, asked of the run itself (needs a worker to answer)."""
    handle = client.get_workflow_handle(run_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        raise NotWaitingError(f"cannot reach run {run_id}: {error.message}") from None
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "unknown"
        raise NotWaitingError(f"run {run_id} is {status}, not waiting for an approval")
    try:
        pending: PendingAction | None = await handle.query(
            PENDING_APPROVAL_QUERY,
            PENDING_MEMO,
            result_type=PendingAction | None,  # type: ignore[arg-type]
        )
    except RPCError as error:
        raise NotWaitingError(f"cannot reach run {run_id}: {error.message}") from None
    if pending is None:
        raise NotWaitingError(f"run {run_id} is not waiting for an approval")
    return pending


async def list_pending(client: Client, limit: int = 100) -> list[PendingAction]:
    """Pending approvals across runs, from Temporal visibility alone (oldest wait first)."""
    query = (
        f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Running" '
        f"AND {PENDING_APPROVAL_ATTRIBUTE.name} = true"
    )
    listed = []
    async for wf in client.list_workflows(query, limit=limit):
        value = (await wf.memo()).get(PENDING_MEMO)
        if value:
            listed.append(PendingAction.model_validate(value))
    return one_per_run(listed)


def one_per_run(listed: Iterable[PendingAction]) -> list[PendingAction]:
    """One entry per run, the last one listed winning, oldest wait first.

    Visibility pages are not a snapshot: a run whose record changes while the list is read
    can come back on two pages (seen in the drill listing 10,000 waiting runs), and an
    approver must not be shown, or count, the same action twice.
    """
    pending = {action.run_id: action for action in listed}
    return sorted(pending.values(), key=lambda p: p.waiting_since)


def build_request(
    pending: PendingAction,
    approver: str,
    decision: ApprovalDecision,
    justification: str = "",
    edited_arguments: dict[str, Any] | None = None,
    via: Literal["cli", "web", "demo", "api"] = "cli",
    now: datetime | None = None,
) -> ApprovalRequest:
    return ApprovalRequest(
        run_id=pending.run_id,
        first_run_id=pending.first_run_id,
        step=pending.step,
        nonce=pending.nonce,
        action_digest=pending.call_digest,
        decision=decision,
        approver=approver,
        justification=justification,
        edited_arguments=edited_arguments,
        via=via,
        expires_at=(now or datetime.now(UTC)) + ANSWER_TTL,
    )


async def submit(client: Client, request: ApprovalRequest) -> ApprovalReceipt:
    """Send a signed answer; a refusal raises ApprovalRefusedError with the run's reason."""
    try:
        receipt: ApprovalReceipt = await client.get_workflow_handle(request.run_id).execute_update(
            APPROVAL_UPDATE, request, result_type=ApprovalReceipt
        )
    except WorkflowUpdateFailedError as error:
        cause = error.cause
        if isinstance(cause, ApplicationError):
            raise ApprovalRefusedError(cause.type or "refused", cause.message) from None
        raise
    except RPCError as error:
        raise NotWaitingError(
            f"run {request.run_id} cannot take an answer: {error.message}"
        ) from None
    if not receipt.accepted:
        raise ApprovalRefusedError(receipt.code, receipt.reason)
    return receipt


async def decide(
    client: Client,
    registry: ApproverRegistry,
    run_id: str,
    approver: str,
    decision: ApprovalDecision,
    justification: str = "",
    edited_arguments: dict[str, Any] | None = None,
    via: Literal["cli", "web", "demo", "api"] = "cli",
) -> ApprovalReceipt:
    """Look up what ``run_id`` waits for, sign ``approver``'s answer to it, and send it."""
    pending = await pending_of(client, run_id)
    key = registry.private_key(approver)
    return await answer(
        client, key, pending, approver, decision, justification, edited_arguments, via
    )


async def answer(
    client: Client,
    key: Ed25519PrivateKey,
    pending: PendingAction,
    approver: str,
    decision: ApprovalDecision,
    justification: str = "",
    edited_arguments: dict[str, Any] | None = None,
    via: Literal["cli", "web", "demo", "api"] = "cli",
) -> ApprovalReceipt:
    """Sign ``approver``'s answer to exactly ``pending`` (the action they reviewed: its
    digest, step and wait) and send it; if the run moved on, the run refuses it."""
    request = build_request(pending, approver, decision, justification, edited_arguments, via)
    return await submit(client, sign(request, key))
