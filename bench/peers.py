"""tiergate against the frameworks that make agents durable on Temporal, side by side.

One dev server, one local OpenAI-compatible model server (bench/_model_server.py, in a
process of its own, answering at once and one tool call per answer, so every kind takes the
same steps), the same two read tools over the demo store, the same system prompt and the
same worker settings (32 activity slots and threads, the workflow cache and task slots of
tiergate's settings). Kinds, each on its own worker and task queue in this process:

- **tiergate**: `AgentRunWorkflow`, the `openai` provider; every call gated by Cedar,
  budgeted, verified again by the tool runner, recorded; the transcript in the content store.
- **pydantic_ai**: Pydantic AI's `Agent` with its `TemporalDurability` capability (model
  requests and tool calls as activities), its own plugins on its client and worker.
- **openai_agents**: the OpenAI Agents SDK's `Agent` and `Runner` under Temporal's
  `OpenAIAgentsPlugin`, tools by `activity_as_tool`, chat completions.
- **bare**: `BarePeersWorkflow`, a plain Temporal loop posting its conversation with httpx.

For each task length (``--steps``: 5 and 40 — that many model calls, one fewer reads), each
round starts ``--runs`` runs of each kind at once (kinds in rotated order) and waits for
all. Reported per kind and length: runs/s (median of rounds) and CPU ms per run (worker
process and server, from /proc), and from one run measured alone: its history's bytes and
events, the bytes of its last model call's activity input, and its mean model request bytes
(as the model server received them).

    python bench/peers.py [--runs 10] [--rounds 4] [--steps 5 40]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from _common import machine, save
from _model_server import serve_process
from _proc import children, cpu_seconds

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # nothing leaves the machine

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from tiergate.cluster import start_dev_server
from tiergate.core import WORKFLOW_NAME, Prompt, RunInput
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.worker import build_worker
from tiergate.workflows import workflow_runner

KINDS = ["tiergate", "pydantic_ai", "openai_agents", "bare"]
MODEL = "bench-model"
#: The activity whose input is a model call's, per kind (its type name holds this).
MODEL_ACTIVITY = {
    "tiergate": "model__propose",
    "pydantic_ai": "model_request",
    "openai_agents": "invoke_model",
    "bare": "bare__chat",
}
PLAIN_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "crm__read_ticket",
            "description": "Read a support ticket by its id.",
            "parameters": {
                "type": "object",
                "properties": {"ticket_id": {"type": "string"}},
                "required": ["ticket_id"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "orders__get_status",
            "description": "Get an order's shipping and payment status by its id.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    },
]


def tiergate_agent(base_url: str) -> dict[str, Any]:
    return {
        "agent": {
            "name": "peers",
            "version": "bench-1",
            "model_tier": {"executor": "frontier"},
            "models": {"frontier": {"provider": "openai", "model": MODEL, "base_url": base_url}},
            "pricing": {MODEL: {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            "tools": {"allowlist": ["crm.read_ticket", "orders.get_status"]},
            "policy": {"files": ["support.cedar"]},
            # Long enough for the 40-step task: 39 reads of 14 distinct records.
            "budgets": {
                "max_total_tokens": 50_000_000,
                "max_model_calls": 200,
                "max_tool_calls": 200,
                "max_identical_tool_calls": 20,
                "max_cost_usd": 1000.0,
                "max_wall_time_seconds": 3600.0,
            },
        }
    }


def task(steps: int) -> str:
    return f"read {steps - 1} records, then answer"


class Peers:
    """The four kinds' clients and starters (see the module docstring)."""

    def __init__(self, clients: dict[str, Client], queues: dict[str, str], url: str) -> None:
        self.clients, self.queues, self.url = clients, queues, url

    async def start(self, kind: str, steps: int) -> Any:
        """The started run's handle."""
        client, queue = self.clients[kind], self.queues[kind]
        run_id = f"{kind}-{uuid.uuid4().hex[:10]}"
        if kind == "tiergate":
            handle = await client.start_workflow(
                WORKFLOW_NAME,
                RunInput(agent="peers", input={"task": task(steps)}).model_dump(),
                id=run_id,
                task_queue=queue,
            )
        elif kind == "bare":
            handle = await client.start_workflow(
                "BarePeersWorkflow",
                args=[
                    task(steps),
                    os.environ["TIERGATE_PEERS_PROMPT"],
                    self.url,
                    MODEL,
                    PLAIN_TOOLS,
                ],
                id=run_id,
                task_queue=queue,
            )
        else:
            name = "PeersPydanticAI" if kind == "pydantic_ai" else "PeersOpenAIAgents"
            handle = await client.start_workflow(name, task(steps), id=run_id, task_queue=queue)
        return handle

    async def runs(self, kind: str, steps: int, count: int) -> float:
        began = time.perf_counter()
        handles = [await self.start(kind, steps) for _ in range(count)]
        for handle in handles:
            await handle.result()
        return count / (time.perf_counter() - began)


