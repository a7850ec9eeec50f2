"""Read a run back from its Temporal history alone: versions, step marks, summary.

Pure over a `WorkflowHistory`, so it works the same on a live server's history and on an
exported file, with no access to the worker that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter

from tiergate.digest import call_digest
from tiergate.shared import RECORD_FORMAT_FIELD, ToolCallInput, tool_activity_name
from tiergate.workflows import RUN_MEMO, STEP_MEMO, RunSummary, StepMark, Versions


def decode(payload: Payload) -> Any:
    """A payload of a tiergate history as plain JSON values."""
    return pydantic_data_converter.payload_converter.from_payload(payload)


@dataclass
class RunView:
    """What a history says about one run."""

    workflow_id: str
    run_id: str = ""
    status: str = "running"
    input: Any = None
    versions: Versions | None = None
    marks: dict[int, StepMark] = field(default_factory=dict)
    summary: RunSummary | None = None
    failure: str | None = None
    tool_calls: list[ToolCallInput] = field(default_factory=list)


def read_history(history: WorkflowHistory) -> RunView:
    view = RunView(workflow_id=history.workflow_id)
    for event in history.events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            view.run_id = attrs.original_execution_run_id
            view.input = decode(attrs.input.payloads[0]) if attrs.input.payloads else None
        elif kind == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            if STEP_MEMO in fields:
                mark = StepMark.model_validate(decode(fields[STEP_MEMO]))
                view.marks[mark.step] = mark
            if RUN_MEMO in fields and (versions := decode(fields[RUN_MEMO]).get("versions")):
                view.versions = Versions.model_validate(versions)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs_s = event.activity_task_scheduled_event_attributes
            if attrs_s.activity_type.name.startswith(tool_activity_name("")):
                call = ToolCallInput.model_validate(decode(attrs_s.input.payloads[0]))
                view.tool_calls.append(call)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            result = event.workflow_execution_completed_event_attributes.result
            view.summary = RunSummary.model_validate(decode(result.payloads[0]))
            view.status = "completed"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            view.status = "continued_as_new"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
            view.failure = event.workflow_execution_failed_event_attributes.failure.message
            view.status = "failed"
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        ):
            view.status = (
                EventType.Name(kind).removeprefix("EVENT_TYPE_WORKFLOW_EXECUTION_").lower()
            )
    return view


def ungated_tool_calls(history: WorkflowHistory) -> list[str]:
    """Invariant 1 checked on a history: every scheduled tool call has a recorded allow for
    the same digest under the run's policy version and, at tier 3/4, the approvals that tier
    needs. Returns a description of each violation.

    Where the allow is recorded depends on the run's record format (``RECORD_FORMAT_FIELD``):
    up to format 2, a step mark before the call; from format 3, the scheduled event itself,
    whose policy version must then be the one the run pinned (its versions memo).
    """
    allowed: dict[tuple[str, str], StepMark | ToolCallInput] = {}
    problems = []
    in_call = False
    pinned_policy: str | None = None
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            first = decode(payloads[0]) if payloads else None
            in_call = isinstance(first, dict) and RECORD_FORMAT_FIELD in first
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
            if RUN_MEMO in fields and (versions := decode(fields[RUN_MEMO]).get("versions")):
                pinned_policy = Versions.model_validate(versions).policy_version
            if STEP_MEMO in fields:
                mark = StepMark.model_validate(decode(fields[STEP_MEMO]))
                if mark.verdict == "allow" and mark.call_digest and mark.policy_version:
                    allowed[(mark.call_digest, mark.policy_version)] = mark
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name.startswith(tool_activity_name("")):
                call = ToolCallInput.model_validate(decode(attrs.input.payloads[0]))
                if problem := _ungated(event.event_id, call, allowed, in_call, pinned_policy):
                    problems.append(problem)
    return problems


def _ungated(
    event_id: int,
    call: ToolCallInput,
    allowed: dict[tuple[str, str], StepMark | ToolCallInput],
    in_call: bool,
    pinned_policy: str | None,
) -> str | None:
    where = f"event {event_id}: {call.tool}"
    if call_digest(call.tool, call.arguments) != call.call_digest:
        return f"{where} arguments differ from the digest"
    if in_call:
        if call.policy_version != pinned_policy:
            return (
                f"{where} step {call.step} ran under policy {call.policy_version!r}, "
                f"not the run's pinned {pinned_policy!r}"
            )
        allow: StepMark | ToolCallInput | None = call
    else:
        allow = allowed.get((call.call_digest, call.policy_version))
    if allow is None:
        return f"{where} step {call.step} ran without an allow"
    needed = 2 if call.tier >= 4 else 1 if call.tier >= 3 else 0
    if len(set(allow.approved_by)) < needed:
        return f"{where} (tier {call.tier}) ran with {len(set(allow.approved_by))} approvals"
    return None
