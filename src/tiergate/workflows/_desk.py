"""The approval desk: a run's durable wait for people, on Temporal's workflow APIs.

The run loop hands a held call to `wait`; approvers answer through the `approval` update,
whose validator refuses bad answers before they reach history and whose handler applies
good ones. The SLA and expiry are durable timers. Judging answers, and what a decided wait
means for the call, is the pure core (`tiergate.core` approval functions); this is only
the waiting, the timers and the activities around them.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from tiergate.core import (
        APPROVER_STATUS_ACTIVITY,
        APPROVERS_SNAPSHOT_ACTIVITY,
        NOTIFY_OVERDUE_ACTIVITY,
        PENDING_MEMO,
        AgentBundle,
        Allowed,
        ApprovalContext,
        ApprovalReceipt,
        ApprovalRequest,
        ApprovalWait,
        ApproverGate,
        ApproverStatus,
        ApproverStatusInput,
        Denied,
        Gate,
        Held,
        NotifyResult,
        OverdueNotice,
        PendingAction,
        Refusal,
        RegistryRequest,
        RegistrySnapshot,
        TierApproval,
        ToolCallProposal,
        apply_answer,
        final_decision,
        open_wait,
        record_for,
        refusal_for,
        verified_key,
    )
    from tiergate.workflows._attributes import PENDING_APPROVAL_ATTRIBUTE
    from tiergate.workflows._retry import service_retry


class ApprovalDesk:
    """Holds the pending action of one run and the answers given to it."""

    def __init__(self, bundle: AgentBundle, gate: Gate, requester: str) -> None:
        self.bundle = bundle
        self.gate = gate
        self.requester = requester
        self.approvers = ApproverGate(bundle.approver_policy, bundle.tools)
        self.registry = RegistrySnapshot()
        self.pending: PendingAction | None = None
        self.wait: ApprovalWait | None = None
        self.edited: Allowed | Held | None = None
        self._opened = workflow.now()

    def context(self) -> ApprovalContext:
        info = workflow.info()
        return ApprovalContext(
            run_id=info.workflow_id,
            first_run_id=info.first_execution_run_id,
            agent=self.bundle.config.name,
            registry=self.registry,
            approvers=self.approvers,
            gate=self.gate,
            answer_ttl=timedelta(seconds=self.bundle.config.approvals.answer_ttl_seconds),
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
            retry_policy=service_retry(),
        )
        now = workflow.now()
        refusal = refusal_for(request, self.pending, self.wait, self.context(), now)
        pinned = self.registry.approvers.get(request.approver)
        # The key that proved the answer must still be the approver's (revoked or re-keyed
        # since the snapshot was pinned: refused).
        proving = verified_key(request, pinned) if refusal is None and pinned else None
        if refusal is None and (
            not status.active or proving is None or proving not in (status.keys or [status.key_id])
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
        record = record_for(request, self.pending, self.context(), now)
        self.pending, edited = apply_answer(
            request, record, self.pending, self.wait, self.context(), now
        )
        self.edited = edited or self.edited
        self._publish()
        return ApprovalReceipt(
            accepted=True,
            status=self.wait.status,
            approved_by=list(self.pending.approved_by),
            required=self.pending.required_approvals,
        )

    # -- the wait --------------------------------------------------------------------------

    async def open(self, step: int, proposal: ToolCallProposal, decision: Held) -> ApprovalWait:
        """Pins the approver registry and opens the wait: from here answers are accepted.
        `published` makes it visible (memo, search attribute) once the step is marked."""
        config = self.bundle.config
        times = config.approvals.tier4 if decision.tier >= 4 else config.approvals.tier3
        self.registry = await workflow.execute_activity(
            APPROVERS_SNAPSHOT_ACTIVITY,
            RegistryRequest(run_id=workflow.info().workflow_id),
            result_type=RegistrySnapshot,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=service_retry(),
        )
        self.pending, self.wait = open_wait(
            decision,
            proposal,
            step,
            self.requester,
            (workflow.info().workflow_id, workflow.info().first_execution_run_id),
            # Deterministic (seeded by the run), and new for every wait.
            workflow.uuid4().hex,
            config.name,
            times,
            workflow.now(),
        )
        self.edited = None
        self._opened = workflow.now()
        return self.wait

    def published(self) -> None:
        self._publish()
        workflow.upsert_search_attributes([PENDING_APPROVAL_ATTRIBUTE.value_set(True)])

    async def until_sla(self) -> bool:
        """Waits for a decision until the SLA; False if the SLA passed first."""
        return await self._until_decided(self._times().sla_seconds)

    def escalate(self) -> None:
        """The SLA passed undecided: the wait is overdue (`overdue` says so to people)."""
        assert self.pending is not None
        assert self.wait is not None
        self.wait.escalated_at = workflow.now().isoformat()
        self.pending.escalated = True

    async def overdue(self) -> bool:
        """Publishes the escalation (memo, notice, metric, log) and waits on until expiry;
        False if the wait expired undecided."""
        assert self.pending is not None
        self._publish()
        await self._notify_overdue(self.pending)
        times = self._times()
        return await self._until_decided(times.expiry_seconds - times.sla_seconds)

    def close(self, decided: bool, original: Held) -> tuple[Allowed | Denied, float]:
        """Ends the wait: what it decided for the call, and the seconds it took."""
        assert self.pending is not None
        assert self.wait is not None
        if not decided:
            self.wait.status, self.wait.decided_at = "expired", workflow.now().isoformat()
        waited = (workflow.now() - self._opened).total_seconds()
        self.wait.waited_seconds = round(waited, 3)
        workflow.upsert_search_attributes([PENDING_APPROVAL_ATTRIBUTE.value_set(False)])
        final = final_decision(original, self.edited, self.pending, self.wait)
        self.pending = None
        self._publish()
        return final, waited

    def _times(self) -> TierApproval:
        assert self.pending is not None
        approvals = self.bundle.config.approvals
        return approvals.tier4 if self.pending.tier >= 4 else approvals.tier3

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

    async def _notify_overdue(self, pending: PendingAction) -> None:
        workflow.logger.warning(
            "approval overdue: step %s %s (tier %s) waiting since %s",
            pending.step,
            pending.tool,
            pending.tier,
            pending.waiting_since,
        )
        workflow.metric_meter().create_counter(
            "tiergate_approval_sla_escalations", "Approvals that passed their SLA"
        ).add(1, {"agent": self.bundle.config.name, "tool": pending.tool})
        notice = OverdueNotice(
            run_id=pending.run_id,
            agent=pending.agent,
            step=pending.step,
            tool=pending.tool,
            tier=pending.tier,
            waiting_since=pending.waiting_since,
            expires_at=pending.expires_at,
        )
        try:
            await workflow.execute_activity(
                NOTIFY_OVERDUE_ACTIVITY,
                notice,
                result_type=NotifyResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=service_retry(maximum_attempts=3),
            )
        except ActivityError as error:
            # A broken hook must not fail the run; the escalation is already recorded.
            workflow.logger.warning("approval overdue notification failed: %s", error)
