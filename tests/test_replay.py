"""Invariant 2: recorded histories replay under the current workflow code."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.conftest import Harness
from tiergate.shared import WORKFLOW_NAME
from tiergate.workflows import AgentRunWorkflow, workflow_runner

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def replayer(*workflows: type) -> Replayer:
    return Replayer(
        workflows=list(workflows) or [AgentRunWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_the_recorded_demo_histories_are_there() -> None:
    assert len(HISTORIES) == 24  # the 8 demo runs in each of record formats 1, 2 and 3


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path) -> None:
    await replayer().replay_workflow(load(path))


async def test_fresh_run_replays(harness: Harness) -> None:
    summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
    await replayer().replay_workflow(await harness.history(summary.workflow_id))


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class _ChangedWorkflow:
    """The run loop with its first activity removed: a change that must not replay."""

    @workflow.run
    async def run(self, raw_input: dict[str, object]) -> None:
        await workflow.sleep(1)


async def test_a_changed_workflow_does_not_replay() -> None:
    """The replay check can fail: a history recorded by the real loop breaks a different one."""
    with pytest.raises(NondeterminismError):
        await replayer(_ChangedWorkflow).replay_workflow(load(HISTORIES[0]))


def test_each_record_format_is_among_the_recorded_histories() -> None:
    """Format 1 marks every change; format 2 asks a patch marker; format 3 pins itself in the
    input and keeps each allow in its tool's scheduled event, with no mark before it."""
    from temporalio.api.enums.v1 import EventType

    from tiergate.history import decode, ungated_tool_calls
    from tiergate.shared import RECORD_FORMAT_FIELD

    for batch, pinned, patched in (
        ("recorded", False, False),
        ("format2", False, True),
        ("format3", True, False),
    ):
        history = load(Path(__file__).parent / "histories" / f"demo-T-1001-{batch}.json")
        kinds = [e.event_type for e in history.events]
        started = history.events[0].workflow_execution_started_event_attributes
        assert (RECORD_FORMAT_FIELD in decode(started.input.payloads[0])) is pinned, batch
        assert (EventType.EVENT_TYPE_MARKER_RECORDED in kinds) is patched, batch
        assert ungated_tool_calls(history) == [], batch
        marks = kinds.count(EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED)
        tools = sum(
            e.activity_task_scheduled_event_attributes.activity_type.name.startswith("tool__")
            for e in history.events
        )
        assert tools == 4, batch
        # 1: versions, a mark when decided and when done per step, the closing memo.
        # 2: versions and one mark per tool call. 3: the versions memo alone.
        assert marks == {"recorded": 11, "format2": 5, "format3": 1}[batch], (batch, marks)
