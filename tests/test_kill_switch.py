"""The kill switch: pause holds a running run at its next gate; disabled tools are denied."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError

from tests.conftest import Harness, call, final, scripted
from tests.test_cli import tiergate
from tiergate.approvals.client import decide
from tiergate.core import ApprovalDecision, RunInput, RunStatus, RunSummary
from tiergate.forensics import decode, read_history
from tiergate.rollout import RolloutError, start_run

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
UPDATE = call("crm.update_ticket", ticket_id="T-1002", status="resolved", reply="refunded")


def env(h: Harness) -> dict[str, str]:
    return {
        "TIERGATE_TEMPORAL_ADDRESS": h.env.client.service_client.config.target_host,
        "TIERGATE_HOME": str(h.home),
        "TIERGATE_AGENTS_DIR": str(h.home / "agents"),
        "TIERGATE_OPERATOR": "oncall",
    }


async def cli(h: Harness, *args: str) -> str:
    code, out = await tiergate(*args, env=env(h))
    assert code == 0, out
    return out


async def state_of(handle: WorkflowHandle[Any, RunSummary]) -> RunStatus:
    status: RunStatus = await handle.query("status", result_type=RunStatus)
    return status


async def held_run(h: Harness, agent: str) -> WorkflowHandle[Any, RunSummary]:
    """A run parked at an approval: a steady point to pull the switch at."""
    handle = await h.start(
        agent, input={}, requester="svc", model_overrides=scripted(REFUND_400, UPDATE, final())
    )
    await h.pending(handle)
    return handle


async def test_pause_holds_the_next_gate_and_resume_completes(harness: Harness) -> None:
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    agent = harness.add_agent("pausable")
    async with harness.worker():
        handle = await held_run(harness, agent)
        out = await cli(harness, "agent", "pause", agent, "--reason", "incident 42")
        assert "1 running run(s) told" in out
        await decide(
            harness.env.client, harness.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok"
        )
        # Approved during the incident, the refund is held too: the gate checks the pause
        # again after the wait, immediately before the call is scheduled (issue #20).
        for _ in range(100):
            status = await state_of(handle)
            if status.state == "paused":
                break
            await asyncio.sleep(0.05)
        assert status.state == "paused"
        assert harness.store.rows("refunds") == []
        # New runs are refused while paused, by the client and by the worker.
        with pytest.raises(RolloutError, match="is paused"):
            await start_run(
                harness.env.client, harness.settings, RunInput(agent=agent), "refused-1"
            )
        await asyncio.sleep(0.3)
        assert (await state_of(handle)).state == "paused"
        assert harness.store.rows("refunds") == []
        await cli(harness, "agent", "resume", agent)
        summary = await handle.result()
    assert summary.outcome.value == "completed"
    assert len(harness.store.rows("refunds")) == 1
    assert [s.decision.tool for s in summary.steps if s.decision] == [
        "payments.issue_refund",
        "crm.update_ticket",
    ]
    view = read_history(await harness.history(handle.id))
    assert view.summary is not None
    events = []
    for event in (await harness.history(handle.id)).events:
        fields = event.workflow_properties_modified_event_attributes.upserted_memo.fields
        if "tiergate.controls" in fields:
            events = decode(fields["tiergate.controls"])["events"]
    assert [(e["action"], e["reason"]) for e in events] == [
        ("pause", "incident 42"),
        ("resume", ""),
    ]


async def test_a_paused_agent_refuses_runs_started_elsewhere(harness: Harness) -> None:
    agent = harness.add_agent("frozen")
    await cli(harness, "agent", "pause", agent)
    async with harness.worker():
        handle = await harness.start(agent, model_overrides=scripted(final()))
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "AgentPaused"
    assert "is paused" in cause.cause.message


async def test_a_disabled_tool_is_denied_at_once(harness: Harness) -> None:
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    agent = harness.add_agent("limited")
    async with harness.worker():
        handle = await held_run(harness, agent)
        out = await cli(harness, "tool", "disable", "crm.update_ticket", "--reason", "spam")
        assert "crm.update_ticket disabled" in out
        await decide(
            harness.env.client, harness.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok"
        )
        running = await handle.result()
        # New runs get the tool disabled from the start.
        later = await (
            await harness.start(agent, model_overrides=scripted(UPDATE, final()))
        ).result()
    step = running.steps[1]
    assert step.decision is not None
    assert (step.decision.verdict.value, step.decision.code) == ("deny", "tool_disabled")
    assert later.steps[0].decision is not None
    assert later.steps[0].decision.code == "tool_disabled"
    await cli(harness, "tool", "enable", "crm.update_ticket")
    again = await harness.run(agent, model_overrides=scripted(UPDATE, final()))
    assert again.outcome.value == "completed"


async def test_a_tool_disabled_while_its_call_awaits_approval_does_not_act(
    harness: Harness,
) -> None:
    """The approval comes after the disable: the approved refund is denied, not run."""
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    agent = harness.add_agent("stopped_refunds")
    async with harness.worker():
        handle = await held_run(harness, agent)
        await cli(harness, "tool", "disable", "payments.issue_refund", "--reason", "fraud wave")
        for _ in range(100):  # the signal reaches the run; the approval must come after it
            if "tiergate.controls" in await (await handle.describe()).memo():
                break
            await asyncio.sleep(0.05)
        await decide(
            harness.env.client, harness.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok"
        )
        summary = await handle.result()
    await cli(harness, "tool", "enable", "payments.issue_refund")
    step = summary.steps[0]
    assert step.decision is not None
    assert (step.decision.verdict.value, step.decision.code) == ("deny", "tool_disabled")
    assert step.approval is not None
    assert [a.approver for a in step.approval.approvals] == ["lead"]  # people did approve
    assert step.tool_result is None
    assert harness.store.rows("refunds") == []
    calls = read_history(await harness.history(handle.id)).tool_calls
    assert "payments.issue_refund" not in [c.tool for c in calls]
