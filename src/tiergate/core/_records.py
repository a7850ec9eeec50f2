"""The run's records: steps, approvals, model calls, versions and the summary.

These shapes are what every later feature reads (approvals, timelines, replay, evals), so
they are plain pydantic models with defaults on every added field: a history recorded today
must still load tomorrow.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core._agent import AgentBundle
from tiergate.core._answers import ApprovalDecision, ApprovalRequest
from tiergate.core._decision import Decision, OutputCheck, Verdict
from tiergate.core._passkeys import PasskeyAssertion
from tiergate.core._payloads import Routing, TokenUsage, ToolResult, cut
from tiergate.core._proposal import InvalidProposal, Proposal, ToolCallProposal
from tiergate.core._session import RunCounts


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetStop(_Record):
    """Which limit stopped the run and by how much; ``shrunk`` when the limit was one that
    ``budgets.adaptive`` had shrunk."""

    limit: str
    limit_value: float
    used: float
    over_by: float
    message: str
    shrunk: bool = False


class BudgetAdjustment(_Record):
    """A change ``budgets.adaptive`` made to the run, and why (a step records it).

    Attributes:
        kind: ``shrink`` (the remaining budgets were cut) or ``escalate`` (the run stops).
        ambiguous: Ambiguous results so far, this one included.
        tool_calls_limit / model_calls_limit: The run's limits after a shrink.
    """

    kind: Literal["shrink", "escalate"]
    reason: str
    ambiguous: int = 0
    tool_calls_limit: int | None = None
    model_calls_limit: int | None = None


class PendingAction(_Record):
    """An action waiting for approval: exactly what would run if approved.

    Attributes:
        call_digest: What approvers sign; an edit replaces arguments and digest.
        first_run_id / nonce: What an answer must sign besides ``run_id`` and ``step``:
            the execution's first run id and this wait's nonce.
        required_approvals: 1 for tier 3, 2 distinct approvers for tier 4.
        approved_by: Approvers whose approval of this exact digest was verified so far.
        waiting_since / sla_at / expires_at: Workflow times (ISO 8601) of the wait.
        escalated: True once the SLA passed without a decision.
    """

    step: int
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    reason: str
    tier: int
    verdict: Verdict
    policy_ids: list[str]
    policy_version: str
    requester: str
    run_id: str = ""
    first_run_id: str = ""
    nonce: str = ""
    agent: str = ""
    required_approvals: int = 1
    approved_by: list[str] = Field(default_factory=list)
    waiting_since: str = ""
    sla_at: str = ""
    expires_at: str = ""
    escalated: bool = False


class ApprovalRecord(_Record):
    """A verified, attributable answer from an approver, with its evidence.

    Everything needed to re-verify it offline is here or in the pinned registry snapshot:
    the signed fields, the signature (or the passkey assertion) and the key id.
    """

    approver: str
    decision: str
    justification: str = ""
    edited_arguments: dict[str, Any] | None = None
    action_digest: str
    step: int
    at: str
    expires_at: str
    via: str
    signature: str
    key_id: str
    registry_version: str
    verified: bool
    verification: str
    approver_policy_ids: list[str] = Field(default_factory=list)
    run_id: str = ""
    first_run_id: str = ""
    nonce: str = ""
    passkey: PasskeyAssertion | None = None

    def signed(self) -> ApprovalRequest:
        """The signed answer this record was made from, field for field (its signature
        verifies again over it)."""
        return ApprovalRequest.model_validate(
            {
                "run_id": self.run_id,
                "first_run_id": self.first_run_id,
                "step": self.step,
                "nonce": self.nonce,
                "action_digest": self.action_digest,
                "decision": ApprovalDecision(self.decision),
                "approver": self.approver,
                "justification": self.justification,
                "edited_arguments": self.edited_arguments,
                "expires_at": self.expires_at,
                "via": self.via,
                "signature": self.signature,
                "passkey": self.passkey,
            }
        )


class Refusal(_Record):
    """An approval attempt that was refused, and why (the run did not change)."""

    approver: str
    code: str
    reason: str
    at: str


class ApprovalWait(_Record):
    """How a step's wait for approval went."""

    status: Literal["waiting", "approved", "denied", "expired"] = "waiting"
    original: Decision
    required: int
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    refusals: list[Refusal] = Field(default_factory=list)
    waiting_since: str = ""
    escalated_at: str | None = None
    decided_at: str | None = None
    waited_seconds: float = 0.0


class CallBatch(_Record):
    """Where a step's call was in a model answer that proposed several (`ToolCallsProposal`).

    Attributes:
        turn: The step whose model call proposed it (the answer's first call is that step).
        index: Its place in the answer, 0-based: results go back to the model in this order.
        size: How many calls the answer proposed; a run that stopped part-way ran fewer.
    """

    turn: int
    index: int
    size: int


