"""Determinism replay: do recorded runs still replay under the current workflow code?

Each history is replayed with `temporalio.worker.Replayer`, the same sandbox runner and data
converter as the worker. A failure is reported with the first event the code no longer
reproduces: Temporal's nondeterminism message names it in most cases; when it does not, the
history is replayed in growing prefixes, one workflow task at a time, and the first task
that fails is the divergence. Nothing here needs a server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Replayer

from tiergate.workflows import AgentRunWorkflow, workflow_runner

_NAMED_EVENT = re.compile(r"HistoryEvent\(id: (\d+), (\w+)")
_CODE = re.compile(r"\[TMPRL\d+\] ")


@dataclass(frozen=True)
class Divergence:
    """Where a history stops matching the code."""

    event_id: int
    event_type: str
    detail: str


@dataclass(frozen=True)
class ReplayOutcome:
    workflow_id: str
    events: int
    ok: bool
    error: str = ""
    divergence: Divergence | None = None


@cache
def _quiet_runtime() -> Runtime:
    # The replayer's core logs each failing task at WARN; the outcome reports it instead.
    quiet = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=quiet)))


def replayer(workflows: Sequence[type] | None = None) -> Replayer:
    return Replayer(
        workflows=list(workflows or [AgentRunWorkflow]),
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
        runtime=_quiet_runtime(),
    )


def _subject(event: HistoryEvent) -> str:
    """The name an event is about, as nondeterminism messages quote it."""
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return event.activity_task_scheduled_event_attributes.activity_type.name
    if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
        return event.timer_started_event_attributes.timer_id
    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        return event.marker_recorded_event_attributes.marker_name
    return ""


def describe(event: HistoryEvent) -> str:
    """An event as a responder reads it: its type and, for activities and timers, what."""
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return f"{kind} {event.activity_task_scheduled_event_attributes.activity_type.name}"
    if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
        timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
        return f"{kind} ({timeout.total_seconds():g} s)"
    if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
        return f"{kind} {event.marker_recorded_event_attributes.marker_name}"
    return kind


async def replay_one(
    history: WorkflowHistory, workflows: Sequence[type] | None = None
) -> ReplayOutcome:
    """Replays ``history``; on failure finds the first diverging event."""
    return await _replay(replayer(workflows), history)


async def replay_all(
    histories: Sequence[WorkflowHistory], workflows: Sequence[type] | None = None
) -> list[ReplayOutcome]:
    """Replays each of ``histories`` with one Replayer (cheaper than one per history)."""
    runner = replayer(workflows)
    return [await _replay(runner, history) for history in histories]


async def _replay(runner: Replayer, history: WorkflowHistory) -> ReplayOutcome:
    result = await runner.replay_workflow(history, raise_on_replay_failure=False)
    if result.replay_failure is None:
        return ReplayOutcome(history.workflow_id, len(history.events), True)
    error = _CODE.sub("", str(result.replay_failure))
    return ReplayOutcome(
        history.workflow_id,
        len(history.events),
        False,
        error=_short(error),
        divergence=await _divergence(runner, history, error),
    )


def _short(error: str) -> str:
    match = re.search(r'message: "([^"]*)"', error)
    return match.group(1) if match else error[:400]


async def _divergence(runner: Replayer, history: WorkflowHistory, error: str) -> Divergence | None:
    by_id = {e.event_id: e for e in history.events}
    named = _NAMED_EVENT.search(error)
    if named and int(named.group(1)) in by_id:
        event = by_id[int(named.group(1))]
        return Divergence(event.event_id, describe(event), _short(_CODE.sub("", error)))
    # Not named: find the first workflow task whose commands the code no longer produces.
    # A task's commands are the events after its WorkflowTaskCompleted, so each prefix runs
    # up to (not including) the next WorkflowTaskStarted.
    events = history.events
    started = [
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]
    for cut in [*started[1:], len(events)]:
        prefix = WorkflowHistory(history.workflow_id, events[:cut])
        result = await runner.replay_workflow(prefix, raise_on_replay_failure=False)
        if result.replay_failure is None:
            continue
        completed = max(
            i
            for i in range(cut)
            if events[i].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        commands = events[completed + 1 : cut] or [events[completed]]
        # The event the message talks about (an activity type, a timer, a marker), if any.
        named_in_error = [e for e in commands if _subject(e) and f"'{_subject(e)}'" in error]
        first = (named_in_error or commands)[0]
        return Divergence(
            first.event_id,
            describe(first),
            f"the workflow task completed at event {events[completed].event_id} no longer "
            "produces the commands recorded after it",
        )
    return None
