"""Prove a run's approvals from its history alone: no worker, no registry file, no database.

Everything needed is in the history: the registry snapshot the run pinned (public keys), the
signed answers (update requests), what the run made of them (update results), and the tool
calls that ran. The audit re-verifies every signature and checks that each tier-3/4 call ran
with enough distinct, verified approvals of exactly that call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio.client import WorkflowHistory

from tiergate.core import (
    APPROVERS_SNAPSHOT_ACTIVITY,
    ApprovalDecision,
    ApprovalRequest,
    RegistrySnapshot,
    RunInput,
    edit_digest,
    person,
    proof_of,
    verified_key,
)
from tiergate.errors import HistoryError
from tiergate.forensics._reader import RunView, read_history


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


def _collect(view: RunView) -> tuple[str, list[_Answer]]:
    """The requester and every approval answer, each with the registry snapshot the run had
    pinned when it arrived."""
    requester = RunInput.model_validate(view.input).requester if view.input else ""
    snapshots = [
        (a.completed_event_id or 0, RegistrySnapshot.model_validate(a.result))
        for a in view.named(APPROVERS_SNAPSHOT_ACTIVITY)
        if a.result is not None
    ]
    answers = []
    for update in view.approvals:
        pinned = [snapshot for done, snapshot in snapshots if done < update.event_id]
        answer = _Answer(
            ApprovalRequest.model_validate(update.argument),
            update.accepted_at,
            pinned[-1] if pinned else None,
        )
        answer.accepted = bool(isinstance(update.outcome, dict) and update.outcome.get("accepted"))
        answers.append(answer)
    return requester, answers


def _check_answer(answer: _Answer, view: RunView, requester: str) -> AuditFinding:
    request = answer.request
    subject = f"{request.decision.value} by {request.approver}"
    approver = answer.snapshot.approvers.get(request.approver) if answer.snapshot else None
    problems = []
    key = verified_key(request, approver) if approver is not None else None
    if approver is None:
        problems.append("approver not in the pinned registry")
    elif key is None:
        problems.append(f"{proof_of(request)} does not verify with any key of theirs")
    elif not approver.active:
        problems.append("approver's key was revoked in the pinned registry")
    if request.run_id != view.workflow_id:
        problems.append(f"signed for run {request.run_id}")
    if view.first_run_id and request.first_run_id != view.first_run_id:
        problems.append(f"signed for execution {request.first_run_id}")
    if person(request.approver) == person(requester):
        problems.append("requester approved its own run")
    if request.expires_at < answer.at:
        problems.append("applied after the signed answer expired")
    detail = "; ".join(problems) or (
        f"{proof_of(request)} verified with {key}, applied {answer.at.isoformat()}"
    )
    return AuditFinding(request.step, subject, not problems, detail)


def audit_approvals(history: WorkflowHistory) -> ApprovalAudit:
    """Re-verify every applied answer and every approval-gated tool call of a run."""
    audit = ApprovalAudit(history.workflow_id)
    view = read_history(history)
    requester, answers = _collect(view)
    try:
        specs = view.pinned_bundle().tools
    except HistoryError:
        specs = {}
    calls = view.tool_calls
    applied = [a for a in answers if a.accepted]
    verified: list[ApprovalRequest] = []
    for answer in applied:
        finding = _check_answer(answer, view, requester)
        audit.findings.append(finding)
        if finding.ok and answer.request.decision == ApprovalDecision.APPROVE:
            verified.append(answer.request)
    for call in (c for c in calls if c.tier >= 3):
        approvers = {
            person(r.approver)
            for r in verified
            if r.step == call.step
            and call.call_digest
            in (r.action_digest, edit_digest(specs.get(call.tool), r.edited_arguments or {}))
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