class StepRecord(_Record):
    """One turn of the loop, recorded in history as it happens and in the summary.

    Attributes:
        step: 1-based step number.
        proposal / invalid: What the model proposed, or why its output was refused.
        model: The model id the provider reported.
        usage / cost_usd: Tokens and cost of this step's model call.
        decision: The gate's decision on a tool call.
        decided_with: The run's counters that decision saw (``context.session``'s
            denials, invalid proposals and seconds).
        idempotency_key: The key the tool call carried (derived from run and step).
        tool_result: The tool's answer (preview only; the full output is content-addressed).
        output_checks: Output rule evaluations on emitted content and tool results.
        observation: What was fed back to the model after this step.
        started_at: Workflow time the step began (ISO 8601).
        work_seconds: How long the step took, its approval wait excluded.
        ambiguous: Why the step's tool result was ambiguous (``budgets.adaptive``).
        adjustment: What ``budgets.adaptive`` did after this step.
        batch: Set when the step's call came in an answer with several; only the answer's
            first step carries the model call (usage, cost, model).
    """

    step: int
    proposal: Proposal | None = None
    invalid: InvalidProposal | None = None
    model: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    decision: Decision | None = None
    decided_with: RunCounts | None = None
    idempotency_key: str | None = None
    tool_result: ToolResult | None = None
    output_checks: list[OutputCheck] = Field(default_factory=list)
    approval: ApprovalWait | None = None
    review_sampled: bool = False
    observation: str | None = None
    started_at: str = ""
    work_seconds: float = 0.0
    model_drift: ModelDrift | None = None
    ambiguous: str | None = None
    adjustment: BudgetAdjustment | None = None
    batch: CallBatch | None = None


class ModelDrift(_Record):
    """A model call answered by something other than what the agent pins.

    Attributes:
        kind: ``unexpected_model`` (not an id the pin accepts), ``model_changed`` (another id
            than earlier in the run), ``unexpected_fingerprint``, ``fingerprint_changed``.
    """

    kind: Literal[
        "unexpected_model", "model_changed", "unexpected_fingerprint", "fingerprint_changed"
    ]
    tier: str
    requested: str
    reported: str
    fingerprint: str | None = None
    message: str


class ModelCall(_Record):
    """One model call's cost, from the provider's reported usage and the agent's price table.

    Attributes:
        purpose: ``route`` (the router tier's classification) or ``propose`` (a step).
        step: The step it proposed for; None for the router call.
        provider / requested_model / reported_model: What was asked for and what answered.
        attempt: Temporal's attempt number (retries are charged to the run).
        record_ref: The redacted prompt/response record in the content store
            (`tiergate.activities.read_exchanges` walks a run's records).
    """

    purpose: Literal["route", "propose"]
    step: int | None = None
    tier: str
    provider: str
    requested_model: str
    reported_model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    attempt: int = 1
    record_ref: str | None = None
    fingerprint: str | None = None
    drift: ModelDrift | None = None


class Outcome(StrEnum):
    COMPLETED = "completed"
    ESCALATED = "escalated"
    DENIED = "denied"
    BUDGET_EXHAUSTED = "budget_exhausted"
    FAILED = "failed"


class Stop(_Record):
    """Why a run ends: its outcome and reason, and the limit that stopped it, if one did.

    The core's rules return a Stop where the run must end; the workflow ends it. Nothing
    raises to stop a run, so every way a run ends is a value a test can look at.
    """

    outcome: Outcome
    reason: str
    budget_stop: BudgetStop | None = None
    #: Stopped by ``budgets.adaptive``: escalated, or out of a budget it shrank.
    adaptive: bool = False

    @classmethod
    def exhausted(cls, stop: BudgetStop | None) -> Stop | None:
        """The run's end for a limit that ran out (None: no limit did)."""
        if stop is None:
            return None
        return cls(
            outcome=Outcome.BUDGET_EXHAUSTED,
            reason=stop.message,
            budget_stop=stop,
            adaptive=stop.shrunk,
        )

    @classmethod
    def unknown_effect(cls, name: str, cause: str) -> Stop:
        """The run's end when a write that is never retried failed: its effect may have
        happened, so a person must look before anything acts again."""
        return cls(
            outcome=Outcome.ESCALATED,
            reason=f"{name} failed ({cause}); its backend has no idempotency keys, so it is "
            "not retried automatically. A person must check whether the effect happened "
            "before anything acts again",
        )


class Versions(_Record):
    """Everything that produced a run, so a bad action can be traced to its cause."""

    agent: str
    agent_version: str
    config_hash: str
    prompt_version: str
    policy_version: str
    tool_schemas_hash: str
    code_version: str
    requested_models: dict[str, str] = Field(default_factory=dict)
    reported_models: dict[str, list[str]] = Field(default_factory=dict)

    @classmethod
    def of(
        cls,
        bundle: AgentBundle,
        code_version: str,
        requested: dict[str, str],
        reported: dict[str, list[str]],
    ) -> Versions:
        """The versions of a run pinned to ``bundle``, with the models it asked and got."""
        config = bundle.config
        return cls(
            agent=config.name,
            agent_version=config.effective_version,
            config_hash=bundle.config_hash,
            prompt_version=config.prompts.system.version,
            policy_version=bundle.policy.version,
            tool_schemas_hash=bundle.tool_schemas_hash,
            code_version=code_version,
            requested_models=requested,
            reported_models=reported,
        )


