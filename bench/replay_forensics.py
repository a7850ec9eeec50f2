"""Replay throughput and timeline rendering, against baselines measured in the same run.

1. Replay: histories of 10-step governed runs (9 tool calls + a final answer, scripted model)
   replayed per second with `tiergate.forensics.replay_all` (the `tiergate replay` path:
   one Replayer, the production sandbox). Baseline: histories of a bare sandboxed workflow
   that runs 10 activities in a row, replayed the same way, so the ratio is what the
   governed loop (gate, records, telemetry) costs on replay.
2. Timeline: building and rendering (Rich, to a string) the timeline of a 100-step run,
   from its exported JSON. Baseline: only parsing that JSON into a `WorkflowHistory`.

    python bench/replay_forensics.py [--runs 20] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from _bare_workflow import BareTenSteps, bare_step
from _common import machine, read_script, save
from rich.console import Console
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from tiergate.cli._timeline import show_timeline
from tiergate.cluster import start_dev_server
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.forensics import build_timeline, replay_all
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.worker import build_worker


def agent(name: str, steps: int) -> dict[str, Any]:
    return {
        "agent": {
            "name": name,
            "model_tier": {"executor": "frontier"},
            "tools": {"allowlist": ["crm.read_ticket", "orders.get_status"]},
            "policy": {"files": ["support.cedar"]},
            "budgets": {
                "max_total_tokens": 10_000_000,
                "max_model_calls": steps + 5,
                "max_tool_calls": steps,
                "max_identical_tool_calls": steps,
                "max_wall_time_seconds": 600,
                "max_cost_usd": 1000,
            },
        }
    }


async def governed(
    client: Client, settings: Settings, name: str, steps: int, runs: int
) -> list[WorkflowHistory]:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    overrides = {
        "frontier": {"provider": "scripted", "model": "demo-frontier", "script": read_script(steps)}
    }
    async with build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=queue):
        handles = [
            await client.start_workflow(
                WORKFLOW_NAME,
                RunInput(agent=name, model_overrides=overrides).model_dump(),
                id=f"bench-{steps}-{uuid.uuid4().hex[:8]}",
                task_queue=queue,
                result_type=RunSummary,
            )
            for _ in range(runs)
        ]
        for handle in handles:
            summary = await handle.result()
            assert len(summary.steps) == steps, (summary.outcome, summary.reason)
    return [await client.get_workflow_handle(h.id).fetch_history() for h in handles]


async def bare(client: Client, runs: int) -> list[WorkflowHistory]:
    queue = f"bench-bare-{uuid.uuid4().hex[:6]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[BareTenSteps],
        activities=[bare_step],
        activity_executor=ThreadPoolExecutor(4),
    ):
        ids = []
        for _ in range(runs):
            handle = await client.start_workflow(
                BareTenSteps.run, id=f"bare-{uuid.uuid4().hex[:8]}", task_queue=queue
            )
            await handle.result()
            ids.append(handle.id)
    return [await client.get_workflow_handle(i).fetch_history() for i in ids]


async def replay_rate(histories: list[WorkflowHistory], workflows: list[type] | None) -> float:
    began = time.perf_counter()
    outcomes = await replay_all(histories, workflows)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes if not o.ok]
    return len(histories) / (time.perf_counter() - began)


def timeline_ms(text: str, workflow_id: str, steps: int) -> tuple[float, float]:
    """(parse only, parse + build + render) in milliseconds for one exported history."""
    began = time.perf_counter()
    history = WorkflowHistory.from_json(workflow_id, text)
    parsed = time.perf_counter()
    timeline = build_timeline(history)
    show_timeline(timeline, Console(file=io.StringIO(), width=170))
    done = time.perf_counter()
    assert len(timeline.steps) == steps
    return (parsed - began) * 1000, (done - began) * 1000


async def main(runs: int, repeat: int, timeline_steps: int = 100) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")  # step events off
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-replay-"))
    (home / "agents").mkdir()
    for name, steps in (("bench10", 10), ("bench100", timeline_steps)):
        (home / "agents" / f"{name}.yaml").write_text(yaml.safe_dump(agent(name, steps)))
    settings = Settings(offline_model_overrides=True, home=home, agents_dir=home / "agents")
    SupportStore(settings.support_store).seed_demo()
    server = await start_dev_server(home / "temporal.sqlite", ui=False)
    try:
        client = server.env.client
        ten = await governed(client, settings, "bench10", 10, runs)
        baseline = await bare(client, runs)
        (hundred,) = await governed(client, settings, "bench100", timeline_steps, 1)
    finally:
        await server.env.shutdown()
    governed_rates, bare_rates, parse, render = [], [], [], []
    text = hundred.to_json()
    for _ in range(repeat):
        bare_rates.append(await replay_rate(baseline, [BareTenSteps]))
        governed_rates.append(await replay_rate(ten, None))
        p, r = timeline_ms(text, hundred.workflow_id, timeline_steps)
        parse.append(p)
        render.append(r)
    g, b = statistics.median(governed_rates), statistics.median(bare_rates)
    p, r = statistics.median(parse), statistics.median(render)
    return {
        "benchmark": "replay_forensics",
        "command": f"python bench/replay_forensics.py --runs {runs} --repeat {repeat} "
        f"--timeline-steps {timeline_steps}",
        "machine": machine(),
        "replay": {
            "histories": runs,
            "events_per_history": {
                "tiergate": statistics.median(len(h.events) for h in ten),
                "bare": statistics.median(len(h.events) for h in baseline),
            },
            "tiergate_10_step_per_second": round(g, 1),
            "bare_10_activity_per_second": round(b, 1),
            "ratio_tiergate_over_bare": round(g / b, 3),
            "rounds": {
                "tiergate": [round(x, 1) for x in governed_rates],
                "bare": [round(x, 1) for x in bare_rates],
            },
        },
        "timeline_100_steps": {
            "events": len(hundred.events),
            "history_json_bytes": len(text),
            "parse_ms": round(p, 1),
            "parse_build_render_ms": round(r, 1),
            "ratio_over_parse": round(r / p, 2),
        },
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeline-steps", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/results/replay_forensics.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.repeat, args.timeline_steps)), args.out)
