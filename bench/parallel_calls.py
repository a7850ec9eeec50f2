"""Parallel tool calls: model calls and wall time of a 4-read task, serial against parallel.

One dev server, one worker, one local OpenAI-compatible model server (bench/_model_server.py)
that answers each request after ``--model-latency`` seconds, as a model would. The task is
the same for both agents — read four things, then answer — and the model plays it as
OpenAI's do: all four reads in one answer when the request allows parallel tool calls, one
per answer when it sends ``parallel_tool_calls: false``. The serial agent takes one call per
answer (``tools.max_parallel_calls: 1``, so its requests say so); the parallel agent takes
the default. Both are governed alike: every read is its own gated, recorded step.

Rounds alternate which agent goes first; each round starts ``--runs`` tasks of one agent at
once and waits for all. Reported: model calls per task, and the median wall time of a task
(start to result, from the client), each agent's and their ratio within the run.

    python bench/parallel_calls.py [--runs 10] [--rounds 4] [--model-latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from _common import machine, save
from _model_server import serve

from tiergate.cluster import start_dev_server
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.worker import build_worker

AGENTS = {"serial": 1, "parallel": 8}  # tools.max_parallel_calls


def agent(name: str, max_parallel_calls: int, base_url: str) -> dict[str, Any]:
    return {
        "agent": {
            "name": name,
            "version": "bench-1",
            "model_tier": {"executor": "frontier"},
            "models": {
                "frontier": {"provider": "openai", "model": "bench-model", "base_url": base_url}
            },
            "pricing": {"bench-model": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            "tools": {
                "allowlist": ["crm.read_ticket", "orders.get_status"],
                "max_parallel_calls": max_parallel_calls,
            },
            "policy": {"files": ["support.cedar"]},
        }
    }


async def one_task(client: Any, queue: str, name: str) -> tuple[float, int]:
    began = time.perf_counter()
    summary: RunSummary = await client.execute_workflow(
        WORKFLOW_NAME,
        RunInput(agent=name, input={"task": "read the four records"}).model_dump(),
        id=f"{name}-{uuid.uuid4().hex[:10]}",
        task_queue=queue,
        result_type=RunSummary,
    )
    assert summary.outcome == "completed", summary.reason
    assert summary.usage.tool_calls == 4, summary.usage
    return time.perf_counter() - began, summary.usage.model_calls


async def main(runs: int, rounds: int, latency: float) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-parallel-"))
    (home / "agents").mkdir()
    settings = Settings(home=home, agents_dir=home / "agents")
    SupportStore(settings.support_store).seed_demo()
    server = await start_dev_server(None, ui=False)
    client = server.env.client
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    measured: dict[str, list[dict[str, float]]] = {name: [] for name in AGENTS}
    try:
        with serve(latency=latency) as model:
            for name, most in AGENTS.items():
                config = agent(f"reads4_{name}", most, model.base_url)
                (home / "agents" / f"reads4_{name}.yaml").write_text(yaml.safe_dump(config))
            async with build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=queue):
                for name in AGENTS:  # warm-up
                    await one_task(client, queue, f"reads4_{name}")
                for number in range(rounds):
                    order = list(AGENTS) if number % 2 == 0 else list(reversed(AGENTS))
                    for name in order:
                        tasks = await asyncio.gather(
                            *(one_task(client, queue, f"reads4_{name}") for _ in range(runs))
                        )
                        measured[name].append(
                            {
                                "median_task_seconds": round(
                                    statistics.median(t for t, _ in tasks), 3
                                ),
                                "model_calls_per_task": statistics.mean(c for _, c in tasks),
                            }
                        )
    finally:
        await server.env.shutdown()

    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in measured[name]), 3)

    serial, parallel = (median(n, "median_task_seconds") for n in ("serial", "parallel"))
    return {
        "benchmark": "parallel_calls",
        "command": f"python bench/parallel_calls.py --runs {runs} --rounds {rounds} "
        f"--model-latency {latency}",
        "machine": machine(),
        "workload": f"{runs} tasks at once per round: read 4 records, then answer; local "
        f"OpenAI-compatible model answering after {latency} s",
        "rounds": measured,
        "model_calls_per_task": {n: median(n, "model_calls_per_task") for n in AGENTS},
        "task_seconds": {"serial": serial, "parallel": parallel},
        "ratio_serial_over_parallel": round(serial / parallel, 3),
        "target": "2 model calls per task with parallel calls (5 serial)",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--model-latency", type=float, default=0.2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/parallel_calls.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.rounds, args.model_latency)), args.out)
