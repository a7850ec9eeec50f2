"""Growth with run length: wall time and history size per step, for runs of 10, 100, 1000 steps.

Each run is a governed run of a scripted agent that reads tickets and orders step after
step (distinct calls, so the loop detector stays quiet) and then answers. Per length, the
figures are wall time per step and history bytes and events per step, over every segment
of the run (runs continue as new before 8,000 events: tiergate.workflows._carry); the
baseline is the shortest run, so "flat" means ratios near 1. The scripted model's whole
script is part of the run's input (about 110 bytes per step), so each segment's first
event carries it: that, not the run, is what grows bytes per step with length.
CPU per step (the worker process and the embedded server together) is reported beside wall
time, so a wall-time step with flat CPU points at waiting, not work (as the dev server's
transfer-queue limit did: tiergate.devserver.DYNAMIC_CONFIG and BENCHMARKS.md).

    python bench/growth.py [--steps 10 100 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import yaml
from _common import machine, read_script, save
from _proc import children, cpu_seconds

from tiergate.cluster import start_dev_server
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.forensics import fetch_run_chain
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.worker import build_worker
from tiergate.workflows._carry import CONTINUE_AS_NEW_EVENTS


def agent(steps: int) -> dict[str, Any]:
    return {
        "agent": {
            "name": f"grow{steps}",
            "version": "bench-1",
            "model_tier": {"executor": "frontier"},
            "tools": {"allowlist": ["crm.read_ticket", "orders.get_status"]},
            "policy": {"files": ["support.cedar"]},
            "budgets": {
                "max_total_tokens": 100_000_000,
                "max_model_calls": steps + 5,
                "max_tool_calls": steps,
                "max_identical_tool_calls": steps,
                "max_wall_time_seconds": 3600,
                "max_cost_usd": 100_000,
            },
        }
    }


async def main(lengths: list[int], continue_after: int | None) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")
    home = Path(tempfile.mkdtemp(prefix="tiergate-bench-growth-"))
    (home / "agents").mkdir()
    for steps in lengths:
        (home / "agents" / f"grow{steps}.yaml").write_text(yaml.safe_dump(agent(steps)))
    settings = Settings(offline_model_overrides=True, home=home, agents_dir=home / "agents")
    SupportStore(settings.support_store).seed_demo()
    server = await start_dev_server(None, ui=False)
    (server_pid,) = children(os.getpid())
    client = server.env.client
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    rows = []
    try:
        async with build_worker(client, settings, SUPPORT_TOOLKIT, task_queue=queue):
            for steps in lengths:
                overrides = {
                    "frontier": {
                        "provider": "scripted",
                        "model": "demo-frontier",
                        "script": read_script(steps),
                    }
                }
                began = time.perf_counter()
                worker_cpu, server_cpu = time.process_time(), cpu_seconds(server_pid)
                summary: RunSummary = await client.execute_workflow(
                    WORKFLOW_NAME,
                    RunInput(
                        agent=f"grow{steps}",
                        model_overrides=overrides,
                        continue_as_new_after_events=continue_after,
                    ).model_dump(),
                    id=f"grow-{steps}-{uuid.uuid4().hex[:6]}",
                    task_queue=queue,
                    result_type=RunSummary,
                )
                seconds = time.perf_counter() - began
                cpu = time.process_time() - worker_cpu + cpu_seconds(server_pid) - server_cpu
                assert summary.steps[-1].step == steps, (summary.outcome, summary.reason)
                assert summary.outcome == "completed", summary.reason
                chain = await fetch_run_chain(client, summary.workflow_id)
                events = sum(len(h.events) for h in chain)
                size = sum(e.ByteSize() for h in chain for e in h.events)
                rows.append(
                    {
                        "steps": steps,
                        "segments": len(chain),
                        "largest_segment_events": max(len(h.events) for h in chain),
                        "seconds": round(seconds, 2),
                        "ms_per_step": round(seconds / steps * 1000, 2),
                        "cpu_ms_per_step": round(cpu / steps * 1000, 2),
                        "history_events": events,
                        "events_per_step": round(events / steps, 2),
                        "history_bytes": size,
                        "bytes_per_step": round(size / steps),
                    }
                )
    finally:
        await server.env.shutdown()
    base = rows[0]
    for row in rows:
        row["ms_per_step_ratio"] = round(row["ms_per_step"] / base["ms_per_step"], 2)
        row["cpu_ms_per_step_ratio"] = round(row["cpu_ms_per_step"] / base["cpu_ms_per_step"], 2)
        row["bytes_per_step_ratio"] = round(row["bytes_per_step"] / base["bytes_per_step"], 2)
    return {
        "benchmark": "growth",
        "command": "python bench/growth.py --steps "
        + " ".join(str(n) for n in lengths)
        + (f" --continue-after {continue_after}" if continue_after else ""),
        "continue_as_new_after_events": continue_after or CONTINUE_AS_NEW_EVENTS,
        "machine": machine(),
        "runs": rows,
        "target": "time and history per step flat (ratios near 1) from 10 to 1000 steps",
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--continue-after", type=int, help="events per segment (default 8000)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/growth.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.steps, args.continue_after)), args.out)
