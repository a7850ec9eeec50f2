"""Approval latency: from the approve call to the tool activity starting.

Runs N governed refunds that wait for one approval on the embedded dev server, approves them
one at a time through the same signed update the CLI uses, and times each from just before
the update is sent to the moment the refund activity starts (both clocks in this process).
The baseline, measured in the same run on the same server and worker settings, is a bare
workflow whose update only flips a flag that releases the same kind of activity: the ratio
says what governance (signature, Cedar approver policy, live revocation check, records)
adds on top of Temporal's own update round trip. Governed runs are approved by turns with an
Ed25519-signed answer (the CLI's) and with a passkey answer (the web page's: a WebAuthn
assertion the workflow verifies), ``runs`` of each on one worker, the assertion made by the software passkey of
the tests (`tests/passkeys.py`) before the clock starts, as the browser makes it before the
page sends the answer.

    python bench/approval_latency.py [--runs 200] [--out bench/results/approval_latency.json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import machine, save
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from tiergate.approvals import ApproverRegistry, sign, trusting_dev_admin
from tiergate.approvals.client import build_request, pending_of, submit
from tiergate.cluster import start_dev_server
from tiergate.core import (
    WORKFLOW_NAME,
    ApprovalDecision,
    ApprovalRequest,
    RunInput,
    ToolCallInput,
    ToolResult,
    tool_activity_name,
)
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.errors import NotWaitingError
from tiergate.settings import Settings
from tiergate.worker import build_activities, build_worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's tests package
from tests.passkeys import SoftPasskey

STARTED: dict[str, float] = {}
Signer = Callable[[ApprovalRequest], ApprovalRequest]


@activity.defn(name="bench__act")
def bare_act(run_id: str) -> str:
    STARTED[run_id] = time.perf_counter()
    return run_id


@workflow.defn(name="BareApprovalWorkflow", sandboxed=False)
class BareApprovalWorkflow:
    """The baseline: wait for an update, then run one activity."""

    def __init__(self) -> None:
        self.approved = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.approved)
        return str(
            await workflow.execute_activity(
                bare_act, workflow.info().workflow_id, start_to_close_timeout=timedelta(seconds=30)
            )
        )

    @workflow.update
    async def approve(self) -> str:
        self.approved = True
        return "ok"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def stats_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 0.99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "n": len(ms),
    }


def signers(settings: Settings) -> dict[str, tuple[str, Signer]]:
    """The two ways an answer is proved, each for an approver of its own."""
    registry = ApproverRegistry.of(settings)
    registry.add("bench-lead", ["support_lead"], demo_key=True)
    key = registry.private_key("bench-lead")
    registry.add("bench-web", ["support_lead"])
    passkey = SoftPasskey("https://approvals.bench.invalid")
    registry.add_passkey("bench-web", passkey.passkey())
    return {
        "ed25519": ("bench-lead", lambda request: sign(request, key)),
        "passkey": ("bench-web", passkey.sign),
    }


async def tiergate_latencies(
    client: Client, settings: Settings, runs: int, proofs: dict[str, tuple[str, Signer]]
) -> dict[str, list[float]]:
    """Latencies by proof; the proofs take turns, run by run, on one worker, so neither
    gets a warmer worker or a fuller database than the other."""
    refund = tool_activity_name("payments.issue_refund")
    queue = f"bench-{uuid.uuid4()}"
    every = build_activities(client, settings, SUPPORT_TOOLKIT, queue)
    real = next(a for a in every if getattr(a, "__temporal_activity_definition").name == refund)

    @activity.defn(name=refund)
    def timed_refund(call: ToolCallInput) -> ToolResult:
        STARTED[call.run_id] = time.perf_counter()
        result: ToolResult = real(call)  # the worker's own activity: verification included
        return result

    activities = [a for a in every if a is not real]
    script = [
        {
            "kind": "tool_call",
            "tool": "payments.issue_refund",
            "reason": "bench",
            "arguments": {"order_id": "ORD-9000", "amount_usd": "60", "reason_code": "goodwill"},
        },
        {"kind": "final_answer", "answer": "done"},
    ]
    overrides = {"frontier": {"provider": "scripted", "model": "demo-frontier", "script": script}}
    latencies: dict[str, list[float]] = {proof: [] for proof in proofs}
    turns = list(proofs.items())
    async with build_worker(
        client, settings, SUPPORT_TOOLKIT, task_queue=queue, activities=[*activities, timed_refund]
    ):
        handles = [
            await client.start_workflow(
                WORKFLOW_NAME,
                RunInput(
                    agent="support_refund_agent",
                    input={},
                    requester="bench",
                    model_overrides=overrides,
                ).model_dump(),
                id=f"bench-{i}-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
            )
            for i in range(runs)
        ]
        for i, handle in enumerate(handles):
            proof, (approver, prove) = turns[i % len(turns)]
            while True:
                try:
                    pending = await pending_of(client, handle.id)
                    break
                except NotWaitingError:
                    await asyncio.sleep(0.05)
            request = prove(build_request(pending, approver, ApprovalDecision.APPROVE, "bench"))
            sent = time.perf_counter()
            await submit(client, request)
            while handle.id not in STARTED:  # noqa: ASYNC110 - set from an activity thread; a 0.5 ms poll
                await asyncio.sleep(0.0005)
            latencies[proof].append(STARTED[handle.id] - sent)
            await handle.result()
    return latencies


async def bare_latencies(client: Client, runs: int) -> list[float]:
    queue = f"bench-bare-{uuid.uuid4()}"
    latencies = []
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BareApprovalWorkflow],
        activities=[bare_act],
        activity_executor=ThreadPoolExecutor(8),
    ):
        handles = [
            await client.start_workflow(
                BareApprovalWorkflow.run, id=f"bare-{i}-{uuid.uuid4().hex[:6]}", task_queue=queue
            )
            for i in range(runs)
        ]
        await asyncio.sleep(1)
        for handle in handles:
            sent = time.perf_counter()
            await handle.execute_update(BareApprovalWorkflow.approve)
            while handle.id not in STARTED:  # noqa: ASYNC110 - set from an activity thread; a 0.5 ms poll
                await asyncio.sleep(0.0005)
            latencies.append(STARTED[handle.id] - sent)
            await handle.result()
    return latencies


async def main(runs: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-"))
    settings = trusting_dev_admin(Settings(offline_model_overrides=True, home=home))
    # One large order so every benchmark refund ($60: tier 3 under refund_cap) really applies.
    SupportStore(settings.support_store).seed(
        demo=True, orders=[("ORD-9000", "C-9", "delivered", "1000000.00")]
    )
    server = await start_dev_server(home / "temporal.sqlite", ui=False)
    try:
        bare = await bare_latencies(server.env.client, runs)
        governed = await tiergate_latencies(
            server.env.client, settings, 2 * runs, signers(settings)
        )
    finally:
        await server.env.shutdown()
    base = statistics.median(bare)
    return {
        "benchmark": "approval_latency",
        "command": f"python bench/approval_latency.py --runs {runs}",
        "machine": machine(),
        "tiergate": stats_ms(governed["ed25519"]),
        "tiergate_passkey": stats_ms(governed["passkey"]),
        "baseline_bare_update": stats_ms(bare),
        "ratio_p50": round(statistics.median(governed["ed25519"]) / base, 2),
        "ratio_p50_passkey": round(statistics.median(governed["passkey"]) / base, 2),
        "target": "tiergate p50 <= 50 ms, either proof",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results/approval_latency.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs)), args.out)
