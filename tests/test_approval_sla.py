"""Approval SLAs on the time-skipping test server: a 24-hour expiry passes in about a second."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.conftest import Harness, call, final, scripted, start_time_skipping
from tests.fake_openai import Reply, serve
from tiergate.approvals import sign
from tiergate.approvals.client import build_request, submit
from tiergate.core import ApprovalDecision, Outcome
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.worker import build_worker

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
HOUR = 3600


@pytest_asyncio.fixture(scope="module")
async def skipping() -> AsyncIterator[WorkflowEnvironment]:
    environment = await start_time_skipping()
    yield environment
    await environment.shutdown()


@pytest.fixture
def harness_ts(skipping: WorkflowEnvironment, tmp_path: Path) -> Harness:
    h = Harness(skipping, tmp_path)
    h.store.seed_demo()
    h.registry.add("lead", ["support_lead"], demo_key=True)
    return h


async def test_overdue_escalates_then_expires(harness_ts: Harness) -> None:
    h = harness_ts
    agent = h.add_agent(
        "a", approvals={"tier3": {"sla_seconds": 4 * HOUR, "expiry_seconds": 24 * HOUR}}
    )
    with serve([Reply(body={"ok": True})]) as hook:
        settings = h.settings.model_copy(update={"notify_url": hook.base_url + "/hook"})
        async with build_worker(h.env.client, settings, SUPPORT_TOOLKIT, task_queue=h.task_queue):
            handle = await h.start(
                agent, input={}, model_overrides=scripted(REFUND_400, final("sorry"))
            )
            summary = await handle.result()
    step = summary.steps[0]
    assert step.decision is not None
    assert step.decision.code == "approval_expired"
    assert step.approval is not None
    assert step.approval.status == "expired"
    assert step.approval.escalated_at is not None
    assert step.approval.waited_seconds == pytest.approx(24 * HOUR, abs=5)
    assert [r["body"]["tool"] for r in hook.requests] == ["payments.issue_refund"]
    assert hook.requests[0]["body"]["run_id"] == handle.id
    assert h.store.rows("refunds") == []
    assert summary.approval_wait_seconds == pytest.approx(24 * HOUR, abs=5)
    assert summary.wall_time_seconds < 25


async def test_waiting_for_people_does_not_spend_the_wall_time_budget(harness_ts: Harness) -> None:
    h = harness_ts
    agent = h.add_agent("a", budgets={"max_wall_time_seconds": 25})
    async with h.worker():
        handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
        pending = await h.pending(handle)
        await h.env.sleep(timedelta(hours=2))
        # Signed answers expire by the run's clock, which this server has moved 2 hours on.
        request = build_request(
            pending,
            "lead",
            ApprovalDecision.APPROVE,
            "late but fine",
            now=await h.env.get_current_time(),
        )
        await submit(h.env.client, sign(request, h.registry.private_key("lead")))
        summary = await handle.result()
    assert summary.outcome == Outcome.COMPLETED
    assert summary.approval_wait_seconds >= 2 * HOUR
    assert summary.wall_time_seconds < 25
    assert len(h.store.rows("refunds")) == 1


async def test_tier_four_uses_its_own_sla(harness_ts: Harness) -> None:
    h = harness_ts
    agent = h.add_agent(
        "a",
        approvals={
            "tier4": {"sla_seconds": HOUR, "expiry_seconds": 2 * HOUR},
            "on_deny": "escalate",
        },
    )
    delete = call("users.delete_data", user_id="U-77", justification="asked")
    async with h.worker():
        summary = await (
            await h.start(agent, input={}, model_overrides=scripted(delete, final()))
        ).result()
    assert summary.outcome == Outcome.ESCALATED
    assert summary.steps[0].approval is not None
    assert summary.steps[0].approval.waited_seconds == pytest.approx(2 * HOUR, abs=5)
