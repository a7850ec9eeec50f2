"""Prove a run's approvals from its history alone: no worker, no registry file, no database.

Everything needed is in the history: the registry snapshot the run pinned (public keys), the
signed answers (update requests), what the run made of them (update results), and the tool
calls that ran. The audit re-verifies every signature and checks that each tier-3/4 call ran
with enough distinct, verified approvals of exactly that call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from tiergate.approvals._registry import RegistrySnapshot
from tiergate.approvals._signing import ApprovalDecision, ApprovalRequest, verify
from tiergate.digest import call_digest
from tiergate.shared import (
    APPROVAL_UPDATE,
    APPROVERS_SNAPSHOT_ACTIVITY,
    RunInput,
    ToolCallInput,
    tool_activity_name,
)
from tiergate.tools import SUPPORT_TOOLS


@dataclass(frozen=True)
class AuditFinding:
    """One checked fact: an answer's signature, or a held call's approvals."""

    step: int
    subject: str
    ok: bool
    detail: str


@dataclass
class ApprovalAudit:
    workflow_id: str
    findings: list[AuditFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)


@dataclass
class _Answer:
    request: ApprovalRequest
    at: datetime
    snapshot: RegistrySnapshot | None
    accepted: bool = False


def _decode(payload: Payload) -> Any:
    return pydantic_data_converter.payload_converter.from_payload(payload)


def _digest_of_edit(tool: str, arguments: dict[str, Any]) -> str | None:
    spec = SUPPORT_TOOLS.get(tool)
    if spec is None:
        return None
    try:
        return call_digest(tool, spec.args.model_validate(arguments).model_dump(mode="json"))
    except ValueError:
        return None


def _collect(history: WorkflowHistory) -> tuple[str, dict[str, _Answer], list[ToolCallInput]]:
    requester = ""
    snapshots: dict[int, str] = {}
    snapshot: RegistrySnapshot | None = None
    answers: dict[str, _Answer] = {}
    calls: list[ToolCallInput] = []
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            raw = _decode(event.workflow_execution_started_event_attributes.input.payloads[0])
            requester = RunInput.model_validate(raw).requester
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            name = attrs.activity_type.name
            if name == APPROVERS_SNAPSHOT_ACTIVITY:
                snapshots[event.event_id] = name
            elif name.startswith(tool_activity_name("")):
                calls.append(ToolCallInput.model_validate(_decode(attrs.input.payloads[0])))
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs_c = event.activity_task_completed_event_attributes
            if attrs_c.scheduled_event_id in snapshots:
                snapshot = RegistrySnapshot.model_validate(_decode(attrs_c.result.payloads[0]))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            accepted = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if accepted.input.name == APPROVAL_UPDATE:
                request = ApprovalRequest.model_validate(_decode(accepted.input.args.payloads[0]))
                at = event.event_time.ToDatetime().astimezone()
                answers[accepted.meta.update_id] = _Answer(request, at, snapshot)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            done = event.workflow_execution_update_completed_event_attributes
            if done.meta.update_id in answers and done.outcome.HasField("success"):
                receipt = _decode(done.outcome.success.payloads[0])
                answers[done.meta.update_id].accepted = bool(receipt.get("accepted"))
    return requester, answers, calls


def _check_answer(answer: _Answer, workflow_id: str, requester: str) -> AuditFinding:
    request = answer.request
    subject = f"{request.decision.value} by {request.approver}"
    approver = answer.snapshot.approvers.get(request.approver) if answer.snapshot else None
    problems = []
    if approver is None:
        problems.append("approver not in the pinned registry")
    elif not verify(request, approver.public_key):
        problems.append(f"signature does not verify with {approver.key_id}")
    elif not approver.active:
        problems.append("approver's key was revoked in the pinned registry")
    if request.run_id != workflow_id:
        problems.append(f"signed for run {request.run_id}")
    if request.approver == requester:
        problems.append("requester approved its own run")
    if request.expires_at < answer.at:
        problems.append("applied after the signed answer expired")
    detail = "; ".join(problems) or (
        f"ed25519 signature verified with {approver.key_id if approver else '?'}, applied {answer.at.isoformat()}"
    )
    return AuditFinding(request.step, subject, not problems, detail)


def audit_approvals(history: WorkflowHistory) -> ApprovalAudit:
    """Re-verify every applied answer and every approval-gated tool call of a run."""
    audit = ApprovalAudit(history.workflow_id)
    requester, answers, calls = _collect(history)
    applied = [a for a in answers.values() if a.accepted]
    verified: list[ApprovalRequest] = []
    for answer in applied:
        finding = _check_answer(answer, history.workflow_id, requester)
        audit.findings.append(finding)
        if finding.ok and answer.request.decision == ApprovalDecision.APPROVE:
            verified.append(answer.request)
    for call in (c for c in calls if c.tier >= 3):
        approvers = {
            r.approver
            for r in verified
            if r.step == call.step
            and call.call_digest
            in (r.action_digest, _digest_of_edit(call.tool, r.edited_arguments or {}))
        }
        needed = 2 if call.tier >= 4 else 1
        audit.findings.append(
            AuditFinding(
                call.step,
                f"{call.tool} (tier {call.tier})",
                len(approvers) >= needed,
                f"{len(approvers)} of {needed} verified approvals of this exact call: "
                f"{', '.join(sorted(approvers)) or 'none'}",
            )
        )
    return audit