def history_figures(history: WorkflowHistory, model_activity: str) -> dict[str, int]:
    inputs = [
        e.activity_task_scheduled_event_attributes.input.ByteSize()
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and model_activity in e.activity_task_scheduled_event_attributes.activity_type.name
    ]
    return {
        "history_bytes": sum(e.ByteSize() for e in history.events),
        "history_events": len(history.events),
        "model_calls": len(inputs),
        "last_model_input_bytes": inputs[-1] if inputs else 0,
    }


async def main(runs: int, rounds: int, lengths: list[int]) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-peers-"))
    (home / "agents").mkdir()
    settings = Settings(home=home, agents_dir=home / "agents")
    SupportStore(settings.support_store).seed_demo()
    os.environ["TIERGATE_PEERS_STORE"] = str(settings.support_store)
    os.environ["TIERGATE_PEERS_PROMPT"] = Prompt().text
    out: dict[str, Any] = {}
    with serve_process(serial=True) as url:
        os.environ["TIERGATE_PEERS_MODEL_URL"] = url
        (home / "agents" / "peers.yaml").write_text(yaml.safe_dump(tiergate_agent(url)))
        server = await start_dev_server(None, ui=False)
        try:
            out = await _measure(server.env.client, settings, url, runs, rounds, lengths)
        finally:
            await server.env.shutdown()
    return {
        "benchmark": "peers",
        "command": f"python bench/peers.py --runs {runs} --rounds {rounds} --steps "
        + " ".join(map(str, lengths)),
        "machine": machine(),
        "workload": f"{runs} runs at once per kind per round; tasks of "
        + " and ".join(map(str, lengths))
        + " model calls (one read tool call per answer, then an answer), local model server",
        **out,
    }


