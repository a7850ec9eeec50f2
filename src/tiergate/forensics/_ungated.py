"""Invariant 1 checked on a history: no tool call was scheduled without its allow."""

from __future__ import annotations

from temporalio.client import WorkflowHistory

from tiergate.core import ToolCallInput, call_digest
from tiergate.forensics._reader import RunView, read_history


def ungated_tool_calls(history: WorkflowHistory | RunView) -> list[str]:
    """Every scheduled tool call must carry an allow for its own digest under the run's pinned
    policy version and, at tier 3/4, the approvals that tier needs. The allow rides in the
    tool's scheduled event (its ``ToolCallInput``), so the record and the action it allows
    are one event. Returns each violation described; none for a clean run."""
    view = history if isinstance(history, RunView) else read_history(history)
    pinned = view.versions.policy_version if view.versions else None
    return [
        problem
        for activity in view.tool_activities
        if (
            problem := _ungated(
                activity.event_id, ToolCallInput.model_validate(activity.input), pinned
            )
        )
    ]


def _ungated(event_id: int, call: ToolCallInput, pinned_policy: str | None) -> str | None:
    where = f"event {event_id}: {call.tool}"
    if call_digest(call.tool, call.arguments) != call.call_digest:
        return f"{where} arguments differ from the digest"
    if call.policy_version != pinned_policy:
        return (
            f"{where} step {call.step} ran under policy {call.policy_version!r}, "
            f"not the run's pinned {pinned_policy!r}"
        )
    if call.code not in ("allowed", "approved"):
        return f"{where} step {call.step} ran without an allow"
    needed = 2 if call.tier >= 4 else 1 if call.tier >= 3 else 0
    if len(set(call.approved_by)) < needed:
        return f"{where} (tier {call.tier}) ran with {len(set(call.approved_by))} approvals"
    return None
