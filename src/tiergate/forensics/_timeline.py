"""The incident view of one run, built from its Temporal history and nothing else.

A finished run's history ends with its `RunSummary`, which holds every step record; a run
still in progress (or one that failed) is rebuilt from the events: the step marks the
workflow upserted, the model activities' responses, the tool activities' inputs (each the
record of its allow) and results, and the approval updates. Either way, no worker, store or
agent config is consulted, so a history exported from production reads the same on a
laptop. Inputs and outputs shown pass the redaction layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import WorkflowHistory

from tiergate.core import (
    LOAD_AGENT_ACTIVITY,
    MAX_RAW_OUTPUT_CHARS,
    MAX_TOOL_CALLS_PER_ANSWER,
    PROPOSE_ACTIVITY,
    TOOL_ACTIVITY_PREFIX,
    InvalidProposal,
    ModelResponse,
    Price,
    Proposal,
    ProposeInput,
    StepMark,
    StepRecord,
    ToolCallInput,
    ToolCallProposal,
    ToolResult,
    Versions,
    answer_cost,
    by_step,
    parse_proposal,
    tool_observation,
)
from tiergate.forensics._reader import ActivityEvent, RunView, read_history
from tiergate.sensitive import Redactor


class TimelineApproval(BaseModel):
    approver: str
    decision: str
    at: str
    via: str = ""
    verified: bool | None = None
    verification: str = ""
    key_id: str = ""
    justification: str = ""


class TimelineStep(BaseModel):
    """One step as an incident responder reads it."""

    step: int
    started_at: str | None = None
    latency_seconds: float | None = None
    kind: str | None = None
    tool: str | None = None
    proposal: dict[str, Any] | None = None
    reason: str | None = None
    verdict: str | None = None
    code: str | None = None
    decision_reason: str | None = None
    policy_ids: list[str] = Field(default_factory=list)
    policy_version: str | None = None
    tier: int | None = None
    approval_status: str | None = None
    approvals: list[TimelineApproval] = Field(default_factory=list)
    refusals: list[str] = Field(default_factory=list)
    tool_input: dict[str, Any] | None = None
    tool_ok: bool | None = None
    tool_output: str | None = None
    idempotency_key: str | None = None
    observation: str | None = None
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    flags: list[str] = Field(default_factory=list)
    #: ``budgets.adaptive``: why the step's result was ambiguous, what that did to the run.
    ambiguous: str | None = None
    adjustment: str | None = None
    #: What log-only policies would have made of the call (``Decision.would_flip``).
    would_flip: str | None = None
    #: For a later call of an answer with several: the step whose model call proposed it.
    turn: int | None = None


class Timeline(BaseModel):
    """A run's forensic timeline: who did what, under which versions, at what cost."""

    workflow_id: str
    run_id: str = ""
    status: str
    agent: str | None = None
    requester: str | None = None
    input: Any = None
    outcome: str | None = None
    reason: str | None = None
    failure: str | None = None
    started_at: str | None = None
    closed_at: str | None = None
    versions: Versions | None = None
    steps: list[TimelineStep] = Field(default_factory=list)
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    tool_calls: int = 0
    wall_time_seconds: float | None = None
    approval_wait_seconds: float | None = None
    alerts: list[str] = Field(default_factory=list)
    complete: bool = Field(
        default=False, description="True when built from the run's summary (the run closed)."
    )
    segments: list[str] = Field(
        default_factory=list,
        description="Run ids of a long run's segments (continue-as-new), oldest first.",
    )


