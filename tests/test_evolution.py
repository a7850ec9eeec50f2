"""Determinism replay and safe evolution: `tiergate replay`, and a change shipped behind a patch."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.worker import Worker

from tests.conftest import Harness, final, scripted
from tests.test_cli import tiergate
from tiergate.cli._replay import history_files
from tiergate.core import WORKFLOW_NAME, RunCarry, RunSummary, Stop
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.errors import HistoryError
from tiergate.forensics import load_history_file, replay_one
from tiergate.worker import build_activities
from tiergate.workflows import AgentRunWorkflow, workflow_runner

HISTORIES = Path(__file__).parent / "histories"
PATCH = "timer-before-routing"


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class UnpatchedChange(AgentRunWorkflow):
    """A new pause before routing, shipped without a patch: old runs cannot replay it."""

    @workflow.run
    async def run(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> RunSummary:
        return await super().run(raw_input, carry)

    async def _route(self) -> Stop | None:
        await workflow.sleep(0.01)
        return await super()._route()


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class PatchedChange(AgentRunWorkflow):
    """The same change behind `workflow.patched`: old runs take the old path on replay."""

    @workflow.run
    async def run(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> RunSummary:
        return await super().run(raw_input, carry)

    async def _route(self) -> Stop | None:
        if workflow.patched(PATCH):
            await workflow.sleep(0.01)
        return await super()._route()


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class DeprecatedPatch(AgentRunWorkflow):
    """The cycle's last step, once every pre-patch run has closed: only the new path remains."""

    @workflow.run
    async def run(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> RunSummary:
        return await super().run(raw_input, carry)

    async def _route(self) -> Stop | None:
        workflow.deprecate_patch(PATCH)
        await workflow.sleep(0.01)
        return await super()._route()


async def test_the_recorded_histories_replay_through_the_cli() -> None:
    code, out = await tiergate("replay", str(HISTORIES), "--json")
    assert code == 0, out
    results = json.loads(out)
    assert len(results) == 8
    assert all(r["ok"] for r in results)


async def test_a_nondeterministic_change_is_named_at_its_first_diverging_event() -> None:
    history = load_history_file(HISTORIES / "demo-T-1001-recorded.json")
    outcome = await replay_one(history, [UnpatchedChange])
    assert not outcome.ok
    assert outcome.divergence is not None
    scheduled = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "model__classify"
    ]
    assert outcome.divergence.event_id == scheduled[0].event_id
    assert outcome.divergence.event_type == "ACTIVITY_TASK_SCHEDULED model__classify"
    assert "Nondeterminism" in outcome.error


async def test_the_cli_names_the_diverging_event_and_exits_nonzero(tmp_path: Path) -> None:
    # A history recorded by other code: the third activity was `tool__crm.lookup`, which this
    # code never schedules there. To the replayer, that is the same as a changed workflow.
    data = json.loads((HISTORIES / "demo-T-1001-recorded.json").read_text())
    tools = [
        e
        for e in data["events"]
        if e.get("activityTaskScheduledEventAttributes", {})
        .get("activityType", {})
        .get("name", "")
        .startswith("tool__")
    ]
    tools[0]["activityTaskScheduledEventAttributes"]["activityType"]["name"] = "tool__crm.lookup"
    changed = tmp_path / "demo-T-1001-recorded.json"
    changed.write_text(json.dumps(data))
    code, out = await tiergate("replay", str(changed), str(HISTORIES / "demo-T-1002-recorded.json"))
    assert code == 1, out
    assert f"diverges at event {tools[0]['eventId']}" in out
    assert "ACTIVITY_TASK_SCHEDULED tool__crm.lookup" in out
    assert "1 of 2 runs replay cleanly" in out


async def test_replay_bad_input_is_a_clear_error(harness: Harness, tmp_path: Path) -> None:
    env = {"TIERGATE_TEMPORAL_ADDRESS": harness.env.client.service_client.config.target_host}
    code, out = await tiergate("replay", str(tmp_path / "missing.json"), env=env)
    assert (code, "no such file or folder" in out) == (2, True)
    code, out = await tiergate("replay", "--query", 'WorkflowId = "no-such-run"', env=env)
    assert (code, "matched no tiergate runs" in out) == (2, True)
    assert "Traceback" not in out


async def run_with(h: Harness, workflow_class: type) -> RunSummary:
    agent = h.add_agent("evolving", model_tier={"router": "small", "executor": "frontier"})
    models = {"small": {"provider": "demo", "model": "demo-small"}, **scripted(final())}
    async with Worker(
        h.env.client,
        task_queue=h.task_queue,
        workflows=[workflow_class],
        activities=build_activities(h.env.client, h.settings, SUPPORT_TOOLKIT, h.task_queue),
        workflow_runner=workflow_runner(),
        activity_executor=ThreadPoolExecutor(4),
    ):
        handle = await h.start(agent, model_overrides=models)
        return await handle.result()


async def test_a_patched_change_replays_old_and_new_runs(harness: Harness) -> None:
    old = await run_with(harness, AgentRunWorkflow)
    old_history = await harness.history(old.workflow_id)
    new = await run_with(harness, PatchedChange)
    new_history = await harness.history(new.workflow_id)
    assert any(e.timer_started_event_attributes.timer_id for e in new_history.events)

    assert (await replay_one(old_history, [PatchedChange])).ok
    assert (await replay_one(new_history, [PatchedChange])).ok
    # Without the patch the same change breaks the old run; after the deprecation step the
    # new runs replay, and only the old ones (which must have closed by then) do not.
    assert not (await replay_one(old_history, [UnpatchedChange])).ok
    assert (await replay_one(new_history, [DeprecatedPatch])).ok
    assert not (await replay_one(old_history, [DeprecatedPatch])).ok
    # The current code replays the old run but not the new one: patches only ever go forward.
    assert (await replay_one(old_history)).ok
    assert not (await replay_one(new_history)).ok


def test_folders_expand_to_their_histories(tmp_path: Path) -> None:
    assert len(history_files([HISTORIES])) == 8
    with pytest.raises(HistoryError, match="no such file or folder"):
        history_files([tmp_path / "nope"])
