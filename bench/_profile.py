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
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import Counter
from pathlib import Path

import overhead

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


async def run(kind: str, runs: int) -> None:
    async with overhead.workloads("fast") as kinds:
        rate = await kinds[kind](runs)
    print(f"{kind}: {runs} runs, {rate:.2f} runs/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run")
    one.add_argument("kind", choices=["tiergate", "bare"])
    one.add_argument("--runs", type=int, default=RUNS_PER_PROFILE)
    both = sub.add_parser("summarise")
    both.add_argument("tiergate", type=Path)
    both.add_argument("bare", type=Path)
    both.add_argument("--runs", type=int, default=RUNS_PER_PROFILE)
    args = parser.parse_args()
    if args.command == "run":
        asyncio.run(run(args.kind, args.runs))
    else:
        print(table(args.tiergate, args.bare, args.runs))
