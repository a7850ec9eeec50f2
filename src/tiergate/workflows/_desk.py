"""The approval desk: a run's durable wait for people, on Temporal's workflow APIs.

The run loop hands a held call to `wait_for_decision`; approvers answer through the
`approval` update, whose validator refuses bad answers before they reach history and whose
handler applies good ones. The SLA and expiry are durable timers, and time spent here is
kept apart from the run's wall-time budget. Judging answers is the pure `_approval` module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from tiergate.approvals import ApprovalRequest, RegistrySnapshot
    from tiergate.config import AgentBundle
    from tiergate.policies import ApproverGate
    from tiergate.shared import (
        APPROVER_STATUS_ACTIVITY,
        APPROVERS_SNAPSHOT_ACTIVITY,
        NOTIFY_OVERDUE_ACTIVITY,
        PENDING_APPROVAL_ATTRIBUTE,
        PENDING_MEMO,
        ApproverStatus,
        ApproverStatusInput,
        NotifyResult,
        OverdueNotice,
        RegistryRequest,
    )
    from tiergate.workflows._approval import (
        ApprovalContext,
        apply_answer,
        record_for,
        refusal_for,
    )
    from tiergate.workflows._gate import Gate
    from tiergate.workflows._records import (
        ApprovalReceipt,
        ApprovalRecord,
        ApprovalWait,
        Decision,
        PendingAction,
        Refusal,
        StepRecord,
        ToolCallProposal,
        Verdict,
    )


class ApprovalDesk:
    """Holds the pending action of one run and the answers given to it."""

    def __init__(self, bundle: AgentBundle, gate: Gate, requester: str) -> None:
        self.bundle = bundle
        self.gate = gate
        self.requester = requester
        self.approvers = ApproverGate(bundle.approver_policy)
        self.registry = RegistrySnapshot()
        self.pending: PendingAction | None = None
        self.wait: ApprovalWait | None = None
        self.edited: Decision | None = None
        self.waited_seconds = 0.0

    def context(self) -> ApprovalContext:
        info = workflow.info()
        return ApprovalContext(
            run_id=info.workflow_id,
            agent=self.bundle.config.name,
            registry=self.registry,
            approvers=self.approvers,
            gate=self.gate,
        )

    # -- the update ------------------------------------------------------------------------

    def validate(self, request: ApprovalRequest) -> None:
        """Refuse before anything reaches history; the refusal is logged for the audit trail."""
        refusal = refusal_for(request, self.pending, self.wait, self.context(), workflow.now())
        if refusal is not None:
            workflow.logger.warning(
                "approval refused: %s by %s: %s", refusal.code, refusal.approver, refusal.reason
            )
            raise ApplicationError(refusal.reason, type=refusal.code, non_retryable=True)

    async def handle(self, request: ApprovalRequest) -> ApprovalReceipt:
        # The pinned snapshot may be minutes old: ask the live registry about revocation.
        status = await workflow.execute_local_activity(
            APPROVER_STATUS_ACTIVITY,
            ApproverStatusInput(name=request.approver),
            result_type=ApproverStatus,
            start_to_close_timeout=timedelta(seconds=10),
        )
        now = workflow.now()
        refusal = refusal_for(request, self.pending, self.wait, self.context(), now)
        pinned = self.registry.approvers.get(request.approver)
        if refusal is None and (
            not status.active or pinned is None or status.key_id != pinned.key_id
        ):
            refusal = Refusal(
                approver=request.approver,
                code="key_revoked",
                at=now.isoformat(),
                reason=f"{request.approver}'s key is no longer active in the approver registry",
            )
        if refusal is not None:
            if self.wait is not None:
                self.wait.refusals.append(refusal)
            return ApprovalReceipt(
                accepted=False, status="refused", code=refusal.code, reason=refusal.reason
            )
        assert self.pending is not None
        assert self.wait is not None
        self._apply(request, record_for(request, self.pending, self.context(), now))
        self._publish()
        return ApprovalReceipt(
            accepted=True,
            status=self.wait.status,
            approved_by=list(self.pending.approved_by),
            required=self.pending.required_approvals,
        )

    def _apply(self, request: ApprovalRequest, record: ApprovalRecord) -> None:
        assert self.pending is not None
        assert self.wait is not None
        self.pending, edited = apply_answer(
            request, record, self.pending, self.wait, self.context(), workflow.now()
        )
        self.edited = edited or self.edited

    def _decide(self, status: str) -> None:
        assert self.wait is not None
        self.wait.status = status  # type: ignore[assignment]
        self.wait.decided_at = workflow.now().isoformat()

    # -- the wait --------------------------------------------------------------------------

    async def wait_for_decision(
        self,
        record: StepRecord,
        proposal: ToolCallProposal,
        decision: Decision,
        on_change: Callable[[StepRecord], None],
    ) -> Decision:
        """Wait durably for the answers; returns an `allow` (approved) or a `deny` decision."""
        tier = decision.tier or 3
        times = (
            self.bundle.config.approvals.tier4 if tier >= 4 else self.bundle.config.approvals.tier3
        )
        self.registry = await workflow.execute_activity(
            APPROVERS_SNAPSHOT_ACTIVITY,
            RegistryRequest(run_id=workflow.info().workflow_id),
            result_type=RegistrySnapshot,
            start_to_close_timeout=timedelta(seconds=30),
        )
        start = workflow.now()
        assert decision.arguments is not None
        assert decision.call_digest is not None
        self.pending = PendingAction(
            step=record.step,
            tool=proposal.tool,
            arguments=decision.arguments,
            call_digest=decision.call_digest,
            reason=proposal.reason,
            tier=tier,
            verdict=decision.verdict,
            policy_ids=decision.policy_ids,
            policy_version=decision.policy_version,
            requester=self.requester,
            run_id=workflow.info().workflow_id,
            agent=self.bundle.config.name,
            required_approvals=2 if tier >= 4 else 1,
            waiting_since=start.isoformat(),
            sla_at=(start + timedelta(seconds=times.sla_seconds)).isoformat(),
            expires_at=(start + timedelta(seconds=times.expiry_seconds)).isoformat(),
        )
        self.wait = ApprovalWait(
            original=decision,
            required=self.pending.required_approvals,
            waiting_since=start.isoformat(),
        )
        self.edited = None
        record.approval = self.wait
        on_change(record)
        self._publish()
        workflow.upsert_search_attributes([PENDING_APPROVAL_ATTRIBUTE.value_set(True)])
        decided = await self._until_decided(times.sla_seconds)
        if not decided:
            await self._overdue(record, on_change)
            decided = await self._until_decided(times.expiry_seconds - times.sla_seconds)
        if not decided:
            self._decide("expired")
        waited = (workflow.now() - start).total_seconds()
        self.wait.waited_seconds = round(waited, 3)
        self.waited_seconds += waited
        workflow.upsert_search_attributes([PENDING_APPROVAL_ATTRIBUTE.value_set(False)])
        final = self._final_decision(decision)
        self.pending = None
        self._publish()
        return final

    def _publish(self) -> None:
        """The pending action in the memo: listing waits across runs needs no worker."""
        value = self.pending.model_dump(mode="json") if self.pending else None
        workflow.upsert_memo({PENDING_MEMO: value})

    async def _until_decided(self, seconds: float) -> bool:
        try:
            await workflow.wait_condition(
                lambda: self.wait is not None and self.wait.status != "waiting",
                timeout=timedelta(seconds=seconds),
            )
        except TimeoutError:
            return False
        return True

    async def _overdue(self, record: StepRecord, on_change: Callable[[StepRecord], None]) -> None:
        assert self.pending is not None
        assert self.wait is not None
        self.wait.escalated_at = workflow.now().isoformat()
        self.pending.escalated = True
        on_change(record)
        self._publish()
        workflow.logger.warning(
            "approval overdue: step %s %s (tier %s) waiting since %s",
            self.pending.step,
            self.pending.tool,
            self.pending.tier,
            self.pending.waiting_since,
        )
        workflow.metric_meter().create_counter(
            "tiergate_approval_sla_escalations", "Approvals that passed their SLA"
        ).add(1, {"agent": self.bundle.config.name, "tool": self.pending.tool})
        notice = OverdueNotice(
            run_id=self.pending.run_id,
            agent=self.pending.agent,
            step=self.pending.step,
            tool=self.pending.tool,
            tier=self.pending.tier,
            waiting_since=self.pending.waiting_since,
            expires_at=self.pending.expires_at,
        )
        try:
            await workflow.execute_activity(
                NOTIFY_OVERDUE_ACTIVITY,
                notice,
                result_type=NotifyResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except ActivityError as error:
            # A broken hook must not fail the run; the escalation is already recorded.
            workflow.logger.warning("approval overdue notification failed: %s", error)

    def _final_decision(self, original: Decision) -> Decision:
        assert self.wait is not None
        assert self.pending is not None
        if self.wait.status == "approved":
            base = self.edited or original
            who = ", ".join(self.pending.approved_by)
            return base.model_copy(
                update={
                    "verdict": Verdict.ALLOW,
                    "code": "approved",
                    "reason": f"approved by {who} (tier {self.pending.tier})",
                    "approved_by": list(self.pending.approved_by),
                }
            )
        if self.wait.status == "expired":
            return original.model_copy(
                update={
                    "verdict": Verdict.DENY,
                    "code": "approval_expired",
                    "reason": f"no decision before {self.pending.expires_at}",
                }
            )
        denial = self.wait.approvals[-1]
        return original.model_copy(
            update={
                "verdict": Verdict.DENY,
                "code": "approval_denied",
                "reason": f"denied by {denial.approver}: {denial.justification}",
            }
        )
