"""Drill 3: model provider faults, from a real local server speaking chat completions.

`tests/test_openai_provider.py` covers each fault alone; here they come mixed in one run, and
the drill checks what an SRE would: retries back off and stay within the budget, malformed
output becomes recorded invalid proposals, an endless stream of tool calls stops on the
budget, and no tool activity is ever scheduled on a bad proposal (read from the history).
"""

from __future__ import annotations

import itertools
from typing import Any

from temporalio.api.enums.v1 import EventType

from tests.conftest import Harness
from tests.fake_openai import Reply, completion, serve, tool_call
from tests.test_openai_provider import declared, openai, priced_agent
from tiergate.core import Outcome, RunSummary, ToolCallInput, tool_activity_name
from tiergate.forensics import decode


async def scheduled_tools(h: Harness, summary: RunSummary) -> list[ToolCallInput]:
    history = await h.history(summary.workflow_id)
    calls = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name.startswith(tool_activity_name("")):
                calls.append(ToolCallInput.model_validate(decode(attrs.input.payloads[0])))
    return calls


def gaps(requests: list[dict[str, Any]]) -> list[float]:
    return [b["at"] - a["at"] for a, b in itertools.pairwise(requests)]


async def test_timeouts_429_and_5xx_back_off_and_stay_within_the_retry_budget(
    harness: Harness,
) -> None:
    agent = priced_agent(harness, budgets={"max_retries": 5})
    replies = [
        Reply(delay=2.0, body={}),  # past the 1 s attempt timeout
        Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "2"}),
        Reply(status=503, body={"error": "unavailable"}),
        Reply(status=502, body={"error": "bad gateway"}),
        completion({"content": "Handled."}),
    ]
    with serve(replies) as fake:
        summary = await harness.run(
            agent,
            input={},
            model_overrides=declared(harness, agent, openai(fake.base_url, timeout_seconds=1)),
        )
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    assert summary.usage.retries == 4
    assert len(fake.requests) == 5
    after_timeout, after_429, after_503, after_502 = gaps(fake.requests)
    assert after_timeout >= 1.0, "the next attempt waited for the timed-out one"
    assert after_429 >= 2.0, "Retry-After was honoured"
    assert after_502 >= after_503 >= 0.5, "5xx retries back off"


async def test_retries_never_pass_the_budget(harness: Harness) -> None:
    agent = priced_agent(harness, budgets={"max_retries": 3})
    with serve([Reply(status=429, body={}, headers={"Retry-After": "0"})]) as fake:
        summary = await harness.run(
            agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "retries"
    assert len(fake.requests) == 4, "one call and exactly max_retries retries"


async def test_malformed_output_is_recorded_and_runs_no_tool(harness: Harness) -> None:
    agent = priced_agent(harness, budgets={"max_invalid_proposals": 4})
    replies = [
        Reply(raw='{"choices": [{"message": {"content": "trunc'),  # truncated JSON
        tool_call("payments__issue_refund", "{not json"),  # arguments are not JSON
        Reply(body={"choices": []}),  # a completion with nothing in it
        tool_call(
            "payments__issue_refund",
            {"order_id": "5001; DROP TABLE refunds", "amount_usd": "20", "reason_code": "late"},
        ),  # wrong schema: refused by the gate, and one denial is this agent's limit
    ]
    with serve(replies) as fake:
        summary = await harness.run(
            agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.DENIED
    recorded = [
        (s.invalid.code if s.invalid else None, s.decision.code if s.decision else None)
        for s in summary.steps
    ]
    assert recorded == [
        ("not_json", None),
        ("not_json", None),
        ("schema", None),
        (None, "invalid_arguments"),
    ], recorded
    assert await scheduled_tools(harness, summary) == []
    assert harness.store.rows("refunds") == []


async def test_an_endless_stream_of_tool_calls_stops_on_the_budget(harness: Harness) -> None:
    agent = priced_agent(harness, budgets={"max_tool_calls": 4, "max_model_calls": 50})
    # Always another lookup, each for a different order: no loop detector fires, the budget does.
    replies = [
        tool_call("orders__get_status", {"order_id": f"ORD-{5001 + n % 6}", "reason": "again"})
        for n in range(6)
    ] + [tool_call("crm__read_ticket", {"ticket_id": f"T-{1001 + n}"}) for n in range(100)]
    with serve(replies) as fake:
        summary = await harness.run(
            agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "tool_calls"
    assert len(await scheduled_tools(harness, summary)) == 4
    assert len(fake.requests) == 5, "the fifth proposal was refused before any tool ran"


async def test_the_same_tool_call_forever_stops_as_a_loop(harness: Harness) -> None:
    agent = priced_agent(harness, budgets={"max_tool_calls": 10, "max_identical_tool_calls": 2})
    with serve([tool_call("orders__get_status", {"order_id": "ORD-5001"})]) as fake:
        summary = await harness.run(
            agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "identical_tool_calls"
    assert len(await scheduled_tools(harness, summary)) == 2
    assert len(fake.requests) == 3
