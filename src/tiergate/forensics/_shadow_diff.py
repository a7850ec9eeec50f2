"""Comparing a run with its shadow, step by step and over a batch (pure)."""

from __future__ import annotations

import json
from itertools import zip_longest

from pydantic import BaseModel, Field

from tiergate.core import RunSummary, StepRecord, ToolCallProposal, Verdict


class StepDiff(BaseModel):
    step: int
    original: str | None
    shadow: str | None
    original_decision: str | None
    shadow_decision: str | None
    same_proposal: bool
    same_decision: bool


class ShadowDiff(BaseModel):
    """How the candidate's run differs from the original, step by step."""

    original_id: str
    shadow_id: str
    candidate: dict[str, str]
    original_outcome: str
    shadow_outcome: str
    same_outcome: bool
    steps: list[StepDiff]
    changed_decisions: int
    new_denials: list[str]
    original_cost_usd: float
    shadow_cost_usd: float
    cost_delta_usd: float
    original_tokens: int
    shadow_tokens: int
    token_delta: int
    simulated_writes: list[str] = Field(default_factory=list)
    unrecorded_reads: list[str] = Field(default_factory=list)


def _proposal(record: StepRecord | None) -> str | None:
    if record is None:
        return None
    if record.invalid is not None:
        return f"invalid ({record.invalid.code})"
    proposal = record.proposal
    if isinstance(proposal, ToolCallProposal):
        arguments = record.decision.arguments if record.decision else proposal.arguments
        return f"{proposal.tool} {json.dumps(arguments, sort_keys=True)}"
    return proposal.kind if proposal else None


def _decision(record: StepRecord | None) -> str | None:
    if record is None:
        return None
    if record.decision is None:
        return record.proposal.kind if record.proposal else ("invalid" if record.invalid else None)
    d = record.decision
    if record.approval is not None:
        original = record.approval.original
        return f"{original.verdict.value} ({original.code}{', ' + ', '.join(original.policy_ids) if original.policy_ids else ''})"
    ids = ", ".join(d.policy_ids)
    return f"{d.verdict.value} ({d.code}{', ' + ids if ids else ''})"


def diff_runs(
    original: RunSummary,
    shadow: RunSummary,
    candidate: dict[str, str],
    simulated: list[str] | None = None,
    unrecorded: list[str] | None = None,
) -> ShadowDiff:
    """The step-by-step comparison of a run and its shadow (pure)."""
    steps = []
    new_denials = []
    for a, b in zip_longest(original.steps, shadow.steps):
        step = (a or b).step
        da, db = _decision(a), _decision(b)
        steps.append(
            StepDiff(
                step=step,
                original=_proposal(a),
                shadow=_proposal(b),
                original_decision=da,
                shadow_decision=db,
                same_proposal=_proposal(a) == _proposal(b),
                same_decision=da == db,
            )
        )
        denied_b = b is not None and b.decision is not None and b.decision.verdict == Verdict.DENY
        denied_a = a is not None and a.decision is not None and a.decision.verdict == Verdict.DENY
        if denied_b and not denied_a:
            new_denials.append(f"step {step}: {_proposal(b)} -> {db}")
    return ShadowDiff(
        original_id=original.workflow_id,
        shadow_id=shadow.workflow_id,
        candidate=candidate,
        original_outcome=original.outcome.value,
        shadow_outcome=shadow.outcome.value,
        same_outcome=original.outcome == shadow.outcome,
        steps=steps,
        # Steps both runs reached; steps only one reached show as "–" in the table.
        changed_decisions=sum(1 for s in steps if s.original and s.shadow and not s.same_decision),
        new_denials=new_denials,
        original_cost_usd=original.cost_usd,
        shadow_cost_usd=shadow.cost_usd,
        cost_delta_usd=round(shadow.cost_usd - original.cost_usd, 8),
        original_tokens=original.usage.total_tokens,
        shadow_tokens=shadow.usage.total_tokens,
        token_delta=shadow.usage.total_tokens - original.usage.total_tokens,
        simulated_writes=simulated or [],
        unrecorded_reads=unrecorded or [],
    )


class BatchSummary(BaseModel):
    runs: int
    same_outcome: int
    changed_outcome: int
    runs_with_changed_decisions: int
    new_denials: int
    cost_delta_usd: float
    original_cost_usd: float
    shadow_cost_usd: float


def summarise(diffs: list[ShadowDiff]) -> BatchSummary:
    return BatchSummary(
        runs=len(diffs),
        same_outcome=sum(1 for d in diffs if d.same_outcome),
        changed_outcome=sum(1 for d in diffs if not d.same_outcome),
        runs_with_changed_decisions=sum(1 for d in diffs if d.changed_decisions),
        new_denials=sum(len(d.new_denials) for d in diffs),
        cost_delta_usd=round(sum(d.cost_delta_usd for d in diffs), 8),
        original_cost_usd=round(sum(d.original_cost_usd for d in diffs), 8),
        shadow_cost_usd=round(sum(d.shadow_cost_usd for d in diffs), 8),
    )
