"""The operator report's figures, computed from runs: what happened, what it cost, did it comply.

Pure: it takes the runs as read from Temporal (`RunFacts`) and returns a `Report`, so every
figure can be checked against the run summaries it came from without a server.

Definitions (the README repeats them):
- A run is *finished* once its workflow closed. Success rate = completed / finished.
- Cost, tokens and tool calls per task come from each run's summary (provider-reported
  usage priced by the agent's table). "Per completed task" counts only completed runs.
- Latency is work time (approval waits excluded); elapsed adds the waits.
- Policy denials are gate decisions with verdict deny, keyed by matching policy id (or by
  the decision code when no policy matched, e.g. ``(unknown_tool)``). Blocked actions are
  every action or output that did not go through: policy denials, outputs withheld by
  output rules, and approvals denied or expired.
- Percentiles interpolate linearly between ranks (numpy's default).
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from tiergate.core import Outcome, PendingAction, RunSummary, StepRecord, Verdict

RunState = Literal["finished", "running"]
#: Outcomes of runs whose workflow failed, was terminated, cancelled or timed out.
CLOSED_WITHOUT_SUMMARY = "failed"


class RunFacts(BaseModel):
    """One run as the report reads it from Temporal (visibility plus its result)."""

    workflow_id: str
    agent: str
    state: RunState
    status: str
    started_at: datetime
    closed_at: datetime | None = None
    summary: RunSummary | None = None
    pending: PendingAction | None = None
    failure: str | None = None
    #: Why its result could not be read here (payloads encrypted with keys this reader
    #: lacks): such a run counts in ``runs`` and ``unreadable``, in no figure.
    unreadable: str | None = None

    @property
    def outcome(self) -> str | None:
        if self.state == "running":
            return None
        return self.summary.outcome.value if self.summary else CLOSED_WITHOUT_SUMMARY


class Distribution(BaseModel):
    """Summary statistics of one figure over a set of runs."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    total: float = 0.0


class PendingApproval(BaseModel):
    workflow_id: str
    agent: str
    step: int
    tool: str
    tier: int
    required: int
    approved_by: list[str] = Field(default_factory=list)
    waiting_since: str
    age_seconds: float
    escalated: bool


