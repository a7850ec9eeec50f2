"""Invariant 3: a write retried after a worker crash applies once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from tests.conftest import Harness, call, final, scripted
from tiergate.core import WORKFLOW_NAME, Outcome, RunSummary


async def start_worker(
    env: WorkflowEnvironment, harness: Harness, marker: Path
) -> asyncio.subprocess.Process:
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.crash_worker",
        address,
        harness.task_queue,
        str(harness.home),
        str(marker),
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert b"worker ready" in await asyncio.wait_for(process.stdout.readline(), 30)
    return process


async def test_refund_retried_after_a_crash_applies_once(
    env: WorkflowEnvironment, harness: Harness
) -> None:
    agent = harness.add_agent(
        "crashy", tools={"allowlist": ["payments.issue_refund"], "timeout_seconds": 2}
    )
    marker = harness.home / "crashed"
    refund = call(
        "payments.issue_refund", order_id="ORD-5001", amount_usd="20", reason_code="damaged"
    )
    first = await start_worker(env, harness, marker)
    handle = await env.client.start_workflow(
        WORKFLOW_NAME,
        harness.input(agent, input={}, model_overrides=scripted(refund, final())),
        id=f"crash-{uuid.uuid4()}",
        task_queue=harness.task_queue,
        result_type=RunSummary,
    )
    assert await asyncio.wait_for(first.wait(), 30) == 9
    assert marker.exists()
    assert len(harness.store.rows("refunds")) == 1
    second = await start_worker(env, harness, marker)
    try:
        summary = await asyncio.wait_for(handle.result(), 60)
    finally:
        second.kill()
        await second.wait()
    assert summary.outcome == Outcome.COMPLETED
    result = summary.steps[0].tool_result
    assert result is not None
    assert result.replayed, "the retry found the key already applied"
    assert result.attempt == 2
    assert len(harness.store.rows("refunds")) == 1
