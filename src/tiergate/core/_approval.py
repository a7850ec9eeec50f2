"""The approval state machine: which answers count, which are refused, when a step is decided.

Pure: the workflow's update validator and handler both call it, so the validator refuses
bad answers before anything reaches history and the handler re-checks against the state it
actually applies to. Checks run cheapest and most telling first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tiergate.core._agent import TierApproval
from tiergate.core._answers import (
    ApprovalDecision,
    ApprovalRequest,
    RegistrySnapshot,
    person,
    proof_of,
    verified_key,
)
from tiergate.core._approvers import ApproverGate
from tiergate.core._decision import Allowed, Decision, Denied, Held, denial
from tiergate.core._gate import Gate
from tiergate.core._proposal import ToolCallProposal
from tiergate.core._records import ApprovalRecord, ApprovalWait, PendingAction, Refusal


@dataclass(frozen=True)
class ApprovalContext:
    """What a run knows when judging an answer."""

    run_id: str
    first_run_id: str
    agent: str
    registry: RegistrySnapshot
    approvers: ApproverGate
    gate: Gate
    answer_ttl: timedelta


def _refuse(request: ApprovalRequest, code: str, reason: str, now: datetime) -> Refusal:
    return Refusal(approver=request.approver, code=code, reason=reason, at=now.isoformat())


def refusal_for(
    request: ApprovalRequest,
    pending: PendingAction | None,
    wait: ApprovalWait | None,
    ctx: ApprovalContext,
    now: datetime,
) -> Refusal | None:
    """None if ``request`` may be applied now, else the reason it is refused."""
    if pending is None or wait is None or wait.status != "waiting":
        return _refuse(request, "not_waiting", "this run is not waiting for an approval", now)
    # Evaluated in order and lazily: later checks rely on earlier ones (a known approver).
    checks: tuple[Callable[[], tuple[str, str] | None], ...] = (
        lambda: _addressing(request, pending, ctx),
        lambda: _authenticity(request, ctx, now),
        lambda: _separation(request, pending, wait),
        lambda: _content(request, pending),
        lambda: _edit(request, pending, ctx),
        lambda: _authority(request, pending, ctx),
    )
    for check in checks:
        if (found := check()) is not None:
            return _refuse(request, found[0], found[1], now)
    return None


def _addressing(
    request: ApprovalRequest, pending: PendingAction, ctx: ApprovalContext
) -> tuple[str, str] | None:
    if request.run_id != ctx.run_id:
        return "wrong_run", f"signed for run {request.run_id}, not {ctx.run_id}"
    if request.first_run_id != ctx.first_run_id:
        return (
            "wrong_execution",
            f"signed for execution {request.first_run_id} of {request.run_id}, not "
            f"{ctx.first_run_id}: an answer from another run with this id approves nothing here",
        )
    if request.step != pending.step:
        return "wrong_step", f"signed for step {request.step}; step {pending.step} is waiting"
    if request.nonce != pending.nonce:
        return "wrong_wait", "signed for another wait of this step; review the action again"
    if request.action_digest != pending.call_digest:
        return (
            "action_changed",
            "signed for a different action than the one waiting; review it again",
        )
    return None


def _authenticity(
    request: ApprovalRequest, ctx: ApprovalContext, now: datetime
) -> tuple[str, str] | None:
    approver = ctx.registry.approvers.get(request.approver)
    if approver is None:
        return "unknown_approver", f"{request.approver!r} is not a registered approver"
    if not approver.active:
        return "key_revoked", f"{request.approver}'s key {approver.key_id} was revoked"
    if not request.proved:
        return "missing_signature", "the approval is not signed"
    if request.passkey is not None and request.passkey.credential_id not in {
        p.credential_id for p in approver.passkeys
    }:
        return (
            "unknown_key",
            f"{request.approver}'s passkey was not endorsed when this wait began (the run "
            f"pinned registry {ctx.registry.version[:19]}); it counts for waits that begin later",
        )
    if verified_key(request, approver) is None:
        keys = (
            [approver.key_id] if request.passkey is None else [p.key_id for p in approver.passkeys]
        )
        return (
            "bad_signature",
            f"the {proof_of(request)} does not verify with {', '.join(k for k in keys if k) or 'any key of theirs'}",
        )
    if request.expires_at <= now:
        return (
            "approval_expired",
            f"the signed approval expired at {request.expires_at.isoformat()}",
        )
    if request.expires_at - now > ctx.answer_ttl:
        return (
            "lifetime_too_long",
            f"the answer is signed to stay valid until {request.expires_at.isoformat()}; "
            f"this run accepts answers valid for at most {ctx.answer_ttl.total_seconds():.0f} s",
        )
    return None


def _separation(
    request: ApprovalRequest, pending: PendingAction, wait: ApprovalWait
) -> tuple[str, str] | None:
    who = person(request.approver)
    if who == person(pending.requester):
        return "self_approval", "the requester of a run cannot approve its actions"
    # Once per wait, whatever they signed: an approver who edited the action has answered
    # it, and cannot add a second approval of their own edit.
    if any(person(a.approver) == who for a in wait.approvals):
        return "duplicate_approver", f"{request.approver} already answered this action"
    return None


def _content(request: ApprovalRequest, pending: PendingAction) -> tuple[str, str] | None:
    text = request.justification.strip()
    if request.decision == ApprovalDecision.DENY:
        if not text:
            return "reason_required", "a deny needs a reason"
        if request.edited_arguments is not None:
            return "edit_on_deny", "only an approval can edit the action"
    elif pending.tier >= 4 and not text:
        return "justification_required", "tier-4 approvals need a justification"
    return None


def _call_that_runs(
    request: ApprovalRequest, pending: PendingAction, ctx: ApprovalContext
) -> tuple[dict[str, Any], int] | None:
    """The arguments and tier of the call ``request`` would release: its edit, re-gated,
    when it edits (None when the edit is denied), else the pending call."""
    if request.edited_arguments is None:
        return pending.arguments, pending.tier
    decision = regate_edit(request, pending, ctx)
    if isinstance(decision, Denied):
        return None
    return decision.arguments, decision.tier


def _authority(
    request: ApprovalRequest, pending: PendingAction, ctx: ApprovalContext
) -> tuple[str, str] | None:
    approver = ctx.registry.approvers[request.approver]
    call = _call_that_runs(request, pending, ctx)
    if call is None:
        return None  # `_edit` names the denial
    arguments, tier = call
    allowed, _ = ctx.approvers.may_decide(
        approver.name, approver.roles, ctx.agent, pending.tool, tier, arguments
    )
    if not allowed:
        what = "the edited call" if request.edited_arguments is not None else "this call"
        return (
            "not_authorized",
            f"no approver policy lets {approver.name} (roles {', '.join(approver.roles)}) "
            f"decide {pending.tool} at tier {tier} with the arguments of {what}",
        )
    return None


def regate_edit(request: ApprovalRequest, pending: PendingAction, ctx: ApprovalContext) -> Decision:
    """The gate's decision on the edited call, exactly as on a model proposal."""
    proposal = ToolCallProposal(
        tool=pending.tool, arguments=request.edited_arguments or {}, reason=pending.reason
    )
    return ctx.gate.decide(proposal, pending.step)