class _Events:
    """The activity and update events of a history, indexed by step."""

    def __init__(self, view: RunView) -> None:
        self.first: dict[int, datetime] = {}
        self.last: dict[int, datetime] = {}
        self.responses: dict[int, ModelResponse] = {}
        self.max_calls = MAX_TOOL_CALLS_PER_ANSWER  # the pinned agent's, once it is read
        self.tool_inputs: dict[int, ToolCallInput] = {}
        self.requested: dict[int, str] = {}
        self.pricing: dict[str, Price] = {}
        self.tool_results: dict[int, ToolResult] = {}
        self.approvals: dict[int, list[TimelineApproval]] = {}
        if isinstance(view.carry, dict):
            self._priced(view.carry.get("bundle"))  # a later segment: its carried bundle
        for activity in view.activities:
            self._activity(activity)
        for update in view.approvals:
            if isinstance(update.argument, dict):
                self._approval(update.argument, update.accepted_at, update.outcome)

    def _activity(self, activity: ActivityEvent) -> None:
        if activity.name == LOAD_AGENT_ACTIVITY:
            self._priced(activity.result)
            return
        if activity.name == PROPOSE_ACTIVITY and activity.input is not None:
            step = ProposeInput.model_validate(activity.input).step
            self.requested[step] = ProposeInput.model_validate(activity.input).model.model
            if activity.result is not None:
                self.responses[step] = ModelResponse.model_validate(activity.result)
        elif activity.name.startswith(TOOL_ACTIVITY_PREFIX) and activity.input is not None:
            call = ToolCallInput.model_validate(activity.input)
            step = call.step
            self.tool_inputs[step] = call
            if activity.result is not None:
                self.tool_results[step] = ToolResult.model_validate(activity.result)
        else:
            return
        self.first.setdefault(step, activity.scheduled_at)
        self.last[step] = activity.completed_at or activity.scheduled_at

    def _priced(self, bundle: Any) -> None:
        """The pinned agent's price table, so a step's cost is priced as the run priced it."""
        if isinstance(bundle, dict) and isinstance(config := bundle.get("config"), dict):
            table = config.get("pricing") or {}
            self.pricing = {model: Price.model_validate(p) for model, p in table.items()}
            if isinstance(tools := config.get("tools"), dict):
                self.max_calls = int(tools.get("max_parallel_calls", self.max_calls))

    def proposals(self) -> dict[int, Proposal | InvalidProposal]:
        """What each step proposed, as its model call's answer says (several calls in one
        answer stand for that step and the ones after it)."""
        out: dict[int, Proposal | InvalidProposal] = {}
        for step, response in self.responses.items():
            parsed = parse_proposal(
                response.raw,
                response.raw_size,
                MAX_RAW_OUTPUT_CHARS,
                response.raw_ref,
                max_calls=self.max_calls,
            )
            out.update(by_step(step, parsed))
        return out

    def cost(self, step: int) -> float:
        response, requested = self.responses.get(step), self.requested.get(step)
        if response is None or requested is None:
            return 0.0
        if requested not in self.pricing and response.reported_model not in self.pricing:
            return 0.0
        return answer_cost(self.pricing, requested, response.reported_model, response.usage)

    def _approval(self, answer: dict[str, Any], at: datetime, outcome: Any) -> None:
        receipt = outcome if isinstance(outcome, dict) else {}
        accepted = bool(receipt.get("accepted"))
        self.approvals.setdefault(int(answer.get("step", 0)), []).append(
            TimelineApproval(
                approver=str(answer.get("approver", "")),
                decision=str(answer.get("decision", "")),
                at=at.isoformat(),
                via=str(answer.get("via", "")),
                verified=accepted,
                verification="accepted by the run (signature and approver policy checked)"
                if accepted
                else f"refused: {receipt.get('code', '')} {receipt.get('reason', '')}".strip(),
                justification=str(answer.get("justification", "")),
            )
        )


