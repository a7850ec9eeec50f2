"""Long runs continue as new before Temporal's history limits and still read as one run."""

from __future__ import annotations

import json

from tests.conftest import Harness, call, final, scripted
from tests.test_kill_switch import cli
from tiergate.approvals.client import decide
from tiergate.core import ApprovalDecision, Outcome
from tiergate.forensics import (
    build_timeline,
    fetch_run_chain,
    read_history,
    replay_one,
    ungated_tool_calls,
)
from tiergate.workflows._carry import CONTINUE_AS_NEW_EVENTS, should_continue

READS = [call("crm.read_ticket", ticket_id=f"T-100{n}") for n in range(1, 9)] + [
    call("orders.get_status", order_id=f"ORD-500{n}") for n in range(1, 4)
]
REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
REFUND_120 = call(
    "payments.issue_refund", order_id="ORD-5006", amount_usd="120", reason_code="wrong_item"
)
#: A segment holds about four steps at this limit (a tool step is about 13 events).
SHORT = 60


def test_continue_as_new_is_due_at_the_event_limit_the_byte_limit_or_the_servers_hint() -> None:
    assert not should_continue(100, 1000, False, None)
    assert should_continue(CONTINUE_AS_NEW_EVENTS, 1000, False, None)
    assert should_continue(SHORT, 1000, False, SHORT)
    assert not should_continue(SHORT - 1, 1000, False, SHORT)
    assert should_continue(10, 9 * 1024 * 1024, False, None)
    assert should_continue(10, 10, True, None)


async def test_a_long_run_carries_its_state_and_reads_as_one_run(harness: Harness) -> None:
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    agent = harness.add_agent("longrun", budgets={"max_denials": 2, "max_tool_calls": 20})
    script = scripted(
        REFUND_400,  # step 1: waits for the lead in the first segment
        *READS[:8],  # steps 2-9: the run continues as new at least once
        call("orders.get_status", order_id="ORD-5001"),  # step 10: disabled by then: denied
        REFUND_120,  # step 11: an approval in a later segment
        *READS[:2],  # steps 12-13: seen before the boundaries; the loop counter knows
        final(),  # step 14
    )
    async with harness.worker():
        handle = await harness.start(
            agent, requester="svc", model_overrides=script, continue_as_new_after_events=SHORT
        )
        await harness.pending(handle)
        # While the first segment waits: an operator disables a tool (kill switch).
        await harness.control(handle.id, "disable_tool", "orders.get_status")
        client = harness.env.client
        await decide(client, harness.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok")
        pending = await harness.pending(handle)
        assert pending.step == 11
        await decide(client, harness.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok")
        summary = await handle.result()

    assert summary.outcome == Outcome.COMPLETED, summary.reason
    assert len(summary.previous_run_ids) >= 2
    # The ledger crossed every boundary: whole-run totals, not the last segment's.
    assert summary.usage.model_calls == 14
    assert summary.usage.tool_calls == 12  # 13 tool steps, one denied by the kill switch
    assert summary.usage.denials == 1
    assert summary.approval_wait_seconds > 0
    assert summary.steps[-1].step == 14
    # The summary's steps and model calls are the last segment's own, none carried twice.
    assert [c.step for c in summary.model_calls] == [s.step for s in summary.steps]
    # Both refunds applied exactly once, each under its own idempotency key.
    assert len(harness.store.rows("refunds")) == 2

    chain = await fetch_run_chain(client, handle.id)
    assert [read_history(h).run_id for h in chain[:-1]] == summary.previous_run_ids
    assert [read_history(h).status for h in chain] == [
        *["continued_as_new"] * (len(chain) - 1),
        "completed",
    ]
    for history in chain:
        assert ungated_tool_calls(history) == []  # each segment's audit trail is whole
        assert (await replay_one(history)).ok

    timeline = build_timeline(chain[-1], earlier=chain[:-1])
    assert [s.step for s in timeline.steps] == list(range(1, 15))
    assert timeline.segments == [*summary.previous_run_ids, summary.run_id]
    assert timeline.tool_calls == 12
    by_step = {s.step: s for s in timeline.steps}
    assert [a.approver for a in by_step[1].approvals] == ["lead"]
    assert [a.approver for a in by_step[11].approvals] == ["lead"]
    assert by_step[10].code == "tool_disabled"
    assert (by_step[5].observation or "").startswith("crm.read_ticket result (")
    keys = [s.idempotency_key for s in timeline.steps if s.idempotency_key]
    assert len(keys) == len(set(keys)) == 12

    # `runs show` walks the chain too: one run, fourteen steps.
    shown = json.loads(await cli(harness, "runs", "show", handle.id, "--json"))
    assert [s["step"] for s in shown["steps"]] == list(range(1, 15))
    assert shown["outcome"] == "completed"


async def test_budgets_are_enforced_across_segments(harness: Harness) -> None:
    budgets = {"max_tool_calls": 6}
    agent = harness.add_agent("longbudget", budgets=budgets)
    summary = await harness.run(
        agent, model_overrides=scripted(*READS, final()), continue_as_new_after_events=SHORT
    )
    # Every segment alone is under the limit; only a carried ledger can stop the run.
    assert summary.previous_run_ids
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "tool_calls"
    assert summary.usage.tool_calls == 6
