"""The run's domain records: proposal, decision, step record, run summary.

These shapes are what every later feature reads (approvals, timelines, replay, evals), so
they are plain pydantic models with defaults on every added field: a history recorded today
must still load tomorrow.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core._payloads import Routing, TokenUsage, ToolResult


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCallProposal(_Record):
    """The model asks to call a tool. Nothing runs until the gate allows this exact call."""

    kind: Literal["tool_call"] = "tool_call"
    tool: Annotated[str, Field(min_length=1, max_length=200)]
    arguments: dict[str, Any] = Field(default_factory=dict)
    reason: Annotated[str, Field(max_length=2000)] = ""


class FinalAnswerProposal(_Record):
    """The model is done; the answer is checked by output rules before it leaves."""

    kind: Literal["final_answer"] = "final_answer"
    answer: Annotated[str, Field(max_length=8000)]
    reason: Annotated[str, Field(max_length=2000)] = ""


class EscalateProposal(_Record):
    """The model hands the task to a human."""

    kind: Literal["escalate"] = "escalate"
    reason: Annotated[str, Field(max_length=2000)] = ""


Proposal = Annotated[
    ToolCallProposal | FinalAnswerProposal | EscalateProposal, Field(discriminator="kind")
]


class InvalidProposal(_Record):
    """Model output that is not a valid proposal. Recorded; nothing runs on it."""

    code: Literal["not_json", "schema", "too_large", "multiple_tool_calls"]
    message: str
    excerpt: str = ""


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"
    NEEDS_DUAL_APPROVAL = "needs_dual_approval"


class _Decision(_Record):
    """What every decision says: its cause, and the evidence it was reached on.

    Attributes:
        code: Machine-readable cause, e.g. ``allowed``, ``approved``, ``policy_forbid``,
            ``no_permit``, ``unknown_tool``, ``not_in_allowlist``, ``invalid_arguments``,
            ``policy_error``, ``approval_required``, ``output_blocked``, ``tool_disabled``.
        tool: The tool named by the proposal.
        registered_tier: The tool's tier floor. ``tier``: after policy annotations.
        policy_ids: ``@id`` of every policy that matched (permits on allow, forbids on deny).
        tier_policy_ids: The policies whose ``@approval`` raised the tier.
        policy_version: The pinned policy set's content hash.
        alerts: Alert names raised by matching ``@alert`` policies.
        approved_by: The approvers whose verified approvals of exactly this call released it.
    """

    code: str
    reason: str
    tool: str | None = None
    registered_tier: int | None = None
    tier: int | None = None
    policy_ids: list[str] = Field(default_factory=list)
    tier_policy_ids: list[str] = Field(default_factory=list)
    policy_version: str = ""
    alerts: list[str] = Field(default_factory=list)
    approved_by: list[str] = Field(default_factory=list)


class Allowed(_Decision):
    """The call may run now: exactly these canonical arguments, under this policy version.

    Attributes:
        arguments: The canonical (validated, normalized) arguments.
        call_digest: sha256 of tool + canonical arguments: what the allow is for.
    """

    verdict: Literal[Verdict.ALLOW] = Verdict.ALLOW
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    registered_tier: int
    tier: int


class Held(_Decision):
    """The call waits for people: one approver at tier 3, two distinct ones at tier 4."""

    verdict: Literal[Verdict.NEEDS_APPROVAL, Verdict.NEEDS_DUAL_APPROVAL]
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    registered_tier: int
    tier: int

    @property
    def required_approvals(self) -> int:
        return 2 if self.verdict == Verdict.NEEDS_DUAL_APPROVAL else 1


class Denied(_Decision):
    """The call does not run. Its arguments and digest are set when they were valid."""

    verdict: Literal[Verdict.DENY] = Verdict.DENY
    arguments: dict[str, Any] | None = None
    call_digest: str | None = None


#: The gate's verdict on one proposed tool call: one of its three cases.
Decision = Annotated[Allowed | Held | Denied, Field(discriminator="verdict")]


def denial(
    decision: Allowed | Held | Denied,
    code: str,
    reason: str,
    policy_ids: list[str] | None = None,
) -> Denied:
    """``decision`` turned into a denial for ``code``, keeping the call's evidence."""
    kept = decision.model_dump(exclude={"verdict", "code", "reason", "approved_by"})
    if policy_ids is not None:
        kept["policy_ids"] = policy_ids
    return Denied(code=code, reason=reason, **kept)


class OutputCheck(_Record):
    """An output rule evaluation on content leaving the system."""

    resource: str
    field: str
    allowed: bool
    contains_pii: bool
    pii_kinds: list[str] = Field(default_factory=list)
    policy_ids: list[str] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)


class BudgetStop(_Record):
    """Which limit stopped the run and by how much."""

    limit: str
    limit_value: float
    used: float
    over_by: float
    message: str


class PendingAction(_Record):
    """An action waiting for approval: exactly what would run if approved.

    Attributes:
        call_digest: What approvers sign; an edit replaces arguments and digest.
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
    the signed fields, the signature and the key id.
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


class StepRecord(_Record):
    """One turn of the loop, recorded in history as it happens and in the summary.

    Attributes:
        step: 1-based step number.
        proposal / invalid: What the model proposed, or why its output was refused.
        model: The model id the provider reported.
        usage / cost_usd: Tokens and cost of this step's model call.
        decision: The gate's decision on a tool call.
        idempotency_key: The key the tool call carried (derived from run and step).
        tool_result: The tool's answer (preview only; the full output is content-addressed).
        output_checks: Output rule evaluations on emitted content and tool results.
        observation: What was fed back to the model after this step.
        started_at: Workflow time the step began (ISO 8601).
        work_seconds: How long the step took, its approval wait excluded.
    """

    step: int
    proposal: Proposal | None = None
    invalid: InvalidProposal | None = None
    model: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    cost_usd: float = 0.0
    decision: Decision | None = None
    idempotency_key: str | None = None
    tool_result: ToolResult | None = None
    output_checks: list[OutputCheck] = Field(default_factory=list)
    approval: ApprovalWait | None = None
    review_sampled: bool = False
    observation: str | None = None
    started_at: str = ""
    work_seconds: float = 0.0
    model_drift: ModelDrift | None = None


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


class Usage(_Record):
    input_tokens: int = 0
    output_tokens: int = 0
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


def cut(text: str | None, limit: int = 300) -> str | None:
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def tool_observation(tool: str, result: ToolResult) -> str:
    """What a step observed from a tool whose output passed its checks. One function, because
    the timeline of a running run derives it from the result event when the run (with lean
    step marks) did not mark it."""
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
    idempotency_key: str | None = None
    model: str = ""
    tokens: int = 0
    cost_usd: float = 0.0
    tool_ok: bool | None = None
    approval_status: str | None = None
    approved_by: list[str] = Field(default_factory=list)
    observation: str | None = None
    model_drift: str | None = None

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
            idempotency_key=record.idempotency_key,
            model=record.model,
            tokens=record.usage.total,
            cost_usd=record.cost_usd,
            tool_ok=record.tool_result.ok if record.tool_result else None,
            approval_status=record.approval.status if record.approval else None,
            approved_by=decision.approved_by if decision else [],
            observation=cut(record.observation),
            model_drift=record.model_drift.kind if record.model_drift else None,
        )


class ApprovalReceipt(_Record):
    """What the `approval` update answers: accepted or refused, and where the step stands."""

    accepted: bool
    status: str
    code: str = ""
    reason: str = ""
    approved_by: list[str] = Field(default_factory=list)
    required: int = 0
