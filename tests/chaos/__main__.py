"""`make chaos`: every process-level drill at full size, then one summary.

Exits 1 unless runs lost, duplicate effects and actions without an allow are all zero (and
every run completed), and the fleet drill's books hold (issue #23: three worker hosts
sharing only Temporal and PostgreSQL). Sizes follow issue #10; `--quick` runs the `make test` sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from tests.chaos._drill import Tally
from tests.chaos._drills import (
    CrashPlan,
    FleetPlan,
    crash_drill,
    fleet_drill,
    load_drill,
    server_drill,
    summary,
)
from tests.postgres import PostgresCluster


async def main(quick: bool, keep: Path | None) -> int:
    root = keep or Path(tempfile.mkdtemp(prefix="tiergate-chaos-"))
    tallies: list[Tally] = []
    plan = (
        CrashPlan(runs=5, per_point=1, approval_kills=1, random_kills=1, probability=1.0)
        if quick
        else CrashPlan()
    )

    async def crash(folder: Path) -> Tally:
        return await crash_drill(folder, plan)

    async def server(folder: Path) -> Tally:
        return await server_drill(folder, runs=5 if quick else 30, restarts=2 if quick else 3)

    async def load(folder: Path) -> Tally:
        return await load_drill(folder, runs=20 if quick else 500, workers=2)

    fleet_plan = (
        FleetPlan(runs=6, kills=1, paused_runs=2, disabled_runs=2) if quick else FleetPlan()
    )
    fleet_problems: list[str] = []

    async def fleet(folder: Path) -> Tally:
        cluster = PostgresCluster()
        try:
            tally, books = await fleet_drill(folder, cluster, fleet_plan)
        finally:
            cluster.stop()
        fleet_problems.extend(books.problems(fleet_plan))
        print(f"fleet books: {books}", flush=True)
        return tally

    drills = [("crash", crash), ("server", server), ("load", load), ("fleet", fleet)]
    for name, drill in drills:
        started = time.monotonic()
        print(f"drill {name} ...", flush=True)
        tally = await drill(root / name)
        print(f"drill {name}: {time.monotonic() - started:.0f} s", flush=True)
        tallies.append(tally)
    print()
    print(summary(tallies))
    for problem in fleet_problems:
        print(f"fleet: {problem}")
    print(f"\nworker and server logs: {root}")
    print("provider and tool faults, property tests and hostile input run in `make test`.")
    ok = all(t.clean and not t.missing_effects and t.completed == t.runs_started for t in tallies)
    return 0 if ok and not fleet_problems else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="folder for logs and stores")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.quick, args.keep)))
