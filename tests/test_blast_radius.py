"""Blast radius: caps held across workers and restarts, and irreversible actions per run."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.conftest import Harness, call, final, scripted
from tiergate.core import Outcome, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.worker import build_worker

CAPS = {
    "caps": [
        {"name": "emails_per_day", "tools": ["email.send"], "window": "day", "max_calls": 2},
        {
            "name": "refund_dollars_per_day",
            "tools": ["payments.issue_refund"],
            "window": "day",
            "sum_field": "amount_usd",
            "max_sum": "50",
        },
    ]
}


def email(n: int) -> dict[str, Any]:
    return call("email.send", to="pat@customers.example.com", subject=f"note {n}", body="hello")


async def test_a_daily_cap_holds_across_two_workers_and_a_restart(harness: Harness) -> None:
    agent = harness.add_agent("capped", limits=CAPS)
    address = harness.env.client.service_client.config.target_host
    second_client = await Client.connect(address, data_converter=pydantic_data_converter)
    first = build_worker(
        harness.env.client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
    )
    second = build_worker(
        second_client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
    )
    async with first, second:
        handles = [
            await harness.start(agent, model_overrides=scripted(email(n), final()))
            for n in range(4)
        ]
        summaries: list[RunSummary] = list(await asyncio.gather(*(h.result() for h in handles)))
    assert len(harness.store.rows("emails")) == 2
    limited = [s for s in summaries if s.outcome == Outcome.DENIED]
    assert len(limited) == 2
    for summary in limited:
        decision = summary.steps[0].decision
        assert decision is not None
        assert (decision.code, decision.policy_ids) == ("rate_limited", ["emails_per_day"])
        assert "rate_limited by cap emails_per_day: 2 of 2 calls used" in decision.reason
    # A fresh worker (a restart) sees the same count: it lives in the store, not in memory.
    later = await harness.run(agent, model_overrides=scripted(email(9), final()))
    assert later.outcome == Outcome.DENIED
    assert later.steps[0].decision is not None
    assert later.steps[0].decision.code == "rate_limited"
    assert len(harness.store.rows("emails")) == 2


async def test_a_dollar_cap_counts_amounts_and_a_refused_call_counts_nothing(
    harness: Harness,
) -> None:
    agent = harness.add_agent("refund_capped", limits=CAPS)

    def refund(order: str, amount: str) -> dict[str, Any]:
        return call(
            "payments.issue_refund", order_id=order, amount_usd=amount, reason_code="damaged"
        )

    first = await harness.run(agent, model_overrides=scripted(refund("ORD-5001", "35"), final()))
    assert first.outcome == Outcome.COMPLETED
    over = await harness.run(agent, model_overrides=scripted(refund("ORD-5004", "20"), final()))
    assert over.steps[0].decision is not None
    assert over.steps[0].decision.code == "rate_limited"
    fits = await harness.run(agent, model_overrides=scripted(refund("ORD-5004", "15"), final()))
    assert fits.outcome == Outcome.COMPLETED
    assert sorted(r["amount_usd"] for r in harness.store.rows("refunds")) == ["15.00", "35.00"]


async def test_irreversible_actions_are_capped_per_run(harness: Harness) -> None:
    agent = harness.add_agent(
        "careful",
        budgets={"max_irreversible_actions": 1},
    )
    summary = await harness.run(agent, model_overrides=scripted(email(1), email(2), final()))
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "irreversible_actions"
    assert len(harness.store.rows("emails")) == 1
