"""Post-hoc review of reversible actions: which allowed tier-2 calls a person looks at later."""

from __future__ import annotations

import hashlib

from tiergate.core._decision import Allowed
from tiergate.core._payloads import ReviewItem, ToolResult
from tiergate.core._records import StepRecord


def sampled(key: str, fraction: float) -> bool:
    """Whether the step with idempotency ``key`` is in the sample. Deterministic: the same
    step is always in or out, on replay and in audits."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction


def review_item(
    record: StepRecord,
    decision: Allowed,
    result: ToolResult,
    run_id: str,
    agent: str,
    fraction: float,
) -> ReviewItem | None:
    """The review queue's item for a successful tier-2 call in the sample, else None."""
    if decision.tier != 2 or not result.ok or not sampled(record.idempotency_key or "", fraction):
        return None
    return ReviewItem(
        run_id=run_id,
        agent=agent,
        step=record.step,
        tool=decision.tool,
        arguments=decision.arguments,
        call_digest=decision.call_digest,
        policy_ids=decision.policy_ids,
        policy_version=decision.policy_version,
        reason=getattr(record.proposal, "reason", ""),
        result_preview=result.preview,
    )