def _edit(
    request: ApprovalRequest, pending: PendingAction, ctx: ApprovalContext
) -> tuple[str, str] | None:
    if request.edited_arguments is None:
        return None
    decision = regate_edit(request, pending, ctx)
    if isinstance(decision, Denied):
        return "edit_denied", f"the edited call is denied: {decision.reason}"
    if decision.tier > pending.tier:
        return "edit_raises_tier", f"the edit raises the tier to {decision.tier}"
    return None


def record_for(
    request: ApprovalRequest, pending: PendingAction, ctx: ApprovalContext, now: datetime
) -> ApprovalRecord:
    """The audit record of an accepted answer (call only when `refusal_for` is None)."""
    approver = ctx.registry.approvers[request.approver]
    key = verified_key(request, approver) or ""
    arguments, tier = _call_that_runs(request, pending, ctx) or (pending.arguments, pending.tier)
    _, policy_ids = ctx.approvers.may_decide(
        approver.name, approver.roles, ctx.agent, pending.tool, tier, arguments
    )
    return ApprovalRecord(
        approver=request.approver,
        decision=request.decision.value,
        justification=request.justification,
        edited_arguments=request.edited_arguments,
        action_digest=request.action_digest,
        step=request.step,
        at=now.isoformat(),
        expires_at=request.expires_at.isoformat(),
        via=request.via,
        signature=request.signature,
        passkey=request.passkey,
        key_id=key,
        registry_version=ctx.registry.version,
        verified=True,
        verification=f"{proof_of(request)} verified with {key} "
        f"(registry {ctx.registry.version[:19]})",
        approver_policy_ids=policy_ids,
        run_id=request.run_id,
        first_run_id=request.first_run_id,
        nonce=request.nonce,
    )


