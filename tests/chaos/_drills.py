"""The process-level drills, each sized by its caller: `make chaos` at full size, tests small.

Provider and tool faults are drilled in `test_provider_faults.py` and `test_tool_faults.py`:
they need one run each, not a fleet, and run whole in `make test`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.chaos._drill import Drill, Tally


@dataclass(frozen=True)
class CrashPlan:
    """How hard to hit the workers: tokens per fault point, and kills from outside."""

    runs: int = 50
    per_point: int = 5  # worker self-kills during a model call, a tool call, after an effect
    approval_kills: int = 5  # kill -9 a worker just before an approval is sent
    random_kills: int = 5  # kill -9 a worker at a random moment
    probability: float = 0.2
    deadline_seconds: float = 600


async def crash_drill(root: Path, plan: CrashPlan) -> Tally:
    """Drill 1: kill -9 the worker at every kind of moment; every run must still complete."""
    drill = Drill("crash", root)
    try:
        await drill.setup(plan.runs, workers=1, crash_probability=plan.probability)
        for point in ("model", "tool", "effect"):
            drill.plant(point, plan.per_point)
        assert drill.fleet is not None
        fleet = drill.fleet

        async def kill_while_waiting() -> None:
            if drill.tally.faults["approval"] < plan.approval_kills and drill.rng.random() < 0.3:
                fleet.kill_one(drill.rng)
                fleet.revive()
                drill.tally.faults["approval"] += 1

        drill.before_answer = kill_while_waiting
        next_kill = time.monotonic() + drill.rng.uniform(2, 8)

        async def kill_at_random() -> None:
            nonlocal next_kill
            if drill.tally.faults["kill"] < plan.random_kills and time.monotonic() > next_kill:
                fleet.kill_one(drill.rng)
                drill.tally.faults["kill"] += 1
                next_kill = time.monotonic() + drill.rng.uniform(2, 8)

        await drill.start_runs(plan.runs)
        await drill.settle(plan.deadline_seconds, kill_at_random)
        return await drill.audit()
    finally:
        await drill.close()


async def server_drill(
    root: Path, runs: int = 30, restarts: int = 3, deadline_seconds: float = 600
) -> Tally:
    """Drill 2: kill -9 the dev server and start it again on its SQLite file.

    The first kill comes while every run is in flight or waiting for its approval (approvers
    stay away until then); later ones land at random moments of the drain.
    """
    drill = Drill("server", root)
    try:
        await drill.setup(runs)
        drill.hold_approvals = True
        await drill.start_runs(runs)
        next_restart = time.monotonic() + 1.0

        async def restart() -> None:
            nonlocal next_restart
            if drill.tally.faults["server"] < restarts and time.monotonic() > next_restart:
                drill.client = await drill.server.restart()
                drill.tally.faults["server"] += 1
                drill.hold_approvals = False
                next_restart = time.monotonic() + drill.rng.uniform(0.5, 2)

        await drill.settle(deadline_seconds, restart)
        return await drill.audit()
    finally:
        await drill.close()


async def load_drill(
    root: Path, runs: int = 500, workers: int = 2, deadline_seconds: float = 900
) -> Tally:
    """Drill 6: many concurrent runs over two worker processes; none lost, p99 reported."""
    drill = Drill("load", root, approvals=False)
    try:
        await drill.setup(runs, workers=workers)
        await drill.start_runs(runs)
        await drill.settle(deadline_seconds)
        return await drill.audit()
    finally:
        await drill.close()


def summary(tallies: list[Tally]) -> str:
    """The one table `make chaos` prints."""
    head = (
        "drill",
        "runs started",
        "faults injected",
        "runs completed",
        "runs lost",
        "duplicate effects",
        "actions without an allow",
        "p99 run s",
    )
    rows = [head]
    for t in tallies:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(t.faults.items()))
        p99 = t.p99()
        rows.append(
            (
                t.drill,
                str(t.runs_started),
                f"{t.faults_injected} ({faults})" if faults else "0",
                str(t.completed),
                str(len(t.lost)),
                str(len(t.duplicate_effects)),
                str(len(t.unauthorized)),
                f"{p99:.2f}" if p99 is not None else "-",
            )
        )
    total = (
        "total",
        str(sum(t.runs_started for t in tallies)),
        str(sum(t.faults_injected for t in tallies)),
        str(sum(t.completed for t in tallies)),
        str(sum(len(t.lost) for t in tallies)),
        str(sum(len(t.duplicate_effects) for t in tallies)),
        str(sum(len(t.unauthorized) for t in tallies)),
        "",
    )
    rows.append(total)
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    details = []
    for t in tallies:
        other = {k: v for k, v in t.outcomes.items() if k != "completed"}
        if other:
            details.append(f"{t.drill}: runs that closed otherwise: {dict(other)}")
        for label, items in (
            ("lost", t.lost),
            ("duplicate", t.duplicate_effects),
            ("missing", t.missing_effects),
            ("unauthorized", t.unauthorized),
        ):
            details += [f"{t.drill}: {label}: {item}" for item in items[:20]]
    return "\n".join(lines + details)
