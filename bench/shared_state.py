"""Overhead with the shared store on PostgreSQL: governed runs per second with tiergate's
state in a real PostgreSQL (and the content store in it), against the SQLite default and
against bare Temporal, in one run.

One dev server and a throwaway PostgreSQL cluster (Debian's initdb/pg_ctl, as the tests
start it); three workers on three queues, each workload in interleaved rounds, the order
rotated every round: the 5-step agent of bench/overhead.py with (a) its state in the home's
SQLite and content in files, (b) state and content in PostgreSQL, and (c) the same
activities driven by `BareAgentWorkflow` with no gate, budget, records or store.

Then approval latency (bench/approval_latency.py's measure: approve call → refund activity
started, Ed25519-signed answers) with each store, against its bare update baseline, in
rounds whose order rotates: the registry an approval is checked against, the kill switch
and the cap ledger are read from the store on that path.

    python bench/shared_state.py [--runs 30] [--rounds 6] [--approvals 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import yaml
from _bare_agent import BareAgentWorkflow
from _common import machine, save
from approval_latency import bare_latencies, signers, stats_ms, tiergate_latencies
from overhead import agent, bare, bare_activities, governed
from temporalio.worker import Worker

from tiergate.approvals import trusting_dev_admin
from tiergate.cluster import start_dev_server
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.observe import configure_logging
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.worker import build_worker
from tiergate.workflows import workflow_runner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's tests package
from tests.postgres import PostgresCluster

KINDS = ("sqlite", "postgresql", "bare")


def home_for(name: str, **settings: Any) -> Settings:
    home = Path(tempfile.mkdtemp(prefix=f"tiergate-bench-state-{name}-"))
    (home / "agents").mkdir()
    (home / "agents" / "bench5.yaml").write_text(yaml.safe_dump(agent("bench5")))
    configured = Settings(
        offline_model_overrides=True, home=home, agents_dir=home / "agents", **settings
    )
    SupportStore(configured.support_store).seed_demo()
    return configured


async def main(runs: int, rounds: int, approvals: int) -> dict[str, Any]:
    configure_logging(Redactor(), log_format="json", level="warning")
    cluster = PostgresCluster()
    server = await start_dev_server(None, ui=False)
    client = server.env.client
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        with cluster.fresh() as url:
            lite = home_for("sqlite")
            shared = home_for("pg", database_url=url, content_url="database")
            workers = [
                build_worker(client, lite, SUPPORT_TOOLKIT, task_queue=f"{queue}-sqlite"),
                build_worker(client, shared, SUPPORT_TOOLKIT, task_queue=f"{queue}-postgresql"),
            ]
            bare_worker = Worker(
                client,
                task_queue=f"{queue}-bare",
                workflows=[BareAgentWorkflow],
                workflow_runner=workflow_runner(),
                activities=bare_activities(client, lite, f"{queue}-bare"),
                activity_executor=workers[0].config()["activity_executor"],
                max_concurrent_activities=32,
                max_cached_workflows=lite.max_cached_workflows,
                max_concurrent_workflow_tasks=lite.max_concurrent_workflow_tasks,
            )
            work = {
                "sqlite": lambda n: governed(client, f"{queue}-sqlite", n),
                "postgresql": lambda n: governed(client, f"{queue}-postgresql", n),
                "bare": lambda n: bare(client, f"{queue}-bare", n),
            }
            rounds_out: list[dict[str, float]] = []
            async with workers[0], workers[1], bare_worker:
                for kind in KINDS:  # warm-up
                    await work[kind](5)
                for number in range(rounds):
                    order = KINDS[number % 3 :] + KINDS[: number % 3]
                    rounds_out.append({kind: round(await work[kind](runs), 2) for kind in order})
            latencies = await approval_rounds(client, lite, shared, approvals)
    finally:
        await server.env.shutdown()
        cluster.stop()

    def median(kind: str) -> float:
        return round(statistics.median(r[kind] for r in rounds_out), 2)

    def paired(a: str, b: str) -> float:
        return round(statistics.median(r[a] / r[b] for r in rounds_out), 3)

    approval = {kind: stats_ms(latencies[kind]) for kind in KINDS}
    p50 = {kind: statistics.median(latencies[kind]) for kind in KINDS}
    return {
        "benchmark": "shared_state",
        "command": f"python bench/shared_state.py --runs {runs} --rounds {rounds} "
        f"--approvals {approvals}",
        "machine": machine(),
        "workload": f"{runs} runs per round of a 5-step agent (4 read tool calls + final "
        "answer, scripted model) per store",
        "rounds": rounds_out,
        "runs_per_second": {kind: median(kind) for kind in KINDS},
        "ratio_postgresql_over_sqlite": round(median("postgresql") / median("sqlite"), 3),
        "ratio_postgresql_over_bare": round(median("postgresql") / median("bare"), 3),
        "ratio_sqlite_over_bare": round(median("sqlite") / median("bare"), 3),
        "median_paired_ratio_postgresql_over_sqlite": paired("postgresql", "sqlite"),
        "median_paired_ratio_postgresql_over_bare": paired("postgresql", "bare"),
        "approval_latency": approval,
        "approval_ratio_p50_postgresql_over_sqlite": round(p50["postgresql"] / p50["sqlite"], 3),
        "approval_ratio_p50_postgresql_over_bare": round(p50["postgresql"] / p50["bare"], 3),
        "approval_ratio_p50_sqlite_over_bare": round(p50["sqlite"] / p50["bare"], 3),
    }


async def approval_rounds(
    client: Any, lite: Settings, shared: Settings, approvals: int
) -> dict[str, list[float]]:
    """Approval latencies by store, ``approvals`` each, in two rounds of rotated order."""
    stores = {"sqlite": trusting_dev_admin(lite), "postgresql": trusting_dev_admin(shared)}
    proofs = {}
    for kind, settings in stores.items():
        # One large order so every refund ($60, tier 3 under refund_cap) really applies.
        SupportStore(settings.support_store).seed(
            demo=True, orders=[("ORD-9000", "C-9", "delivered", "1000000.00")]
        )
        proofs[kind] = {"ed25519": signers(settings)["ed25519"]}
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    half = max(1, approvals // 2)
    for number in range(2):
        order = KINDS[number:] + KINDS[:number]
        for kind in order:
            if kind == "bare":
                latencies[kind] += await bare_latencies(client, half)
            else:
                done = await tiergate_latencies(client, stores[kind], half, proofs[kind])
                latencies[kind] += done["ed25519"]
    return latencies


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--approvals", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("bench/results/shared_state.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.rounds, args.approvals)), args.out)