async def _measure(
    tiergate_client: Client,
    settings: Settings,
    url: str,
    runs: int,
    rounds: int,
    lengths: list[int],
) -> dict[str, Any]:
    import _peer_openai
    import _peer_pydantic
    from _bare_agent import BarePeersWorkflow
    from _peer_tools import PLAIN_TOOLS as PLAIN_ACTIVITIES
    from agents.models.openai_provider import OpenAIProvider
    from pydantic_ai.durable_exec.temporal import AgentPlugin, PydanticAIPlugin
    from temporalio.openai_agents import ModelActivityParameters, OpenAIAgentsPlugin

    target = tiergate_client.service_client.config.target_host
    queue = f"peers-{uuid.uuid4().hex[:6]}"
    queues = {kind: f"{queue}-{kind}" for kind in KINDS}
    slots: dict[str, Any] = {
        "max_concurrent_activities": 32,
        "max_cached_workflows": settings.max_cached_workflows,
        "max_concurrent_workflow_tasks": settings.max_concurrent_workflow_tasks,
    }
    pydantic_client = await Client.connect(target, plugins=[PydanticAIPlugin()])
    openai_plugin = OpenAIAgentsPlugin(
        model_params=ModelActivityParameters(start_to_close_timeout=timedelta(seconds=30)),
        model_provider=OpenAIProvider(base_url=url, api_key="bench", use_responses=False),
    )
    openai_client = await Client.connect(target, plugins=[openai_plugin])
    chat = httpx.Client(transport=httpx.HTTPTransport(retries=0))
    sys.path.insert(0, str(Path(__file__).parent))
    from overhead import bare_chat

    workers = [
        build_worker(tiergate_client, settings, SUPPORT_TOOLKIT, task_queue=queues["tiergate"]),
        Worker(
            pydantic_client,
            task_queue=queues["pydantic_ai"],
            workflows=[_peer_pydantic.PeersPydanticAI],
            plugins=[AgentPlugin(_peer_pydantic.agent)],
            activity_executor=ThreadPoolExecutor(32),
            **slots,
        ),
        Worker(
            openai_client,
            task_queue=queues["openai_agents"],
            workflows=[_peer_openai.PeersOpenAIAgents],
            activities=[_peer_openai.crm__read_ticket, _peer_openai.orders__get_status],
            activity_executor=ThreadPoolExecutor(32),
            **slots,
        ),
        Worker(
            tiergate_client,
            task_queue=queues["bare"],
            workflows=[BarePeersWorkflow],
            workflow_runner=workflow_runner(),
            activities=[*PLAIN_ACTIVITIES, bare_chat()],
            activity_executor=ThreadPoolExecutor(32),
            **slots,
        ),
    ]
    clients = {
        "tiergate": tiergate_client,
        "pydantic_ai": pydantic_client,
        "openai_agents": openai_client,
        "bare": tiergate_client,
    }
    peers = Peers(clients, queues, url)
    server_pid = _temporal_pid()
    results: dict[str, Any] = {}
    async with workers[0], workers[1], workers[2], workers[3]:
        for steps in lengths:
            for kind in KINDS:  # warm-up
                await peers.runs(kind, steps, 2)
            rounds_out: list[dict[str, dict[str, float]]] = []
            for number in range(rounds):
                order = KINDS[number % len(KINDS) :] + KINDS[: number % len(KINDS)]
                measured: dict[str, dict[str, float]] = {}
                for kind in order:
                    worker_cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
                    rate = await peers.runs(kind, steps, runs)
                    measured[kind] = {
                        "runs_per_second": round(rate, 2),
                        "cpu_ms_per_run": round(
                            (
                                time.process_time()
                                - worker_cpu
                                + cpu_seconds(server_pid)
                                - server_cpu
                            )
                            / runs
                            * 1000,
                            1,
                        ),
                    }
                rounds_out.append(measured)
            per_kind: dict[str, Any] = {}
            for kind in KINDS:
                await asyncio.to_thread(chat.get, f"{url.removesuffix('/v1')}/stats?reset=1")
                handle = await peers.start(kind, steps)
                await handle.result()
                stats = (
                    await asyncio.to_thread(chat.get, f"{url.removesuffix('/v1')}/stats")
                ).json()
                history = await handle.fetch_history()
                per_kind[kind] = {
                    "runs_per_second": round(
                        statistics.median(r[kind]["runs_per_second"] for r in rounds_out), 2
                    ),
                    "cpu_ms_per_run": round(
                        statistics.median(r[kind]["cpu_ms_per_run"] for r in rounds_out), 1
                    ),
                    **history_figures(history, MODEL_ACTIVITY[kind]),
                    "model_requests": stats["requests"],
                    "mean_request_bytes": round(stats["request_bytes"] / max(stats["requests"], 1)),
                }
            results[f"steps_{steps}"] = {"rounds": rounds_out, "kinds": per_kind}
    return results


def _temporal_pid() -> int:
    """The embedded dev server: this process's child running `temporal`."""
    for pid in children(os.getpid()):
        try:
            if b"temporal" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    raise RuntimeError("no Temporal dev server process found")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 40])
    parser.add_argument("--out", type=Path, default=Path("bench/results/peers.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.rounds, args.steps)), args.out)