def build_timeline(
    history: WorkflowHistory,
    redactor: Redactor | None = None,
    earlier: Sequence[WorkflowHistory] = (),
) -> Timeline:
    """The timeline of ``history`` (see the module docstring for where each field comes from).

    ``earlier``: the segments a long run continued as new from, oldest first
    (`fetch_run_chain`). Their steps come first, so the run reads as one; a closed run's
    totals come from its summary, which the carried ledger makes whole-run figures.
    """
    redact = redactor or Redactor()
    timeline = _segment(history, redact)
    if not earlier:
        return timeline
    parts = [_segment(h, redact) for h in earlier]
    first = parts[0]
    timeline.segments = [p.run_id for p in parts] + [timeline.run_id]
    timeline.steps = [step for part in parts for step in part.steps] + timeline.steps
    timeline.started_at, timeline.requester = first.started_at, first.requester
    timeline.input, timeline.versions = first.input, timeline.versions or first.versions
    timeline.agent = timeline.agent or first.agent
    if not timeline.complete:
        timeline.cost_usd = round(sum(s.cost_usd for s in timeline.steps), 8)
        timeline.input_tokens = sum(s.input_tokens for s in timeline.steps)
        timeline.output_tokens = sum(s.output_tokens for s in timeline.steps)
        timeline.tool_calls = sum(p.tool_calls for p in parts) + timeline.tool_calls
        timeline.alerts = sorted({a for p in [*parts, timeline] for a in p.alerts})
    return timeline


def _segment(history: WorkflowHistory, redact: Redactor) -> Timeline:
    view = read_history(history)
    events = _Events(view)
    raw_input = view.input if isinstance(view.input, dict) else {}
    timeline = Timeline(
        workflow_id=view.workflow_id,
        run_id=view.run_id,
        status=view.status,
        requester=raw_input.get("requester"),
        input=redact.value(raw_input.get("input")),
        failure=view.failure,
        versions=view.versions,
        agent=view.versions.agent if view.versions else raw_input.get("agent"),
        started_at=view.started_at.isoformat() if view.started_at else None,
        closed_at=view.closed_at.isoformat() if view.closed_at else None,
    )
    summary = view.summary
    if summary is not None:
        timeline.complete = True
        timeline.outcome, timeline.reason = summary.outcome.value, summary.reason
        timeline.agent, timeline.alerts = summary.agent, summary.alerts
        timeline.versions = summary.versions or timeline.versions
        timeline.steps = [_from_record(r, events, redact) for r in summary.steps]
        timeline.cost_usd = summary.cost_usd
        timeline.input_tokens = summary.usage.input_tokens
        timeline.output_tokens = summary.usage.output_tokens
        timeline.tool_calls = summary.usage.tool_calls
        timeline.wall_time_seconds = summary.wall_time_seconds
        timeline.approval_wait_seconds = summary.approval_wait_seconds
        return timeline
    steps = sorted(set(view.marks) | set(events.responses) | set(events.first))
    proposals = events.proposals()
    timeline.steps = [
        _from_events(s, view.marks.get(s), events, proposals.get(s), redact) for s in steps
    ]
    timeline.cost_usd = round(sum(s.cost_usd for s in timeline.steps), 8)
    timeline.input_tokens = sum(s.input_tokens for s in timeline.steps)
    timeline.output_tokens = sum(s.output_tokens for s in timeline.steps)
    timeline.tool_calls = len(events.tool_results)
    return timeline


def _latency(step: int, events: _Events) -> float | None:
    if step in events.first and step in events.last:
        return round((events.last[step] - events.first[step]).total_seconds(), 3)
    return None


