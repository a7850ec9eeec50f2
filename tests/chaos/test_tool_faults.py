"""Drill 4: tool faults, on the real tool activities with faults injected around them.

The worker's own tool activity (verification included) runs against the real SQLite store; the wrapper only
raises, or sleeps past the timeout, before or after it, as a flaky vendor would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from temporalio import activity

from tests.conftest import Harness, call, final, scripted
from tiergate.approvals.client import decide
from tiergate.core import (
    ApprovalDecision,
    Outcome,
    RunSummary,
    ToolCallInput,
    ToolKind,
    ToolResult,
    ToolSpec,
    tool_activity_name,
)
from tiergate.demo import SUPPORT_TOOLKIT, SUPPORT_TOOLS
from tiergate.worker import build_activities, build_worker
from tiergate.workflows._retry import safe_to_retry, tool_retry

#: (attempt, run the real tool) -> what the fault does; "before"/"after" raise around the
#: effect, "hang" sleeps past the timeout after it (the effect applied, the response lost).
Fault = Callable[[int], str | None]

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
REFUND_20 = call("payments.issue_refund", order_id="ORD-5001", amount_usd="20", reason_code="late")
PLAN = call("billing.change_plan", customer_id="C-1", plan="pro")
TOOLS = ["payments.issue_refund", "billing.change_plan"]


class FlakyTool:
    """The real tool activity for ``tool``, with ``fault(attempt)`` deciding what goes wrong."""

    def __init__(self, h: Harness, tool: str, fault: Fault, hang_seconds: float = 0) -> None:
        self.tool = SUPPORT_TOOLS.tools[tool]
        self.spec = self.tool.spec
        self.h = h
        self.fault, self.hang_seconds = fault, hang_seconds
        self.attempts: list[int] = []

    def activity(self, real: Any) -> Any:
        """The fault around ``real``, the worker's own (verifying) activity for the tool."""

        @activity.defn(name=tool_activity_name(self.spec.name))
        def flaky(request: ToolCallInput) -> ToolResult:
            attempt = activity.info().attempt
            self.attempts.append(attempt)
            what = self.fault(attempt)
            if what == "before":
                raise ConnectionError(f"vendor unreachable (attempt {attempt})")
            result: ToolResult = real(request)
            if what == "after":
                raise ConnectionResetError(f"response lost after the effect (attempt {attempt})")
            if what == "hang":
                time.sleep(self.hang_seconds)  # past start_to_close: the completion is dropped
            return result

        return flaky


async def run_with(h: Harness, flaky: FlakyTool, *script: Any, **agent: Any) -> RunSummary:
    h.registry.add("lead", ["support_lead"], demo_key=True)
    name = h.add_agent("flaky", **{"tools": {"allowlist": TOOLS, "timeout_seconds": 1}, **agent})
    replaced = tool_activity_name(flaky.spec.name)
    every = build_activities(h.env.client, h.settings, SUPPORT_TOOLKIT, h.task_queue)
    real = next(a for a in every if getattr(a, "__temporal_activity_definition").name == replaced)
    activities = [a for a in every if a is not real]
    worker = build_worker(
        h.env.client,
        h.settings,
        SUPPORT_TOOLKIT,
        task_queue=h.task_queue,
        activities=[*activities, flaky.activity(real)],
    )
    async with worker:
        handle = await h.start(name, input={}, model_overrides=scripted(*script, final()))
        if flaky.spec.tier >= 3 or script[0] is REFUND_400:
            await h.pending(handle)
            await decide(
                h.env.client, h.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok"
            )
        return await handle.result()


@pytest.mark.parametrize("spec", list(SUPPORT_TOOLS.specs.values()), ids=lambda s: s.name)
def test_only_reads_and_writes_that_honor_the_key_are_retried(spec: ToolSpec) -> None:
    policy = tool_retry(spec, retries_left=4)
    if spec.kind is ToolKind.READ or spec.honors_idempotency_key:
        assert safe_to_retry(spec)
        assert policy.maximum_attempts == 5
    else:
        assert not safe_to_retry(spec)
        assert policy.maximum_attempts == 1


async def test_a_transient_fault_on_an_approved_tier_3_refund_is_retried_once_applied(
    harness: Harness,
) -> None:
    flaky = FlakyTool(harness, "payments.issue_refund", lambda n: "before" if n < 3 else None)
    summary = await run_with(harness, flaky, REFUND_400)
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    assert flaky.attempts == [1, 2, 3]
    result = summary.steps[0].tool_result
    assert result is not None
    assert result.ok
    assert result.attempt == 3
    assert summary.usage.retries == 2
    assert len(harness.store.rows("refunds")) == 1


async def test_an_effect_whose_response_is_lost_is_not_applied_again(harness: Harness) -> None:
    flaky = FlakyTool(
        harness, "payments.issue_refund", lambda n: "hang" if n == 1 else None, hang_seconds=2
    )
    summary = await run_with(harness, flaky, REFUND_20)
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    result = summary.steps[0].tool_result
    assert result is not None
    assert result.replayed, "the retry found the key applied and returned the first answer"
    assert [r["order_id"] for r in harness.store.rows("refunds")] == ["ORD-5001"]


async def test_a_fault_that_outlasts_the_retry_budget_stops_the_run(harness: Harness) -> None:
    flaky = FlakyTool(harness, "payments.issue_refund", lambda n: "before")
    summary = await run_with(harness, flaky, REFUND_20, budgets={"max_retries": 2})
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "retries"
    assert flaky.attempts == [1, 2, 3]
    assert harness.store.rows("refunds") == []


async def test_a_write_without_idempotency_keys_is_not_retried_and_escalates(
    harness: Harness,
) -> None:
    flaky = FlakyTool(harness, "billing.change_plan", lambda n: "after")
    summary = await run_with(harness, flaky, PLAN)
    assert summary.outcome == Outcome.ESCALATED
    assert "not retried automatically" in summary.reason
    assert "check whether the effect happened" in summary.reason
    assert flaky.attempts == [1], "one attempt: a retry could change the plan twice"
    assert len(harness.store.rows("plan_changes")) == 1


async def test_a_write_without_idempotency_keys_that_times_out_also_escalates(
    harness: Harness,
) -> None:
    flaky = FlakyTool(harness, "billing.change_plan", lambda n: "hang", hang_seconds=2)
    summary = await run_with(harness, flaky, PLAN)
    assert summary.outcome == Outcome.ESCALATED
    assert flaky.attempts == [1]
    assert len(harness.store.rows("plan_changes")) == 1


async def test_a_write_without_idempotency_keys_that_succeeds_completes(harness: Harness) -> None:
    flaky = FlakyTool(harness, "billing.change_plan", lambda n: None)
    summary = await run_with(harness, flaky, PLAN)
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    assert [(r["customer_id"], r["plan"]) for r in harness.store.rows("plan_changes")] == [
        ("C-1", "pro")
    ]
