"""Drill 7 at run level: oversized inputs and a flood of tool calls, on real runs.

Prompt injection in ticket text and in tool outputs runs in the eval suite's adversarial
cases, which `tests/test_evals.py` runs whole; look-alike names, domains and argument tricks
are pinned at the gate in `tests/test_hostile_input.py`.
"""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.chaos.test_provider_faults import scheduled_tools
from tests.conftest import Harness, call, final, scripted
from tests.fake_openai import completion, serve
from tests.test_openai_provider import declared, openai, priced_agent
from tiergate.core import MAX_PREVIEW_CHARS, MAX_RUN_INPUT_BYTES, Outcome, RunInput
from tiergate.errors import PayloadTooLargeError
from tiergate.rollout import start_run

FOUR_MB = 4 * 1024 * 1024


async def test_a_multi_megabyte_ticket_never_enters_history(harness: Harness) -> None:
    body = "Order ORD-5001 arrived damaged. " + "x" * FOUR_MB
    harness.store.seed(demo=True, tickets=[("T-9", "C-1", "Huge", body, "open")])
    agent = harness.add_agent("a")
    summary = await harness.run(
        agent,
        input={"ticket_id": "T-9"},
        model_overrides=scripted(call("crm.read_ticket", ticket_id="T-9"), final()),
    )
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    result = summary.steps[0].tool_result
    assert result is not None
    assert result.output_size > FOUR_MB
    assert len(result.preview) <= MAX_PREVIEW_CHARS
    history = await harness.history(summary.workflow_id)
    size = len(history.to_json())
    assert size < 200_000, f"history is {size} bytes for a {FOUR_MB}-byte tool output"


async def test_a_multi_megabyte_run_input_is_refused_before_it_starts(harness: Harness) -> None:
    request = RunInput(agent=harness.add_agent("a"), input={"ticket_text": "x" * FOUR_MB})
    with pytest.raises(PayloadTooLargeError) as refused:
        await start_run(
            harness.env.client, harness.settings, request, "too-big", harness.task_queue
        )
    assert f"the limit is {MAX_RUN_INPUT_BYTES}" in refused.value.message
    assert refused.value.fix is not None
    assert "store" in refused.value.fix


async def test_an_oversized_input_sent_around_the_client_fails_the_run_and_is_kept(
    harness: Harness,
) -> None:
    """Started with the bare SDK (no client-side check): the run refuses it, history keeps it."""
    agent = harness.add_agent("a")
    text = "y" * (MAX_RUN_INPUT_BYTES + 10)
    async with harness.worker():
        handle = await harness.start(agent, input={"ticket_text": text})
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "RunInputError"
    assert f"the limit is {MAX_RUN_INPUT_BYTES}" in cause.message
    history = await harness.history(handle.id)
    started = history.events[0]
    assert started.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    kept = started.workflow_execution_started_event_attributes.input.payloads[0].data
    assert text.encode() in kept
    assert await_no_tools(history)


def await_no_tools(history: object) -> bool:
    return not [
        e
        for e in getattr(history, "events", [])
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name.startswith("tool__")
    ]


async def test_ten_thousand_tool_calls_in_one_answer_run_none(harness: Harness) -> None:
    agent = priced_agent(harness, budgets={"max_invalid_proposals": 1})
    calls = [
        {
            "id": f"call_{n}",
            "type": "function",
            "function": {
                "name": "payments__issue_refund",
                "arguments": json.dumps(
                    {"order_id": "ORD-5001", "amount_usd": "1", "reason_code": "goodwill"}
                ),
            },
        }
        for n in range(10_000)
    ]
    with serve([completion({"content": None, "tool_calls": calls})]) as fake:
        summary = await harness.run(
            agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert "parallel_tool_calls" not in fake.requests[0]["body"]  # several are fine; 10,000 not
    assert summary.outcome == Outcome.FAILED
    invalid = summary.steps[0].invalid
    assert invalid is not None
    assert invalid.code == "multiple_tool_calls"
    assert "10000 tool calls in one answer" in invalid.message
    assert await scheduled_tools(harness, summary) == []
    assert harness.store.rows("refunds") == []
