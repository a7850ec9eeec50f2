"""Overhead against bare Temporal: governed runs per second vs the same activities ungoverned.

One dev server, one worker process configuration, interleaved rounds. Each round starts N
runs at once and waits for all of them: governed runs of a 5-step agent (scripted model
answering instantly, read-only tools: 4 tool calls and a final answer) on `AgentRunWorkflow`,
and the same activities driven by `BareAgentWorkflow` (bench/_bare_agent.py) with no gate,
budget, records or telemetry. Telemetry is not installed in either (its cost is measured by
bench/telemetry_overhead.py).

    python bench/overhead.py [--runs 50] [--rounds 3]

Both loops run in Temporal's sandbox with their bytecode cached, as workers run
tiergate's (tiergate.workflows._sandbox).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import py_compile
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import _bare_agent
import yaml
from _bare_agent import BareAgentWorkflow
from _common import machine, save
from _proc import children, cpu_seconds
from temporalio import activity
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from tiergate.activities import ToolCallVerifier, ToolRunner, content_store
from tiergate.cluster import start_dev_server
from tiergate.config import load_agent
from tiergate.core import (
    WORKFLOW_NAME,
    AgentBundle,
    RegistrySnapshot,
    RunInput,
    ToolCallInput,
    ToolResult,
    VerifiedCall,
    tool_activity_name,
)
from tiergate.demo import SUPPORT_TOOLKIT, SUPPORT_TOOLS, SupportStore
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.tools import Tool
from tiergate.worker import build_activities, build_worker
from tiergate.workflows import AGENT_ATTRIBUTE, workflow_runner

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
        "policy": {"files": ["support.cedar"]},
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
            # As tiergate.rollout.start_run starts runs: the agent attribute set at start.
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(AGENT_ATTRIBUTE, "bench5")]
            ),
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


def bare_activities(client: Client, settings: Settings, queue: str) -> list[Any]:
    """tiergate's activities, but its tools act without the runner's verification: the
    baseline is bare Temporal, which trusts whoever schedules an activity."""
    every = build_activities(client, settings, SUPPORT_TOOLKIT, queue)
    tools = {tool_activity_name(t.name) for t in SUPPORT_TOOLS}
    runner = ToolRunner(
        SUPPORT_TOOLS,
        SUPPORT_TOOLKIT.backend(settings),
        content_store(settings),
        ToolCallVerifier(client, queue, lambda *_: None, lambda _: None, RegistrySnapshot),
    )
    bundle = load_agent("bench5", settings.agents_dir, SUPPORT_TOOLS.specs)
    return [a for a in every if _name(a) not in tools] + [
        _unverified(runner, tool, bundle) for tool in SUPPORT_TOOLS
    ]


def _name(activity_fn: Any) -> str:
    return str(getattr(activity_fn, "__temporal_activity_definition").name)


def _unverified(runner: ToolRunner, tool: Tool, bundle: AgentBundle) -> Any:
    @activity.defn(name=tool_activity_name(tool.name))
    def run_tool(call: ToolCallInput) -> ToolResult:
        trusting = VerifiedCall(
            tool=tool.name,
            agent=bundle.config.name,
            run_id=call.run_id,
            step=call.step,
            tier=call.tier,
            arguments=tool.spec.canonical_arguments(call.arguments),
            bundle=bundle,
            spec=tool.spec,
            checks=(),
        )
        return runner.act(tool, trusting, call)

    return run_tool


@asynccontextmanager
async def workloads() -> AsyncIterator[dict[str, Callable[[int], Awaitable[float]]]]:
    """A dev server and both workers, warmed up; yields "tiergate" and "bare" workloads
    (each takes a number of runs and returns runs per second). Also used by _profile.py."""
    configure_logging(Redactor(), log_format="json", level="warning")
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-overhead-"))
    (home / "agents").mkdir()
    (home / "agents" / "bench5.yaml").write_text(yaml.safe_dump(AGENT))
    settings = Settings(offline_model_overrides=True, home=home, agents_dir=home / "agents")
    SupportStore(settings.support_store).seed_demo()
    server = await start_dev_server(None, ui=False)
    client = server.env.client
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    worker = build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=queue)
    # The baseline runs under the same sandbox as tiergate's run loop, bytecode cached.
    py_compile.compile(
        _bare_agent.__file__, cfile=importlib.util.cache_from_source(_bare_agent.__file__)
    )
    bare_runner = workflow_runner()
    bare_worker = Worker(
        client,
        task_queue=f"{queue}-bare",
        workflows=[BareAgentWorkflow],
        workflow_runner=bare_runner,
        activities=bare_activities(client, settings, f"{queue}-bare"),
        activity_executor=worker.config()["activity_executor"],
        max_concurrent_activities=32,
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
    )
    try:
        async with worker, bare_worker:
            await governed(client, queue, 5)
            await bare(client, f"{queue}-bare", 5)
            yield {
                "tiergate": lambda runs: governed(client, queue, runs),
                "bare": lambda runs: bare(client, f"{queue}-bare", runs),
            }
    finally:
        await server.env.shutdown()


async def main(runs: int, rounds: int) -> dict[str, Any]:
    rounds_out: list[dict[str, dict[str, float]]] = []
    async with workloads() as kinds:
        (server_pid,) = children(os.getpid())
        for number in range(rounds):
            # Alternate which goes first, so neither always meets a warmer server.
            order = ["bare", "tiergate"] if number % 2 == 0 else ["tiergate", "bare"]
            measured: dict[str, dict[str, float]] = {}
            for kind in order:
                worker_cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
                rate = await kinds[kind](runs)
                measured[kind] = {
                    "runs_per_second": round(rate, 2),
                    "worker_cpu_ms_per_run": round(
                        (time.process_time() - worker_cpu) / runs * 1000, 1
                    ),
                    "server_cpu_ms_per_run": round(
                        (cpu_seconds(server_pid) - server_cpu) / runs * 1000, 1
                    ),
                }
            rounds_out.append(measured)

    def median(kind: str, key: str) -> float:
        return round(statistics.median(r[kind][key] for r in rounds_out), 2)

    def cpu(kind: str) -> float:
        return median(kind, "worker_cpu_ms_per_run") + median(kind, "server_cpu_ms_per_run")

    t, b = median("tiergate", "runs_per_second"), median("bare", "runs_per_second")
    paired = [r["tiergate"]["runs_per_second"] / r["bare"]["runs_per_second"] for r in rounds_out]
    return {
        "benchmark": "overhead",
        "command": f"python bench/overhead.py --runs {runs} --rounds {rounds}",
        "machine": machine(),
        "workload": f"{runs} runs per round of a 5-step agent (4 read tool calls + final answer, scripted model)",
        "rounds": rounds_out,
        "tiergate_runs_per_second": t,
        "bare_runs_per_second": b,
        "ratio_tiergate_over_bare": round(t / b, 3),
        "median_paired_ratio": round(statistics.median(paired), 3),
        "cpu_ms_per_run": {
            "tiergate": {
                "worker": median("tiergate", "worker_cpu_ms_per_run"),
                "server": median("tiergate", "server_cpu_ms_per_run"),
            },
            "bare": {
                "worker": median("bare", "worker_cpu_ms_per_run"),
                "server": median("bare", "server_cpu_ms_per_run"),
            },
        },
        "cpu_ratio_bare_over_tiergate": round(cpu("bare") / cpu("tiergate"), 3),
        "target": "tiergate >= 0.9 of bare throughput",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/overhead.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.rounds)), args.out)
