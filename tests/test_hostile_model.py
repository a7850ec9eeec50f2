"""Issue #20, item 9: a hostile model meets typed refusals.

The same write proposed twice in one run waits for a person the second time (the default
identical-call budget of 2 used to let the same $10 refund apply twice), and an answer too
large for a Temporal payload becomes an invalid proposal with its excerpt in history and
the whole answer in the content store.
"""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import WorkflowHandle

from tests.conftest import Harness, call, final, scripted
from tests.fake_openai import completion, serve
from tests.test_openai_provider import declared, openai, priced_agent
from tiergate.activities import content_store
from tiergate.approvals.client import decide
from tiergate.core import ApprovalDecision, Outcome, RunSummary, Verdict

REFUND_10 = call("payments.issue_refund", order_id="ORD-5001", amount_usd="10", reason_code="late")


async def refund_twice(h: Harness) -> WorkflowHandle[Any, RunSummary]:
    """A run whose model proposes the same $10 refund twice (worker running)."""
    h.registry.add("lead", ["support_lead"], demo_key=True)
    agent = h.add_agent("a")
    return await h.start(agent, input={}, model_overrides=scripted(REFUND_10, REFUND_10, final()))


class TestRepeatedWrites:
    async def test_the_same_refund_again_waits_for_a_person(self, harness: Harness) -> None:
        h = harness
        async with h.worker():
            handle = await refund_twice(h)
            pending = await h.pending(handle)
            assert (pending.step, pending.tier, pending.verdict) == (2, 3, Verdict.NEEDS_APPROVAL)
            assert len(h.store.rows("refunds")) == 1
            await decide(
                h.env.client, h.registry, handle.id, "lead", ApprovalDecision.DENY, "once is enough"
            )
            summary = await handle.result()
        assert summary.outcome == Outcome.COMPLETED
        assert len(h.store.rows("refunds")) == 1
        second = summary.steps[1]
        assert second.decision is not None
        assert second.decision.code == "approval_denied"
        assert second.approval is not None
        assert second.approval.original.code == "repeated_write"
        assert "already ran with these exact arguments" in second.approval.original.reason

    async def test_a_person_may_let_it_run_again(self, harness: Harness) -> None:
        h = harness
        async with h.worker():
            handle = await refund_twice(h)
            await h.pending(handle)
            await decide(
                h.env.client, h.registry, handle.id, "lead", ApprovalDecision.APPROVE, "two items"
            )
            summary = await handle.result()
        assert len(h.store.rows("refunds")) == 2
        result = summary.steps[1].tool_result
        assert result is not None
        assert result.checks[-1] == "approvals: 1 of 1 verified (lead)"

    async def test_identical_reads_are_not_held(self, harness: Harness) -> None:
        read = call("crm.read_ticket", ticket_id="T-1001")
        summary = await harness.run(
            harness.add_agent("a"), input={}, model_overrides=scripted(read, read, final())
        )
        assert summary.outcome == Outcome.COMPLETED
        assert [s.decision.code for s in summary.steps[:2] if s.decision] == ["allowed"] * 2


async def test_a_multi_megabyte_answer_is_a_typed_invalid_proposal(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIERGATE_TEST_KEY", "sk-test")
    agent = priced_agent(harness, budgets={"max_invalid_proposals": 1})
    huge = "refund everything. " * 170_000  # 3.2 MB
    with serve([completion({"content": huge})]) as fake:
        summary = await harness.run(
            agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
        )
    assert summary.outcome == Outcome.FAILED
    invalid = summary.steps[0].invalid
    assert invalid is not None
    assert invalid.code == "too_large"
    assert len(invalid.excerpt or "") < 2_000
    whole = content_store(harness.settings).get(invalid.ref or "")
    assert huge in whole.decode()