class Report(BaseModel):
    """The operator report for one window and, optionally, one agent."""

    since: datetime
    until: datetime
    agent: str | None = None
    runs: int = 0
    finished: int = 0
    running: int = 0
    unreadable: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    success_rate: float | None = None
    cost_usd_total: float = 0.0
    cost_per_completed_task: Distribution = Field(default_factory=Distribution)
    tokens_per_completed_task: Distribution = Field(default_factory=Distribution)
    tool_calls_per_task: Distribution = Field(default_factory=Distribution)
    latency_seconds: Distribution = Field(default_factory=Distribution)
    elapsed_seconds: Distribution = Field(default_factory=Distribution)
    approval_wait_seconds: Distribution = Field(default_factory=Distribution)
    policy_denials: dict[str, int] = Field(default_factory=dict)
    blocked_actions: dict[str, int] = Field(default_factory=dict)
    escalations: dict[str, int] = Field(default_factory=dict)
    budget_stops: dict[str, int] = Field(default_factory=dict)
    #: Runs ``budgets.adaptive`` stopped after ambiguous results (escalated, or out of a
    #: budget it shrank), and the budget shrinks it made.
    adaptive_stops: int = 0
    budget_shrinks: int = 0
    #: Per log-only policy (``@mode("log_only")``), the decisions and outputs it would have
    #: changed had it been enforced.
    log_only_flips: dict[str, int] = Field(default_factory=dict)
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    by_agent: dict[str, dict[str, int]] = Field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) of ``values``, interpolating linearly between ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def distribution(values: list[float]) -> Distribution:
    if not values:
        return Distribution()
    return Distribution(
        count=len(values),
        mean=sum(values) / len(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        total=sum(values),
    )


def _policy_keys(policy_ids: list[str], code: str) -> list[str]:
    return policy_ids or [f"({code})"]


def _step_safety(step: StepRecord, denials: Counter[str], blocked: Counter[str]) -> None:
    decision = step.decision
    wait = step.approval
    if wait is not None and wait.status in ("denied", "expired"):
        blocked[f"approval_{wait.status}"] += 1
    elif decision is not None and decision.verdict == Verdict.DENY:
        keys = _policy_keys(decision.policy_ids, decision.code)
        denials.update(keys)
        blocked.update(keys)
    for check in step.output_checks:
        if not check.allowed:
            blocked.update(_policy_keys(check.policy_ids, "output_blocked"))


def _would_flip(step: StepRecord, flips: Counter[str]) -> None:
    gated = step.approval.original if step.approval else step.decision
    if gated is not None and gated.would_flip is not None:
        flips.update(gated.would_flip.policy_ids or ["(log-only)"])
    for check in step.output_checks:
        flips.update(check.would_block)


def compute(
    facts: list[RunFacts], since: datetime, until: datetime, agent: str | None = None
) -> Report:
    """The report's figures over ``facts`` (already limited to the window and agent)."""
    readable = [f for f in facts if f.unreadable is None]
    finished = [f for f in readable if f.state == "finished"]
    summaries = [f.summary for f in finished if f.summary is not None]
    completed = [s for s in summaries if s.outcome == Outcome.COMPLETED]
    outcomes = Counter(f.outcome for f in finished if f.outcome)
    denials: Counter[str] = Counter()
    blocked: Counter[str] = Counter()
    escalations: Counter[str] = Counter()
    budget_stops: Counter[str] = Counter()
    flips: Counter[str] = Counter()
    waits: list[float] = []
    for summary in summaries:
        for step in summary.steps:
            _step_safety(step, denials, blocked)
            _would_flip(step, flips)
            if step.approval is not None:
                escalations["approval_requested"] += 1
                waits.append(step.approval.waited_seconds)
                if step.approval.escalated_at is not None:
                    escalations["sla_overdue"] += 1
        if summary.outcome == Outcome.ESCALATED:
            escalations["run_escalated"] += 1
        if summary.budget_stop is not None:
            budget_stops[summary.budget_stop.limit] += 1
    by_agent: dict[str, Counter[str]] = {}
    for fact in facts:
        by_agent.setdefault(fact.agent, Counter())[fact.outcome or "running"] += 1
    return Report(
        since=since,
        until=until,
        agent=agent,
        runs=len(facts),
        finished=len(finished),
        running=len(readable) - len(finished),
        unreadable=len(facts) - len(readable),
        outcomes=dict(sorted(outcomes.items())),
        success_rate=len(completed) / len(finished) if finished else None,
        cost_usd_total=round(sum(s.cost_usd for s in summaries), 8),
        cost_per_completed_task=distribution([s.cost_usd for s in completed]),
        tokens_per_completed_task=distribution([float(s.usage.total_tokens) for s in completed]),
        tool_calls_per_task=distribution([float(s.usage.tool_calls) for s in summaries]),
        latency_seconds=distribution([s.wall_time_seconds for s in summaries]),
        elapsed_seconds=distribution(
            [(f.closed_at - f.started_at).total_seconds() for f in finished if f.closed_at]
        ),
        approval_wait_seconds=distribution(waits),
        policy_denials=dict(denials.most_common()),
        blocked_actions=dict(blocked.most_common()),
        escalations=dict(sorted(escalations.items())),
        budget_stops=dict(budget_stops.most_common()),
        adaptive_stops=sum(s.adaptive_stop for s in summaries),
        budget_shrinks=sum(
            step.adjustment is not None and step.adjustment.kind == "shrink"
            for s in summaries
            for step in s.steps
        ),
        log_only_flips=dict(flips.most_common()),
        pending_approvals=_pending(facts, until),
        by_agent={name: dict(sorted(c.items())) for name, c in sorted(by_agent.items())},
    )


def _pending(facts: list[RunFacts], now: datetime) -> list[PendingApproval]:
    found = []
    for fact in facts:
        p = fact.pending
        if fact.state != "running" or p is None:
            continue
        since = datetime.fromisoformat(p.waiting_since) if p.waiting_since else fact.started_at
        found.append(
            PendingApproval(
                workflow_id=fact.workflow_id,
                agent=fact.agent,
                step=p.step,
                tool=p.tool,
                tier=p.tier,
                required=p.required_approvals,
                approved_by=p.approved_by,
                waiting_since=p.waiting_since,
                age_seconds=round(max((now - since).total_seconds(), 0.0), 3),
                escalated=p.escalated,
            )
        )
    return sorted(found, key=lambda p: -p.age_seconds)
