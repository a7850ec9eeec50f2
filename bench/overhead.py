"""Overhead against bare Temporal: governed runs per second vs the same work ungoverned.

One dev server, one worker process configuration, interleaved rounds. Each round starts N
runs at once of each kind and waits for all of them. Two paths, each a 5-step task (4
read-only tool calls and a final answer):

- **provider** (the headline): the model is a local OpenAI-compatible server in a process
  of its own (bench/_model_server.py, answering at once, one call per answer as the
  requests ask). Governed: `AgentRunWorkflow` with the `openai` provider. Bare:
  `BareProviderWorkflow`, a plain Temporal loop keeping the conversation in the workflow and
  posting it whole with httpx each call, running the same tool activities.
- **scripted**: the model is tiergate's scripted provider, answering in-process. Bare:
  `BareAgentWorkflow`, the same activities with no gate, budget, records or telemetry.

Telemetry is not installed in either (its cost is measured by bench/telemetry_overhead.py).

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
import httpx
import yaml
from _bare_agent import BareAgentWorkflow, BareProviderWorkflow
from _common import machine, save
from _model_server import serve_process
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

READS: list[dict[str, Any]] = [
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
PROVIDER_MODEL = "bench-model"
#: The model server's task: the same four reads, in the same order.
SERVER_READS = [
    (str(r["tool"]).replace(".", "__"), dict(r["arguments"]))
    for r in READS
    if r["kind"] == "tool_call"
]


def agent(name: str, base_url: str | None = None) -> dict[str, Any]:
    """The 5-step agent; with ``base_url``, calling the local model server (one tool call
    per answer, so both paths take the same five steps as their baselines)."""
    config: dict[str, Any] = {
        "name": name,
        "version": "bench-1",
        "model_tier": {"executor": "frontier"},
        "tools": {"allowlist": ["crm.read_ticket", "orders.get_status"]},
        "policy": {"files": ["support.cedar"]},
    }
    if base_url is not None:
        config["models"] = {
            "frontier": {"provider": "openai", "model": PROVIDER_MODEL, "base_url": base_url}
        }
        config["pricing"] = {PROVIDER_MODEL: {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
        config["tools"]["max_parallel_calls"] = 1
    return {"agent": config}


async def governed(
    client: Client, queue: str, runs: int, name: str = "bench5", scripted: bool = True
) -> float:
    overrides = {"frontier": MODEL} if scripted else {}
    began = time.perf_counter()
    handles = [
        await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(agent=name, model_overrides=overrides).model_dump(),
            id=f"gov-{uuid.uuid4().hex[:10]}",
            task_queue=queue,
            # As tiergate.rollout.start_run starts runs: the agent attribute set at start.
            search_attributes=TypedSearchAttributes([SearchAttributePair(AGENT_ATTRIBUTE, name)]),
        )
        for _ in range(runs)
    ]
    for handle in handles:
        result = await handle.result()
        assert result["outcome"] == "completed", result
        assert result["usage"]["tool_calls"] == 4, result["usage"]
    return runs / (time.perf_counter() - began)


async def bare(client: Client, queue: str, runs: int, base_url: str | None = None) -> float:
    began = time.perf_counter()
    handles = [
        await client.start_workflow(
            BareAgentWorkflow.run if base_url is None else BareProviderWorkflow.run,
            args=["bench5", MODEL] if base_url is None else ["bench5p", base_url, PROVIDER_MODEL],
            id=f"bare-{uuid.uuid4().hex[:10]}",
            task_queue=queue,
        )
        for _ in range(runs)
    ]
    for handle in handles:
        assert await handle.result() == 5
    return runs / (time.perf_counter() - began)


def bare_chat() -> Any:
    """The bare loop's model call: one POST of the whole conversation, as a plain Temporal
    agent makes it (one pooled httpx client, no retries of its own)."""
    http = httpx.Client(transport=httpx.HTTPTransport(retries=0))

    @activity.defn(name="bare__chat")
    def chat(
        base_url: str, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> dict[str, Any]:
        response = http.post(
            f"{base_url}/chat/completions",
            json={
                "model": model,
                "messages": messages,
                "tools": tools,
                "tool_choice": "auto",
                "parallel_tool_calls": False,
            },
            timeout=30,
        )
        response.raise_for_status()
        message: dict[str, Any] = response.json()["choices"][0]["message"]
        return message

    return chat


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


#: The kinds measured: (path, side).
KINDS = ["tiergate", "bare", "tiergate_scripted", "bare_scripted"]


@asynccontextmanager
async def workloads() -> AsyncIterator[dict[str, Callable[[int], Awaitable[float]]]]:
    """A dev server, the model server and both workers, warmed up; yields a workload per
    kind (each takes a number of runs and returns runs per second): "tiergate" and "bare"
    on the provider path, "tiergate_scripted" and "bare_scripted" with the scripted model.
    Also used by _profile.py."""
    configure_logging(Redactor(), log_format="json", level="warning")
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-overhead-"))
    (home / "agents").mkdir()
    with serve_process() as base_url:
        (home / "agents" / "bench5.yaml").write_text(yaml.safe_dump(agent("bench5")))
        (home / "agents" / "bench5p.yaml").write_text(yaml.safe_dump(agent("bench5p", base_url)))
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
        bare_queue = f"{queue}-bare"
        bare_worker = Worker(
            client,
            task_queue=bare_queue,
            workflows=[BareAgentWorkflow, BareProviderWorkflow],
            workflow_runner=bare_runner,
            activities=[*bare_activities(client, settings, bare_queue), bare_chat()],
            activity_executor=worker.config()["activity_executor"],
            max_concurrent_activities=32,
            max_cached_workflows=settings.max_cached_workflows,
            max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        )
        kinds: dict[str, Callable[[int], Awaitable[float]]] = {
            "tiergate": lambda runs: governed(client, queue, runs, "bench5p", False),
            "bare": lambda runs: bare(client, bare_queue, runs, base_url),
            "tiergate_scripted": lambda runs: governed(client, queue, runs, "bench5", True),
            "bare_scripted": lambda runs: bare(client, bare_queue, runs, None),
        }
        try:
            async with worker, bare_worker:
                for run in kinds.values():
                    await run(5)
                yield kinds
        finally:
            await server.env.shutdown()


async def main(runs: int, rounds: int) -> dict[str, Any]:
    rounds_out: list[dict[str, dict[str, float]]] = []
    async with workloads() as kinds:
        server_pid = next(pid for pid in children(os.getpid()) if _is_temporal(pid))
        for number in range(rounds):
            # Alternate which goes first, so neither always meets a warmer server.
            order = KINDS if number % 2 == 0 else list(reversed(KINDS))
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
    provider = _figures(rounds_out, "tiergate", "bare")
    scripted = _figures(rounds_out, "tiergate_scripted", "bare_scripted")
    return {
        "benchmark": "overhead",
        "command": f"python bench/overhead.py --runs {runs} --rounds {rounds}",
        "machine": machine(),
        "workload": f"{runs} runs per round of each kind: a 5-step agent (4 read tool calls + "
        "final answer); headline: the openai provider against a local model server, bare: a "
        "plain Temporal loop posting its conversation with httpx; `scripted`: the scripted "
        "model in-process against the same activities ungoverned",
        "rounds": rounds_out,
        **provider,
        "scripted": scripted,
        "target": "provider path >= 0.8 of bare; scripted path >= 0.95 of bare",
    }


def _is_temporal(pid: int) -> bool:
    try:
        return "temporal" in Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return False


def _figures(rounds: list[dict[str, dict[str, float]]], governed: str, bare: str) -> dict[str, Any]:
    def median(kind: str, key: str) -> float:
        return round(statistics.median(r[kind][key] for r in rounds), 2)

    def cpu(kind: str) -> float:
        return median(kind, "worker_cpu_ms_per_run") + median(kind, "server_cpu_ms_per_run")

    t, b = median(governed, "runs_per_second"), median(bare, "runs_per_second")
    paired = [r[governed]["runs_per_second"] / r[bare]["runs_per_second"] for r in rounds]
    return {
        "tiergate_runs_per_second": t,
        "bare_runs_per_second": b,
        "ratio_tiergate_over_bare": round(t / b, 3),
        "median_paired_ratio": round(statistics.median(paired), 3),
        "cpu_ms_per_run": {
            "tiergate": {
                "worker": median(governed, "worker_cpu_ms_per_run"),
                "server": median(governed, "server_cpu_ms_per_run"),
            },
            "bare": {
                "worker": median(bare, "worker_cpu_ms_per_run"),
                "server": median(bare, "server_cpu_ms_per_run"),
            },
        },
        "cpu_ratio_bare_over_tiergate": round(cpu(bare) / cpu(governed), 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/overhead.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.rounds)), args.out)
