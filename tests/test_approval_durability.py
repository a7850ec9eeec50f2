"""A paused run survives a worker restart and a dev-server restart (SQLite persistence)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Harness, call, final, scripted
from tiergate.approvals.client import decide
from tiergate.cluster import free_port, start_dev_server
from tiergate.core import ApprovalDecision, Outcome, RunSummary

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)


async def test_wait_survives_worker_and_server_restarts(tmp_path: Path) -> None:
    database, port = tmp_path / "temporal.sqlite", free_port()
    first = await start_dev_server(database, port=port, ui=False)
    h = Harness(first.env, tmp_path)
    h.store.seed_demo()
    h.registry.add("lead", ["support_lead"], demo_key=True)
    agent = h.add_agent("a")
    try:
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
            await h.pending(handle)
        async with h.worker():  # a new worker process picks the wait up from history
            assert (await h.pending(handle)).tool == "payments.issue_refund"
    finally:
        await first.env.shutdown()

    second = await start_dev_server(database, port=port, ui=False)
    try:
        h2 = Harness(second.env, tmp_path, task_queue=h.task_queue)
        async with h2.worker():
            pending = await h2.pending(second.env.client.get_workflow_handle(handle.id))
            assert pending.call_digest
            await decide(
                second.env.client, h2.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok"
            )
            summary = await second.env.client.get_workflow_handle(
                handle.id, result_type=RunSummary
            ).result()
    finally:
        await second.env.shutdown()
    assert summary.outcome == Outcome.COMPLETED
    assert len(h.store.rows("refunds")) == 1
