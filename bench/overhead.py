"""Overhead against bare Temporal: governed runs per second vs the same activities ungoverned.

One dev server, one worker process configuration, interleaved rounds. Each round starts N
runs at once and waits for all of them: governed runs of a 5-step agent (scripted model
answering instantly, read-only tools: 4 tool calls and a final answer) on `AgentRunWorkflow`,
and the same activities driven by `BareAgentWorkflow` (bench/_bare_agent.py) with no gate,
budget, records or telemetry. Telemetry is not installed in either (its cost is measured by
bench/telemetry_overhead.py).

    python bench/overhead.py [--runs 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from _bare_agent import BareAgentWorkflow
from temporalio.client import Client

from tiergate.activities import SupportStore
from tiergate.devserver import start_dev_server
from tiergate.redaction import Redactor
from tiergate.settings import Settings
from tiergate.shared import WORKFLOW_NAME, RunInput
from tiergate.telemetry import configure_logging
from tiergate.worker import build_activities, build_worker

READS = [
    {
        "kind": "tool_call",
        "tool": "crm.read_ticket",
        "arguments": {"ticket_id": "T-1001"},
        "reason": "r",
    },
    {
        "kind": "tool_call",
        "tool": "orders.get_status",
        "arguments": {"order_id": "ORD-5001"},
        "reason": "r",
    },
    {
        "kind": "tool_call",
        "tool": "crm.read_ticket",
        "arguments": {"ticket_id": "T-1002"},
        "reason": "r",
    },
    {
        "kind": "tool_call",
        "tool": "orders.get_status",
        "arguments": {"order_id": "ORD-5002"},
        "reason": "r",
    },
    {"kind": "final_answer", "answer": "done", "reason": "r"},
]
MODEL = {"provider": "scripted", "model": "demo-frontier", "script": READS}
AGENT = {
    "agent": {
        "name": "bench5",
        "version": "bench-1",
        "model_tier": {"executor": "frontier"},
        "tools": {"allowlist": ["crm.read_ticket", "orders.get_status"]},
    }
}


async def governed(client: Client, queue: str, runs: int) -> float:
    began = time.perf_counter()
    handles = [
        await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(agent="bench5", model_overrides={"frontier": MODEL}).model_dump(),
            id=f"gov-{uuid.uuid4().hex[:10]}",
            task_queue=queue,
        )
        for _ in range(runs)
    ]
    for handle in handles:
        result = await handle.result()
        assert result["outcome"] == "completed", result
    return runs / (time.perf_counter() - began)


async def bare(client: Client, queue: str, runs: int) -> float:
    began = time.perf_counter()
    handles = [
        await client.start_workflow(
            BareAgentWorkflow.run,
            args=["bench5", MODEL],
            id=f"bare-{uuid.uuid4().hex[:10]}",
            task_queue=queue,
        )
        for _ in range(runs)
    ]
    for handle in handles:
        assert await handle.result() == 5
    return runs / (time.perf_counter() - began)


async def main(runs: int, rounds: int) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-overhead-"))
    (home / "agents").mkdir()
    (home / "agents" / "bench5.yaml").write_text(yaml.safe_dump(AGENT))
    settings = Settings(home=home, agents_dir=home / "agents")
    SupportStore(settings.support_store).seed_demo()
    server = await start_dev_server(None, ui=False)
    client = server.env.client
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    worker = build_worker(client, settings, task_queue=queue)
    from temporalio.worker import Worker

    from tiergate.workflows import workflow_runner

    bare_worker = Worker(
        client,
        task_queue=f"{queue}-bare",
        workflows=[BareAgentWorkflow],
        workflow_runner=workflow_runner(),
        activities=build_activities(settings),
        activity_executor=worker.config()["activity_executor"],
        max_concurrent_activities=32,
    )
    rates: dict[str, list[float]] = {"tiergate": [], "bare": []}
    try:
        async with worker, bare_worker:
            await governed(client, queue, 5)
            await bare(client, f"{queue}-bare", 5)
            for _ in range(rounds):
                rates["bare"].append(round(await bare(client, f"{queue}-bare", runs), 2))
                rates["tiergate"].append(round(await governed(client, queue, runs), 2))
    finally:
        await server.env.shutdown()
    t, b = statistics.median(rates["tiergate"]), statistics.median(rates["bare"])
    return {
        "benchmark": "overhead",
        "command": f"python bench/overhead.py --runs {runs} --rounds {rounds}",
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "workload": f"{runs} runs per round of a 5-step agent (4 read tool calls + final answer, scripted model)",
        "runs_per_second": rates,
        "tiergate_median": t,
        "bare_median": b,
        "ratio_tiergate_over_bare": round(t / b, 3),
        "target": "tiergate >= 0.9 of bare throughput",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/overhead.json"))
    args = parser.parse_args()
    measured = json.dumps(asyncio.run(main(args.runs, args.rounds)), indent=2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(measured + "\n")
    print(measured)