def apply_answer(
    request: ApprovalRequest,
    record: ApprovalRecord,
    pending: PendingAction,
    wait: ApprovalWait,
    ctx: ApprovalContext,
    now: datetime,
) -> tuple[PendingAction, Allowed | Held | None]:
    """Apply an accepted answer (`refusal_for` returned None) to the wait.

    Returns the pending action as it now stands and, for an approval with edits, the gate's
    decision on the edited call. A deny decides the wait at once; approvals decide it when
    ``required_approvals`` distinct approvers have said yes to the same action.
    """
    wait.approvals.append(record)
    edited: Allowed | Held | None = None
    if request.decision == ApprovalDecision.DENY:
        wait.status, wait.decided_at = "denied", now.isoformat()
        return pending, None
    if request.edited_arguments is not None:
        regated = regate_edit(request, pending, ctx)
        assert not isinstance(regated, Denied), "refusal_for refuses a denied edit"
        edited = regated
        pending = pending.model_copy(
            update={
                "arguments": edited.arguments,
                "call_digest": edited.call_digest,
                "tier": edited.tier,
                "required_approvals": 2 if edited.tier >= 4 else 1,
                "approved_by": [request.approver],
            }
        )
    else:
        pending.approved_by.append(request.approver)
    if len(pending.approved_by) >= pending.required_approvals:
        wait.status, wait.decided_at = "approved", now.isoformat()
    return pending, edited


def open_wait(
    decision: Held,
    proposal: ToolCallProposal,
    step: int,
    requester: str,
    execution: tuple[str, str],
    nonce: str,
    agent: str,
    times: TierApproval,
    now: datetime,
) -> tuple[PendingAction, ApprovalWait]:
    """The pending action people are asked about, and the wait that collects their answers.

    ``execution`` is the workflow id and first run id every answer must sign, ``nonce`` the
    wait's own (the shell draws it from the workflow's deterministic randomness)."""
    pending = PendingAction(
        step=step,
        tool=proposal.tool,
        arguments=decision.arguments,
        call_digest=decision.call_digest,
        reason=proposal.reason,
        tier=decision.tier,
        verdict=decision.verdict,
        policy_ids=decision.policy_ids,
        policy_version=decision.policy_version,
        requester=requester,
        run_id=execution[0],
        first_run_id=execution[1],
        nonce=nonce,
        agent=agent,
        required_approvals=decision.required_approvals,
        waiting_since=now.isoformat(),
        sla_at=(now + timedelta(seconds=times.sla_seconds)).isoformat(),
        expires_at=(now + timedelta(seconds=times.expiry_seconds)).isoformat(),
    )
    wait = ApprovalWait(
        original=decision, required=pending.required_approvals, waiting_since=now.isoformat()
    )
    return pending, wait


def final_decision(
    original: Held, edited: Allowed | Held | None, pending: PendingAction, wait: ApprovalWait
) -> Allowed | Denied:
    """What a decided wait means for the call: an allow of exactly what was approved (the
    edit, if any), or a denial naming who denied it or when it expired."""
    if wait.status == "approved":
        base = edited or original
        who = ", ".join(pending.approved_by)
        released = set(pending.approved_by)
        return Allowed(
            **base.model_dump(exclude={"verdict", "code", "reason", "approved_by", "answers"}),
            code="approved",
            reason=f"approved by {who} (tier {pending.tier})",
            approved_by=list(pending.approved_by),
            answers=[
                record.signed()
                for record in wait.approvals
                if record.approver in released and record.decision == ApprovalDecision.APPROVE
            ],
        )
    if wait.status == "expired":
        return denial(original, "approval_expired", f"no decision before {pending.expires_at}")
    last = wait.approvals[-1]
    return denial(original, "approval_denied", f"denied by {last.approver}: {last.justification}")
