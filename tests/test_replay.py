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
from tiergate.core import WORKFLOW_NAME
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
    assert len(HISTORIES) == 8  # the 8 demo runs


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


def test_the_recorded_histories_keep_each_allow_in_its_tool_event() -> None:
    """One record format: the run's versions in its memo, no patch marker, and every tool
    call's allow in its own scheduled event, so no mark precedes a call."""
    from temporalio.api.enums.v1 import EventType

    from tiergate.forensics import ungated_tool_calls

    history = load(Path(__file__).parent / "histories" / "demo-T-1001-recorded.json")
    kinds = [e.event_type for e in history.events]
    assert EventType.EVENT_TYPE_MARKER_RECORDED not in kinds
    assert ungated_tool_calls(history) == []
    tools = sum(
        e.activity_task_scheduled_event_attributes.activity_type.name.startswith("tool__")
        for e in history.events
    )
    assert tools == 4
    assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED) == 1