def _from_record(record: StepRecord, events: _Events, redact: Redactor) -> TimelineStep:
    decision, proposal = record.decision, record.proposal
    out = TimelineStep(
        step=record.step,
        started_at=record.started_at or None,
        latency_seconds=record.work_seconds or _latency(record.step, events),
        kind=proposal.kind if proposal else ("invalid" if record.invalid else None),
        tool=proposal.tool if isinstance(proposal, ToolCallProposal) else None,
        proposal=redact.value(proposal.model_dump(mode="json")) if proposal else None,
        reason=redact.text(getattr(proposal, "reason", "") or "") or None,
        observation=redact.text(record.observation) if record.observation else None,
        idempotency_key=record.idempotency_key,
        model=record.model,
        input_tokens=record.usage.input_tokens,
        output_tokens=record.usage.output_tokens,
        cost_usd=record.cost_usd,
        turn=record.batch.turn if record.batch and record.batch.turn != record.step else None,
    )
    if record.invalid is not None:
        out.code = record.invalid.code
        out.decision_reason = redact.text(record.invalid.message)
    if decision is not None:
        out.verdict, out.code = decision.verdict.value, decision.code
        out.decision_reason = redact.text(decision.reason)
        out.policy_ids, out.policy_version = decision.policy_ids, decision.policy_version
        out.tier = decision.tier
        if decision.arguments is not None and record.tool_result is not None:
            out.tool_input = redact.value(decision.arguments)
    if record.tool_result is not None:
        out.tool_ok = record.tool_result.ok
        result = record.tool_result
        out.tool_output = redact.text(result.preview if result.ok else (result.error or ""))
    if record.approval is not None:
        wait = record.approval
        out.approval_status = wait.status
        out.approvals = [
            TimelineApproval(
                approver=a.approver,
                decision=a.decision,
                at=a.at,
                via=a.via,
                verified=a.verified,
                verification=a.verification,
                key_id=a.key_id,
                justification=redact.text(a.justification),
            )
            for a in wait.approvals
        ]
        out.refusals = [f"{r.approver}: {r.code} ({r.reason})" for r in wait.refusals]
    out.flags = [
        f"output_blocked:{','.join(c.policy_ids)}" for c in record.output_checks if not c.allowed
    ]
    out.ambiguous = redact.text(record.ambiguous) if record.ambiguous else None
    out.adjustment = redact.text(record.adjustment.reason) if record.adjustment else None
    gated = record.approval.original if record.approval else decision
    if gated is not None and (flipped := gated.would_flip) is not None:
        out.would_flip = f"{flipped.after} by {', '.join(flipped.policy_ids)} (log-only)"
    return out


def _from_events(
    step: int,
    mark: StepMark | None,
    events: _Events,
    proposal: Proposal | InvalidProposal | None,
    redact: Redactor,
) -> TimelineStep:
    out = TimelineStep(
        step=step,
        started_at=events.first[step].isoformat() if step in events.first else None,
        latency_seconds=_latency(step, events),
    )
    response = events.responses.get(step)
    if response is not None:
        out.cost_usd = events.cost(step)
        out.model = response.reported_model
        out.input_tokens = response.usage.input_tokens
        out.output_tokens = response.usage.output_tokens
    if proposal is not None:
        if isinstance(proposal, InvalidProposal):
            out.kind, out.code = "invalid", proposal.code
        else:
            out.kind = proposal.kind
            out.proposal = redact.value(proposal.model_dump(mode="json"))
            out.reason = redact.text(proposal.reason) or None
            out.tool = proposal.tool if isinstance(proposal, ToolCallProposal) else None
    if mark is not None:
        out.verdict = mark.verdict.value if mark.verdict else None
        out.code = mark.code or out.code
        out.decision_reason = redact.text(mark.reason) if mark.reason else None
        out.policy_ids, out.policy_version, out.tier = (
            mark.policy_ids,
            mark.policy_version,
            mark.tier,
        )
        out.cost_usd, out.approval_status = mark.cost_usd, mark.approval_status
        out.observation = redact.text(mark.observation) if mark.observation else None
        out.idempotency_key = mark.idempotency_key
        out.ambiguous = redact.text(mark.ambiguous) if mark.ambiguous else None
        out.turn = mark.turn
        out.adjustment = redact.text(mark.adjustment) if mark.adjustment else None
    if (call := events.tool_inputs.get(step)) is not None:
        out.tool_input = redact.value(call.arguments)
        if call.code:
            # The scheduled call is its allow's record, and newer than any mark.
            out.verdict, out.code, out.tier = "allow", call.code, call.tier
            out.policy_ids, out.policy_version = call.policy_ids, call.policy_version
            out.decision_reason = redact.text(call.reason) if call.reason else None
            out.idempotency_key = call.idempotency_key
            if call.approved_by:
                out.approval_status = "approved"
    if (result := events.tool_results.get(step)) is not None:
        out.tool_ok = result.ok
        out.tool_output = redact.text(result.preview if result.ok else (result.error or ""))
        if out.observation is None and result.ok and out.tool:
            # An ok result is not marked: the result event holds it.
            out.observation = tool_observation(out.tool, result)
    out.approvals = events.approvals.get(step, [])
    return out
