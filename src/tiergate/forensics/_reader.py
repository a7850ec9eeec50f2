"""The one reader of a tiergate run's history: a single pass over its events.

Every consumer — the timeline, the approval audit, the ungated-call check, shadows, the
web page, the report — reads a run through `read_history`: activities paired with their
completions, approval updates with their outcomes, memo changes, the run's input and how it
closed, each payload decoded (with tiergate's pydantic converter) only when asked for. It
needs nothing but the history, so a live server's history and an exported file read alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import PayloadCodec

from tiergate.cluster import ENCODING
from tiergate.core import (
    APPROVAL_UPDATE,
    LOAD_AGENT_ACTIVITY,
    RUN_MEMO,
    STEP_MEMO,
    TOOL_ACTIVITY_PREFIX,
    AgentBundle,
    RunSummary,
    StepMark,
    ToolCallInput,
    ToolResult,
    Versions,
)
from tiergate.errors import HistoryError

_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
}


def decode(payload: Payload) -> Any:
    """A payload of a tiergate history as plain JSON values."""
    return pydantic_data_converter.payload_converter.from_payload(payload)


def _first(payloads: Payloads | None) -> Any:
    return decode(payloads.payloads[0]) if payloads is not None and payloads.payloads else None


def _time(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


@dataclass
class ActivityEvent:
    """One scheduled activity and, once it completed, its result."""

    name: str
    event_id: int
    scheduled_at: datetime
    payloads: Payloads
    completed_at: datetime | None = None
    completed_event_id: int | None = None
    result_payloads: Payloads | None = None

    @cached_property
    def input(self) -> Any:
        return _first(self.payloads)

    @cached_property
    def result(self) -> Any:
        return _first(self.result_payloads)


@dataclass
class UpdateEvent:
    """One accepted update (an approver's answer) and what the run made of it."""

    update_id: str
    name: str
    event_id: int
    accepted_at: datetime
    payloads: Payloads
    outcome_payloads: Payloads | None = None

    @cached_property
    def argument(self) -> Any:
        return _first(self.payloads)

    @cached_property
    def outcome(self) -> Any:
        return _first(self.outcome_payloads)


@dataclass
class MemoChange:
    event_id: int
    at: datetime
    fields: dict[str, Payload]

    def get(self, key: str) -> Any:
        return decode(self.fields[key]) if key in self.fields else None


@dataclass
class RunView:
    """What a history says about one run (one segment of a long run)."""

    workflow_id: str
    run_id: str = ""
    status: str = "running"
    start_payloads: list[Payload] = field(default_factory=list)
    started_at: datetime | None = None
    closed_at: datetime | None = None
    continued_from: str = ""
    first_run_id: str = ""
    activities: list[ActivityEvent] = field(default_factory=list)
    updates: list[UpdateEvent] = field(default_factory=list)
    memos: list[MemoChange] = field(default_factory=list)
    result_payloads: Payloads | None = None
    failure: str | None = None

    @cached_property
    def input(self) -> Any:
        return decode(self.start_payloads[0]) if self.start_payloads else None

    @cached_property
    def carry(self) -> Any:
        """A later segment's carry (its second start argument), else None."""
        return decode(self.start_payloads[1]) if len(self.start_payloads) > 1 else None

    @cached_property
    def summary(self) -> RunSummary | None:
        if self.status != "completed" or self.result_payloads is None:
            return None
        return RunSummary.model_validate(_first(self.result_payloads))

    @cached_property
    def versions(self) -> Versions | None:
        """The versions the run recorded when it started."""
        for memo in self.memos:
            if (run := memo.get(RUN_MEMO)) and run.get("versions"):
                return Versions.model_validate(run["versions"])
        return None

    @cached_property
    def marks(self) -> dict[int, StepMark]:
        """The latest mark of each step."""
        marks = {}
        for memo in self.memos:
            if (value := memo.get(STEP_MEMO)) is not None:
                mark = StepMark.model_validate(value)
                marks[mark.step] = mark
        return marks

    def named(self, name: str) -> list[ActivityEvent]:
        return [a for a in self.activities if a.name == name]

    @cached_property
    def tool_activities(self) -> list[ActivityEvent]:
        return [a for a in self.activities if a.name.startswith(TOOL_ACTIVITY_PREFIX)]

    @cached_property
    def tool_calls(self) -> list[ToolCallInput]:
        """Every scheduled tool call, as its scheduled event records it (with its allow)."""
        return [ToolCallInput.model_validate(a.input) for a in self.tool_activities]

    def tool_results(self) -> dict[str, ToolResult]:
        """What each completed tool call returned, keyed by call digest."""
        return {
            ToolCallInput.model_validate(a.input).call_digest: ToolResult.model_validate(a.result)
            for a in self.tool_activities
            if a.result is not None
        }

    @cached_property
    def approvals(self) -> list[UpdateEvent]:
        return [u for u in self.updates if u.name == APPROVAL_UPDATE]

    def pinned_bundle(self) -> AgentBundle:
        """The agent bundle the run was pinned to: its `agent__load` result, or for a later
        segment of a long run, the bundle its carry brought along."""
        if isinstance(self.carry, dict) and "bundle" in self.carry:
            return AgentBundle.model_validate(self.carry["bundle"])
        for load in self.named(LOAD_AGENT_ACTIVITY):
            if load.result is not None:
                return AgentBundle.model_validate(load.result)
        raise HistoryError(f"run {self.workflow_id}: no pinned agent bundle in its history")


def read_history(history: WorkflowHistory) -> RunView:
    """``history`` read in one pass (payloads are decoded when a field is first read)."""
    view = RunView(workflow_id=history.workflow_id)
    activities: dict[int, ActivityEvent] = {}
    updates: dict[int, UpdateEvent] = {}
    for event in history.events:
        _read(event, view, activities, updates)
    return view


def _read(
    event: HistoryEvent,
    view: RunView,
    activities: dict[int, ActivityEvent],
    updates: dict[int, UpdateEvent],
) -> None:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        attrs = event.workflow_execution_started_event_attributes
        view.run_id = attrs.original_execution_run_id
        view.start_payloads = list(attrs.input.payloads)
        view.started_at = _time(event)
        view.continued_from = attrs.continued_execution_run_id
        view.first_run_id = attrs.first_execution_run_id
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        scheduled = event.activity_task_scheduled_event_attributes
        activity = ActivityEvent(
            scheduled.activity_type.name, event.event_id, _time(event), scheduled.input
        )
        activities[event.event_id] = activity
        view.activities.append(activity)
    elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
        done = event.activity_task_completed_event_attributes
        if (found := activities.get(done.scheduled_event_id)) is not None:
            found.completed_at, found.completed_event_id = _time(event), event.event_id
            found.result_payloads = done.result
    elif kind == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
        fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
        view.memos.append(MemoChange(event.event_id, _time(event), dict(fields)))
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        accepted = event.workflow_execution_update_accepted_event_attributes.accepted_request
        update = UpdateEvent(
            accepted.meta.update_id,
            accepted.input.name,
            event.event_id,
            _time(event),
            accepted.input.args,
        )
        updates[event.event_id] = update
        view.updates.append(update)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        completed = event.workflow_execution_update_completed_event_attributes
        if (answer := updates.get(completed.accepted_event_id)) is not None and (
            completed.outcome.HasField("success")
        ):
            answer.outcome_payloads = completed.outcome.success
    elif kind in _CLOSED:
        _close(event, view)


def _close(event: HistoryEvent, view: RunView) -> None:
    view.status, view.closed_at = _CLOSED[event.event_type], _time(event)
    if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        view.result_payloads = event.workflow_execution_completed_event_attributes.result
    elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        view.failure = event.workflow_execution_failed_event_attributes.failure.message


def _payloads(message: Message, found: list[Payload]) -> None:
    """Every Payload inside ``message`` (search attributes aside), in place."""
    for descriptor, value in message.ListFields():
        if descriptor.name == "search_attributes":
            continue
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.full_name == Payload.DESCRIPTOR.full_name:
            found.extend(value if descriptor.is_repeated else [value])
        elif descriptor.message_type.GetOptions().map_entry:
            for item in value.values():
                if isinstance(item, Payload):
                    found.append(item)
                elif isinstance(item, Message):
                    _payloads(item, found)
        elif descriptor.is_repeated:
            for item in value:
                _payloads(item, found)
        else:
            _payloads(value, found)


async def decrypted(history: WorkflowHistory, codec: PayloadCodec | None) -> WorkflowHistory:
    """``history`` with every encrypted payload decrypted in place (a no-op without a codec)."""
    if codec is None:
        return history
    found: list[Payload] = []
    for event in history.events:
        _payloads(event, found)
    encrypted = [p for p in found if p.metadata.get("encoding") == ENCODING]
    for payload, plain in zip(encrypted, await codec.decode(encrypted), strict=True):
        payload.CopyFrom(plain)
    return history