class Usage(_Record):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    total_tokens: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    retries: int = 0
    denials: int = 0
    invalid_proposals: int = 0


class RunSummary(_Record):
    """The typed result of a run.

    ``wall_time_seconds`` is work time; ``approval_wait_seconds`` is time spent waiting for
    people, kept apart so a slow approver does not read as a slow agent.
    """

    workflow_id: str
    run_id: str
    agent: str
    outcome: Outcome
    reason: str
    route: str | None = None
    final_answer: str | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    model_calls: list[ModelCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    wall_time_seconds: float = 0.0
    approval_wait_seconds: float = 0.0
    versions: Versions | None = None
    budget_stop: BudgetStop | None = None
    #: The run was stopped by ``budgets.adaptive`` (escalated, or out of a shrunk budget).
    adaptive_stop: bool = False
    pending_action: PendingAction | None = None
    alerts: list[str] = Field(default_factory=list)
    routing: Routing | None = None
    #: Earlier segments of a long run (continue-as-new), oldest first. ``steps`` and
    #: ``model_calls`` are this segment's; usage, cost and times are the whole run's.
    previous_run_ids: list[str] = Field(default_factory=list)


class RunStatus(_Record):
    """Live state answered by the `status` query."""

    state: str
    step: int
    outcome: Outcome | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    pending_action: PendingAction | None = None


def tool_observation(tool: str, result: ToolResult) -> str:
    """What a step observed from a tool whose output passed its checks. One function, because
    an ok result is not step-marked: the timeline derives the observation from the result
    event, and must derive the same text the run fed its model."""
    return f"{tool} result ({result.output_size} bytes)"


class StepMark(_Record):
    """A compact step record, upserted into the memo so each change is a history event.

    Memo entries are small by Temporal's limits (warned from 2 KB), so this keeps the
    decision and its evidence; the full StepRecord is in the summary and the activity
    payloads. A step is marked when decided (before its tool is scheduled) and when done.
    """

    step: int
    kind: str | None = None
    tool: str | None = None
    verdict: Verdict | None = None
    code: str | None = None
    reason: str | None = None
    policy_ids: list[str] = Field(default_factory=list)
    tier: int | None = None
    call_digest: str | None = None
    policy_version: str | None = None
    decided_with: RunCounts | None = None
    idempotency_key: str | None = None
    model: str = ""
    tokens: int = 0
    cost_usd: float = 0.0
    tool_ok: bool | None = None
    approval_status: str | None = None
    approved_by: list[str] = Field(default_factory=list)
    observation: str | None = None
    model_drift: str | None = None
    ambiguous: str | None = None
    adjustment: str | None = None
    #: The step whose model answer proposed this one, when it is another (a batch).
    turn: int | None = None

    @classmethod
    def of(cls, record: StepRecord) -> StepMark:
        decision = record.decision
        kind = record.proposal.kind if record.proposal else ("invalid" if record.invalid else None)
        tool = record.proposal.tool if isinstance(record.proposal, ToolCallProposal) else None
        return cls(
            step=record.step,
            kind=kind,
            tool=tool,
            verdict=decision.verdict if decision else None,
            code=decision.code if decision else (record.invalid.code if record.invalid else None),
            reason=cut(decision.reason if decision else getattr(record.proposal, "reason", None)),
            policy_ids=decision.policy_ids if decision else [],
            tier=decision.tier if decision else None,
            call_digest=decision.call_digest if decision else None,
            policy_version=decision.policy_version if decision else None,
            decided_with=record.decided_with,
            idempotency_key=record.idempotency_key,
            model=record.model,
            tokens=record.usage.total,
            cost_usd=record.cost_usd,
            tool_ok=record.tool_result.ok if record.tool_result else None,
            approval_status=record.approval.status if record.approval else None,
            approved_by=decision.approved_by if decision else [],
            observation=cut(record.observation),
            model_drift=record.model_drift.kind if record.model_drift else None,
            ambiguous=cut(record.ambiguous),
            adjustment=cut(record.adjustment.reason) if record.adjustment else None,
            turn=record.batch.turn if record.batch and record.batch.turn != record.step else None,
        )


class ApprovalReceipt(_Record):
    """What the `approval` update answers: accepted or refused, and where the step stands."""

    accepted: bool
    status: str
    code: str = ""
    reason: str = ""
    approved_by: list[str] = Field(default_factory=list)
    required: int = 0
