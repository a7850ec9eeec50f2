"""Waiting at scale: many runs parked on approval, the worker's memory, and the drain.

One dev server and one worker process (so its RSS is the worker's alone). N governed runs
each propose a $400 refund at once and wait for a support lead; the script measures the time
until all N wait, the worker's RSS while they wait (the workflow cache is bounded, so waiting
runs are evicted and cost server storage, not worker memory), then approves them all
through the signed update and measures the drain rate. The baseline, in the same run, is the
throughput of the same agent on a refund under the cap (no approval): drain / baseline.

    python bench/waiting_scale.py [--runs 10000] [--baseline-runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from _common import machine, save
from _proc import rss_mb
from _stall import stall_report

from tiergate.approvals import ApproverRegistry, sign, trusting_dev_admin
from tiergate.approvals.client import build_request, list_pending, submit
from tiergate.cluster import start_dev_server
from tiergate.core import WORKFLOW_NAME, ApprovalDecision, RunInput
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.settings import Settings

AGENT = {
    "agent": {
        "name": "bench_wait",
        "version": "bench-1",
        "model_tier": {"executor": "frontier"},
        "tools": {"allowlist": ["payments.issue_refund"]},
        "policy": {
            "files": ["support.cedar"],
            "rules": [
                {
                    "id": "refund_cap",
                    "tool": "payments.issue_refund",
                    "condition": "input.amount_usd <= 50",
                    "on_fail": "escalate_to_human",
                }
            ],
        },
        "approvals": {
            "policy_files": ["approvers.cedar"],
            "tier3": {"sla_seconds": 86400, "expiry_seconds": 172800},
        },
    }
}


BASE_ORDERS, WAIT_ORDERS = 8_000_000, 9_000_000  # first order id of each kind of run


def refund(amount: str, order: str) -> dict[str, Any]:
    return {
        "frontier": {
            "provider": "scripted",
            "model": "demo-frontier",
            "script": [
                {
                    "kind": "tool_call",
                    "tool": "payments.issue_refund",
                    "arguments": {
                        "order_id": order,
                        "amount_usd": amount,
                        "reason_code": "goodwill",
                    },
                    "reason": "bench",
                },
                {"kind": "final_answer", "answer": "done", "reason": "bench"},
            ],
        }
    }


def worker_main(address: str, queue: str, home: Path) -> None:
    from tiergate.cluster import connect
    from tiergate.observe import configure_logging
    from tiergate.sensitive import Redactor
    from tiergate.worker import build_worker

    configure_logging(Redactor(), log_format="json", level="warning")
    settings = trusting_dev_admin(
        Settings(
            offline_model_overrides=True,
            home=home,
            agents_dir=home / "agents",
            temporal_address=address,
        )
    )

    async def run() -> None:
        client = await connect(settings)
        print("ready", flush=True)
        await build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=queue).run()

    asyncio.run(run())


def order_of(first: int, index: int) -> str:
    """Each run refunds its own order, as real tickets do. With one shared order, every refund
    summed all the earlier ones (refunds may not exceed the order's total): O(n) per refund."""
    return f"ORD-{first + index}"


async def start_all(
    client: Any, queue: str, n: int, amount: str, prefix: str, first_order: int
) -> list[Any]:
    handles = []
    for start in range(0, n, 200):
        batch = [
            client.start_workflow(
                WORKFLOW_NAME,
                RunInput(
                    agent="bench_wait",
                    model_overrides=refund(amount, order_of(first_order, start + i)),
                    requester="bench",
                ).model_dump(),
                id=f"{prefix}-{start + i}-{uuid.uuid4().hex[:6]}",
                task_queue=queue,
            )
            for i in range(min(200, n - start))
        ]
        handles.extend(await asyncio.gather(*batch))
    return handles


async def main(runs: int, baseline_runs: int, drain_timeout: float) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-wait-"))
    (home / "agents").mkdir()
    (home / "agents" / "bench_wait.yaml").write_text(yaml.safe_dump(AGENT))
    settings = trusting_dev_admin(
        Settings(offline_model_overrides=True, home=home, agents_dir=home / "agents")
    )
    orders = [order_of(BASE_ORDERS, i) for i in range(baseline_runs)]
    orders += [order_of(WAIT_ORDERS, i) for i in range(runs)]
    SupportStore(settings.support_store).seed(
        demo=True, orders=[(o, "C-9", "delivered", "1000.00") for o in orders]
    )
    registry = ApproverRegistry.of(settings)
    registry.add("bench-lead", ["support_lead"], demo_key=True)
    key = registry.private_key("bench-lead")
    server = await start_dev_server(None, ui=False)
    client = server.env.client
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        server.address,
        queue,
        str(home),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        assert (await worker.stdout.readline()).strip() == b"ready"
        rss_idle = rss_mb(worker.pid)
        began = time.perf_counter()
        baseline = await start_all(client, queue, baseline_runs, "40", "base", BASE_ORDERS)
        await asyncio.gather(*(h.result() for h in baseline))
        baseline_rate = baseline_runs / (time.perf_counter() - began)

        began = time.perf_counter()
        handles = await start_all(client, queue, runs, "400", "wait", WAIT_ORDERS)
        waiting: list[Any] = []
        ids = {h.id for h in handles}
        while len(waiting) < runs:
            await asyncio.sleep(1)
            waiting = [p for p in await list_pending(client, limit=runs + 10) if p.run_id in ids]
        started_seconds = time.perf_counter() - began
        rss_waiting = rss_mb(worker.pid)
        print(
            f"all {runs} waiting after {started_seconds:.1f} s; worker RSS {rss_waiting:.1f} MB",
            flush=True,
        )

        began = time.perf_counter()
        gate = asyncio.Semaphore(32)

        async def approve(pending: Any) -> None:
            async with gate:
                request = sign(
                    build_request(pending, "bench-lead", ApprovalDecision.APPROVE, "bench"), key
                )
                await submit(client, request)

        answers = await asyncio.gather(*(approve(p) for p in waiting), return_exceptions=True)
        refused = Counter(type(a).__name__ for a in answers if isinstance(a, BaseException))
        # A stalled drain is a finding, not a hang: stop at the deadline or after a minute
        # without a completion, and report what the open runs look like. Completions are
        # counted by one visibility query: awaiting 10,000 results at once starved the
        # long-polls (25 results in a minute while every sampled run had completed).
        open_query = f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Running"'
        progress: list[tuple[float, int]] = []
        while True:
            open_runs = (await client.count_workflows(open_query)).count
            finished = runs - open_runs
            elapsed = time.perf_counter() - began
            progress.append((round(elapsed), finished))
            stalled = len(progress) > 12 and progress[-13][1] == finished
            if open_runs == 0 or elapsed > drain_timeout or stalled:
                break
            await asyncio.sleep(5)
        drain_rate = finished / elapsed
        open_ids = [wf.id async for wf in client.list_workflows(open_query, limit=20)]
        stall = await stall_report(client, queue, open_ids, worker.pid) if open_ids else None
        rss_after = rss_mb(worker.pid)
    finally:
        worker.terminate()
        await worker.wait()
        await server.env.shutdown()
    return {
        "benchmark": "waiting_scale",
        "command": f"python bench/waiting_scale.py --runs {runs} --baseline-runs {baseline_runs}",
        "machine": machine(),
        "runs_waiting": runs,
        "max_cached_workflows": settings.max_cached_workflows,
        "seconds_until_all_wait": round(started_seconds, 1),
        "worker_rss_mb": {
            "idle": round(rss_idle, 1),
            "while_waiting": round(rss_waiting, 1),
            "after_drain": round(rss_after, 1),
        },
        "drain_runs_per_second": round(drain_rate, 2),
        "runs_not_drained": runs - finished,
        "approvals_not_delivered": dict(refused),
        "drain_progress_seconds_completed": progress[::6],
        "stall": stall,
        "baseline_runs_per_second": round(baseline_rate, 2),
        "ratio_drain_over_baseline": round(drain_rate / baseline_rate, 3),
        "targets": "worker RSS <= 300 MB while waiting; drain >= 0.8x baseline throughput",
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], Path(sys.argv[4]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--baseline-runs", type=int, default=200)
    parser.add_argument("--drain-timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=Path("bench/results/waiting_scale.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.baseline_runs, args.drain_timeout)), args.out)
