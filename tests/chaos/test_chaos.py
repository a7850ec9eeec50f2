"""The fast subset of `make chaos`: each process-level drill, small, with every fault kind.

Each drill starts its own dev server and worker processes; the books are read from the
store and from every run's Temporal history (see `_drill.py`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.chaos._drill import Drill, Tally
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


def assert_clean(tally: Tally) -> None:
    assert tally.clean, summary([tally])
    assert not tally.missing_effects, summary([tally])
    assert tally.completed == tally.runs_started, summary([tally])


async def test_runs_survive_kill_9_of_the_worker_at_every_kind_of_moment(tmp_path: Path) -> None:
    plan = CrashPlan(
        runs=5, per_point=1, approval_kills=1, random_kills=1, probability=1.0, deadline_seconds=240
    )
    tally = await crash_drill(tmp_path, plan)
    assert_clean(tally)
    # Every planned fault fired: one self-kill per point, one kill during an approval wait,
    # one at a random moment.
    assert tally.faults == {"model": 1, "tool": 1, "effect": 1, "approval": 1, "kill": 1}


async def test_runs_survive_kill_9_of_the_server(tmp_path: Path) -> None:
    tally = await server_drill(tmp_path, runs=5, restarts=2, deadline_seconds=240)
    assert_clean(tally)
    assert tally.faults == {"server": 2}


async def test_concurrent_runs_over_two_workers(tmp_path: Path) -> None:
    tally = await load_drill(tmp_path, runs=20, workers=2, deadline_seconds=240)
    assert_clean(tally)
    assert tally.p99() is not None


async def test_the_books_catch_a_doubled_effect_and_an_ungated_one(tmp_path: Path) -> None:
    """The drills' zero counts can fail: a second refund and a stray key are both reported."""
    drill = Drill("books", tmp_path, approvals=False)
    try:
        await drill.setup(runs=2)
        await drill.start_runs(2)
        await drill.settle(120)
        assert_clean(await drill.audit())
        with sqlite3.connect(drill.home / "support.sqlite") as conn:
            conn.execute(
                "INSERT INTO refunds (order_id, amount_usd, reason_code, idempotency_key) "
                "VALUES ('ORD-70001', '20.00', 'late', 'replayed-by-hand')"
            )
            conn.execute(
                "INSERT INTO applied_keys VALUES ('replayed-by-hand', 'payments.issue_refund', '{}')"
            )
        tally = await drill.audit()
    finally:
        await drill.close()
    assert [d for d in tally.duplicate_effects if "ORD-70001 applied 2x" in d]
    assert [u for u in tally.unauthorized if "replayed-by-hand" in u]


async def test_a_fleet_sharing_only_temporal_and_postgres(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    """Issue #23, item 6, small: three worker hosts with homes of their own, a page process,
    kill -9 mid-run, a pause and a disable from an operator's process."""
    plan = FleetPlan(runs=6, kills=1, paused_runs=2, disabled_runs=2, deadline_seconds=240)
    tally, books = await fleet_drill(tmp_path, postgres, plan)
    assert_clean(tally)
    assert books.problems(plan) == [], books
    assert tally.faults["kill"] == 1
