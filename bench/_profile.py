"""Where a governed run's extra worker time goes: the overhead benchmark's profile.

Run one workload of bench/overhead.py under py-spy, once per kind, then summarise the two
raw profiles side by side, by bucket, in sampled milliseconds per run:

    py-spy record --gil -r 200 -f raw -o tiergate.raw -- python bench/_profile.py run tiergate
    py-spy record --gil -r 200 -f raw -o bare.raw -- python bench/_profile.py run bare
    python bench/_profile.py summarise tiergate.raw bare.raw

With `--gil`, py-spy samples only the thread holding the GIL, so the figures are close to
the worker's Python CPU time; without it, threads waiting for the GIL are counted too and
the buckets overstate whatever runs beside busy threads. The dev server (Go) is not in the
profile; its extra CPU per run is in overhead.py's own figures.

Sampling misses what runs outside Python (the Temporal core, Cedar's Rust) and undercounts
the workflow threads, so the split that settles where the time goes is measured, not
sampled: each thread's CPU from /proc, per run of each kind, and the CPU of every Cedar
call the gate makes inside the worker:

    python bench/_profile.py threads [--runs 300] [--kinds tiergate bare]

(the kinds are overhead.py's: ``tiergate``/``bare`` on the provider path, ``*_scripted``
with the scripted model).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import threading
import time
from collections import Counter
from pathlib import Path

import cedarpy
import overhead
from _proc import thread_cpu_seconds

import tiergate.core._gate as gate_module

#: First match wins; a sample is counted once, in the first bucket one of its frames hits.
BUCKETS = [
    ("memo and search-attribute payloads", ("ModifyWorkflowProperties", "UpsertWorkflowSearch")),
    ("Cedar (gate decisions, output checks)", ("cedarpy",)),
    ("activities (model, tools, agent load)", ("_execute_sync_activity", "_execute_activity")),
    ("run loop code", ("tiergate/workflows/", "_bare_agent.py")),
    ("payload conversion and codecs", ("_visitor", "converter", "_convert_payloads")),
    ("sandbox and workflow activation", ("workflow_sandbox", "_workflow_instance", "_workflow.py")),
]
#: Leaf frames of threads that are parked, not working (an empty leaf: no Python frame).
IDLE = ("_worker (concurrent", "select (selectors")
RUNS_PER_PROFILE = 200
HZ = 200


def summarise(path: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        frames = stack.split(";")
        if not frames[-1].strip() or any(idle in frames[-1] for idle in IDLE):
            continue
        joined = re.sub(r":\d+\)", ")", stack)
        bucket = next((name for name, keys in BUCKETS if any(k in joined for k in keys)), "other")
        counts[bucket] += int(number)
    return counts


def table(tiergate: Path, bare: Path, runs: int) -> str:
    t, b = summarise(tiergate), summarise(bare)
    per_run = 1000 / HZ / runs
    lines = ["| bucket | tiergate ms/run | bare ms/run | extra |", "|---|---|---|---|"]
    for name in [*(n for n, _ in BUCKETS), "other"]:
        lines.append(
            f"| {name} | {t[name] * per_run:.1f} | {b[name] * per_run:.1f} "
            f"| {(t[name] - b[name]) * per_run:+.1f} |"
        )
    total_t, total_b = sum(t.values()) * per_run, sum(b.values()) * per_run
    lines.append(f"| **all** | {total_t:.1f} | {total_b:.1f} | {total_t - total_b:+.1f} |")
    return "\n".join(lines)


class _CedarMeter:
    """Stands in for the gate's `cedarpy`, timing each call's thread CPU and wall time."""

    def __init__(self) -> None:
        self.calls = 0
        self.cpu = 0.0
        self.wall = 0.0
        self._lock = threading.Lock()

    def is_authorized(self, *args: object) -> cedarpy.AuthzResult:
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return cedarpy.is_authorized(*args)  # type: ignore[arg-type]
        finally:
            with self._lock:
                self.calls += 1
                self.cpu += time.thread_time() - cpu
                self.wall += time.perf_counter() - wall


async def threads(runs: int, governed: str, bare: str) -> None:
    """Per-thread CPU ms per run of each kind (two interleaved batches), and Cedar's cost."""
    meter = _CedarMeter()
    setattr(gate_module, "cedarpy", meter)  # noqa: B010  # the gate's own calls, measured
    spent: dict[str, dict[str, float]] = {"tiergate": {}, "bare": {}}
    async with overhead.workloads() as kinds:
        meter.calls, meter.cpu, meter.wall = 0, 0.0, 0.0
        for side in ["tiergate", "bare", "bare", "tiergate"]:
            before = thread_cpu_seconds()
            await kinds[governed if side == "tiergate" else bare](runs)
            for name, seconds in thread_cpu_seconds().items():
                used = seconds - before.get(name, 0.0)
                spent[side][name] = spent[side].get(name, 0.0) + used
    per_run = 1000 / (2 * runs)
    print("| thread | tiergate ms/run | bare ms/run | extra |\n|---|---|---|---|")
    names = sorted(spent["tiergate"], key=lambda n: -spent["tiergate"][n])
    for name in [*names, "all"]:
        t = sum(spent["tiergate"].values()) if name == "all" else spent["tiergate"][name]
        b = sum(spent["bare"].values()) if name == "all" else spent["bare"].get(name, 0.0)
        if t or b:
            print(f"| {name} | {t * per_run:.2f} | {b * per_run:.2f} | {(t - b) * per_run:+.2f} |")
    calls = max(meter.calls, 1)
    print(
        f"\nCedar in the worker: {meter.calls / (2 * runs):.1f} calls/run, "
        f"{meter.cpu / calls * 1e6:.0f} µs CPU and {meter.wall / calls * 1e6:.0f} µs wall per call"
    )


async def run(kind: str, runs: int) -> None:
    async with overhead.workloads() as kinds:
        rate = await kinds[kind](runs)
    print(f"{kind}: {runs} runs, {rate:.2f} runs/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run")
    one.add_argument("kind", choices=overhead.KINDS)
    one.add_argument("--runs", type=int, default=RUNS_PER_PROFILE)
    split = sub.add_parser("threads")
    split.add_argument("--runs", type=int, default=300)
    split.add_argument("--kinds", nargs=2, default=["tiergate", "bare"], choices=overhead.KINDS)
    both = sub.add_parser("summarise")
    both.add_argument("tiergate", type=Path)
    both.add_argument("bare", type=Path)
    both.add_argument("--runs", type=int, default=RUNS_PER_PROFILE)
    args = parser.parse_args()
    if args.command == "run":
        asyncio.run(run(args.kind, args.runs))
    elif args.command == "threads":
        asyncio.run(threads(args.runs, *args.kinds))
    else:
        print(table(args.tiergate, args.bare, args.runs))
