"""A run's session as the Temporal server's history of it shows, for the tool runner.

When a bundle's policies read ``context.session``, the runner re-decides a call with the
session the run had before the call's step: the tool activities that completed ``ok``, with
the arguments they were scheduled with, counted exactly as the workflow counts them
(`tiergate.core.Session.took_effect`). Nothing of it is taken from the activity's input or
from a carried state, which a workflow of someone else's could have written: a long run's
earlier segments are read from their own histories, each checked to be an
``AgentRunWorkflow`` execution on tiergate's task queue, through
``continued_execution_run_id``, and only tool activities scheduled onto that queue (where
this runner verified them) count: a workflow elsewhere completing "tool" activities of its
own adds nothing.

One history read per segment per call, for those bundles only; a finished segment's
session is kept (it cannot change).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from tiergate.core import (
    WORKFLOW_NAME,
    Session,
    ToolCallInput,
    ToolResult,
    ToolSpec,
    tool_activity_name,
)
from tiergate.errors import UnverifiedToolCallError

_KEEP_SEGMENTS = 256


class HistorySessions:
    """Sessions rebuilt from histories, through ``client`` (the worker's own), of runs on
    ``task_queue`` (tiergate's)."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client, self.task_queue = client, task_queue
        self._segments: OrderedDict[str, Session] = OrderedDict()

    async def before(
        self, workflow_id: str, run_id: str, step: int, tools: Mapping[str, ToolSpec]
    ) -> Session:
        """The session of run ``run_id`` as it was when step ``step`` was decided."""
        return await self._segment(workflow_id, run_id, tools, before_step=step)

    async def _segment(
        self,
        workflow_id: str,
        run_id: str,
        tools: Mapping[str, ToolSpec],
        before_step: int | None,
    ) -> Session:
        if before_step is None and (kept := self._segments.get(run_id)) is not None:
            return kept.model_copy(deep=True)
        history = await self.client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = list(history.events)
        started = events[0].workflow_execution_started_event_attributes
        if started.workflow_type.name != WORKFLOW_NAME:
            raise UnverifiedToolCallError(
                "session",
                f"run {run_id} of {workflow_id} is a {started.workflow_type.name!r} execution, "
                f"not {WORKFLOW_NAME}: what it carried is no run's session",
            )
        if started.task_queue.name != self.task_queue:
            raise UnverifiedToolCallError(
                "session",
                f"run {run_id} of {workflow_id} ran on task queue {started.task_queue.name!r}, "
                f"not tiergate's {self.task_queue!r}: what it carried is no run's session",
            )
        previous = started.continued_execution_run_id
        session = await self._segment(workflow_id, previous, tools, None) if previous else Session()
        for call in await self._took_effect(events):
            spec = tools.get(call.tool)
            if spec is not None and (before_step is None or call.step < before_step):
                session.took_effect(spec, call.arguments)
        if before_step is None:
            self._segments[run_id] = session.model_copy(deep=True)
            while len(self._segments) > _KEEP_SEGMENTS:
                self._segments.popitem(last=False)
        return session

    async def _took_effect(self, events: list[HistoryEvent]) -> list[ToolCallInput]:
        """The tool calls of these events that completed with an ``ok`` result, in order."""
        prefix = tool_activity_name("")
        scheduled: dict[int, Any] = {}
        done = []
        for event in events:
            if event.HasField("activity_task_scheduled_event_attributes"):
                asked = event.activity_task_scheduled_event_attributes
                mine = asked.task_queue.name == self.task_queue  # where this runner verifies
                if mine and asked.activity_type.name.startswith(prefix):
                    scheduled[event.event_id] = asked.input.payloads
            elif event.HasField("activity_task_completed_event_attributes"):
                answered = event.activity_task_completed_event_attributes
                if answered.scheduled_event_id in scheduled:
                    done.append((scheduled[answered.scheduled_event_id], answered.result))
        converter = self.client.data_converter
        calls = []
        for inputs, result in done:
            (answer,) = await converter.decode(list(result.payloads), [ToolResult])
            if isinstance(answer, ToolResult) and answer.ok:
                (call,) = await converter.decode(list(inputs), [ToolCallInput])
                calls.append(call)
        return calls
