"""The process-level drills, each sized by its caller: `make chaos` at full size, tests small.

Provider and tool faults are drilled in `test_provider_faults.py` and `test_tool_faults.py`:
they need one run each, not a fleet, and run whole in `make test`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError

from tests import web_client
from tests.chaos._drill import APPROVERS, Drill, Shared, Tally, run_script
from tests.passkeys import SoftPasskey
from tests.postgres import PostgresCluster
from tiergate.approvals import ApproverRegistry, Credentials, dev_admin
from tiergate.cluster import free_port
from tiergate.core import PendingAction
from tiergate.state import close_all, grant, open_database

TIERGATE = str(Path(sys.executable).parent / "tiergate")


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


@dataclass(frozen=True)
class FleetPlan:
    """A fleet drill's size: runs over ``workers`` hosts sharing only Temporal and
    PostgreSQL, ``kills`` kill -9s mid-run, and the runs started by the plain SDK while
    an agent is paused and while a tool is disabled."""

    runs: int = 30
    workers: int = 3
    kills: int = 3
    paused_runs: int = 5
    disabled_runs: int = 5
    capped: int = 2  # replies the fleet-wide cap refuses
    deadline_seconds: float = 600


@dataclass
class FleetBooks:
    """What the fleet drill checks beyond a drill's books."""

    workers_seen: int = 0  # distinct worker identities in the histories
    spread_runs: int = 0  # runs whose activities ran on more than one worker
    replies: int = 0  # replies applied by the main runs (the cap's count)
    capped: list[str] = field(default_factory=list)  # replies the cap refused
    refused_while_paused: int = 0
    ran_while_paused: list[str] = field(default_factory=list)
    denied_while_disabled: int = 0
    acted_while_disabled: list[str] = field(default_factory=list)
    page_answers: int = 0

    def problems(self, plan: FleetPlan) -> list[str]:
        found = [*self.ran_while_paused, *self.acted_while_disabled]
        if self.workers_seen < 2:  # which of the hosts take tasks is the server's choice
            found.append(f"only {self.workers_seen} worker served the runs")
        if self.spread_runs == 0:
            found.append("no run's steps landed on more than one worker")
        if self.replies != plan.runs - plan.capped or len(self.capped) != plan.capped:
            found.append(f"the cap let {self.replies} replies through, refused {self.capped}")
        if self.refused_while_paused != plan.paused_runs:
            found.append(f"{self.refused_while_paused} of {plan.paused_runs} refused when paused")
        if self.denied_while_disabled != plan.disabled_runs:
            found.append(
                f"{self.denied_while_disabled} of {plan.disabled_runs} denied when disabled"
            )
        if self.page_answers == 0:
            found.append("no approval came from the web page")
        return found


async def fleet_drill(
    root: Path, cluster: PostgresCluster, plan: FleetPlan
) -> tuple[Tally, FleetBooks]:
    """Drill 7: ``plan.workers`` worker processes, each with a home of its own, sharing
    nothing but Temporal and PostgreSQL (as their own database role); approvals from the
    web page served by another process (as the page's role); workers killed with kill -9
    mid-run; then an operator's process pauses the agent and disables a tool, and runs the
    plain SDK starts meet both."""
    books = FleetBooks()
    with (
        cluster.fresh() as owner_url,
        cluster.role(owner_url) as worker_url,
        cluster.role(owner_url) as web_url,
        cluster.fresh() as support_url,
    ):
        worker_role = worker_url.split("//")[1].split("@")[0]
        support = support_url.rsplit("/", 1)[1]
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {support} OWNER TO {worker_role}")
        owner = open_database(owner_url)
        grant(owner, worker_role, "worker")
        grant(owner, web_url.split("//")[1].split("@")[0], "web")
        home = root / "home"
        shared = Shared(
            database_url=owner_url,
            worker_url=worker_url,
            web_url=web_url,
            store_url=f"{worker_url.rsplit('/', 1)[0]}/{support}",
            admins=[dev_admin(home)],
        )
        cap: dict[str, Any] = {
            "name": "drill_replies",
            "tools": ["crm.update_ticket"],
            "window": "day",
            "max_calls": plan.runs - plan.capped,
        }
        drill = Drill("fleet", root, shared=shared, caps=[cap])
        page: PageApprovers | None = None
        try:
            extra = plan.paused_runs + plan.disabled_runs
            await drill.setup(plan.runs + extra, workers=plan.workers)
            page = await PageApprovers.start(drill, shared, books)
            assert drill.fleet is not None
            fleet = drill.fleet
            approvers = page

            async def answer_after_a_kill(pending: PendingAction, approver: str) -> bool:
                """The first time: kill -9 the worker the waiting run last ran on, so its
                steps after the approval land on another worker (always, not by luck)."""
                if drill.tally.faults["kill"] == 0 and drill.client is not None:
                    history = await drill.client.get_workflow_handle(pending.run_id).fetch_history()
                    ran_on = [
                        e.workflow_task_started_event_attributes.identity
                        for e in history.events
                        if e.HasField("workflow_task_started_event_attributes")
                    ]
                    pid = ran_on[-1].split("@")[0] if ran_on else ""
                    if pid.isdigit() and fleet.kill_pid(int(pid)):
                        drill.tally.faults["kill"] += 1
                return await approvers.answer(pending, approver)

            drill.answer = answer_after_a_kill
            next_kill = time.monotonic() + drill.rng.uniform(1, 4)

            async def kill_at_random() -> None:
                nonlocal next_kill
                # The first kill is the one during an approval wait (above).
                started = drill.tally.faults["kill"] > 0
                if (
                    started
                    and drill.tally.faults["kill"] < plan.kills
                    and time.monotonic() > next_kill
                ):
                    fleet.kill_one(drill.rng)
                    drill.tally.faults["kill"] += 1
                    next_kill = time.monotonic() + drill.rng.uniform(1, 4)

            await drill.start_runs(plan.runs)
            await drill.settle(plan.deadline_seconds, kill_at_random)
            tally = await drill.audit()
            await _spread(drill, books)
            # The cap counted every worker's replies: the ones it refused are not missing.
            books.capped = [m for m in tally.missing_effects if "reply" in m]
            tally.missing_effects = [m for m in tally.missing_effects if "reply" not in m]
            books.replies = sum(
                1
                for t in drill.store().rows("tickets")
                if t["id"] == "T-1001"
                for reply in json.loads(t["replies"])
                if reply.startswith("drill run ")
            )
            await _paused_and_disabled(drill, shared, plan, books)
            return tally, books
        finally:
            if page is not None:
                await page.stop()
            await drill.close()
            drill.store().close()
            close_all()


class PageApprovers:
    """`tiergate approvals web` in a process of its own (as the page's database role), and
    the drill's approvers answering through it with their passkeys, as browsers would."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        origin: str,
        softs: dict[str, SoftPasskey],
        books: FleetBooks,
    ) -> None:
        self.process, self.origin, self.softs, self.books = process, origin, softs, books
        self.clients: dict[str, httpx.AsyncClient] = {}

    @classmethod
    async def start(cls, drill: Drill, shared: Shared, books: FleetBooks) -> PageApprovers:
        port = free_port()
        origin = f"http://127.0.0.1:{port}"
        softs = {name: SoftPasskey(origin) for name in APPROVERS}
        registry = ApproverRegistry.of(drill.settings)
        credentials = Credentials(drill.settings.database())
        for name, soft in softs.items():
            registry.add_passkey(name, soft.passkey())
            credentials.set_password(name, _password(name))
        home = drill.root / "hosts" / "page"
        home.mkdir(parents=True)
        env = {
            **os.environ,
            "TIERGATE_HOME": str(home),
            "TIERGATE_DATABASE_URL": shared.web_url,
            "TIERGATE_CONTENT_URL": "database",
            "TIERGATE_TEMPORAL_ADDRESS": drill.server.address,
            "TIERGATE_REGISTRY_ADMINS": json.dumps(shared.admins),
            "TIERGATE_WEB_ORIGIN": origin,
            "TIERGATE_TELEMETRY": "false",
            "TIERGATE_LOG_LEVEL": "warning",
        }
        log = drill.root / "page.log"
        process = _spawn_page(port, env, log)
        async with httpx.AsyncClient(base_url=origin) as probe, asyncio.timeout(60):
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"the approvals page exited at start; see {log}")
                try:
                    if (await probe.get("/signin")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        return cls(process, origin, softs, books)

    async def answer(self, pending: PendingAction, approver: str) -> bool:
        client = self.clients.get(approver)
        try:
            if client is None:
                client = httpx.AsyncClient(base_url=self.origin, timeout=20)
                self.clients[approver] = client
                await web_client.sign_in(client, approver, _password(approver))
            response = await web_client.decide(
                client, pending.run_id, self.softs[approver], "approve", "fleet drill"
            )
        except (AssertionError, httpx.HTTPError):
            return False  # the run moved on, or a worker is down: the next pass tries again
        if response.status_code != 200:
            return False
        self.books.page_answers += 1
        return True

    async def stop(self) -> None:
        for client in self.clients.values():
            await client.aclose()
        self.process.kill()
        self.process.wait()


def _spawn_page(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [TIERGATE, "approvals", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _password(name: str) -> str:
    return f"{name}-fleet-drill-password"


async def _spread(drill: Drill, books: FleetBooks) -> None:
    """Which workers served which runs, from the histories' worker identities."""
    assert drill.client is not None
    seen: set[str] = set()
    for run_id in drill.run_ids:
        history = await drill.client.get_workflow_handle(run_id).fetch_history()
        identities = {
            e.activity_task_started_event_attributes.identity
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        } | {
            e.workflow_task_started_event_attributes.identity
            for e in history.events
            if e.HasField("workflow_task_started_event_attributes")
        }
        seen |= identities
        books.spread_runs += len(identities) > 1
    books.workers_seen = len(seen)


async def _paused_and_disabled(
    drill: Drill, shared: Shared, plan: FleetPlan, books: FleetBooks
) -> None:
    """An operator's process pauses the agent, then disables the ticket reply; the plain
    SDK starts runs under each, which the workers must refuse or deny."""
    assert drill.client is not None
    operator = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TIERGATE_HOME": str(drill.home),
        "TIERGATE_DATABASE_URL": shared.database_url,
        "TIERGATE_TEMPORAL_ADDRESS": drill.server.address,
        "TIERGATE_OPERATOR": "oncall",
        "TIERGATE_TELEMETRY": "false",
    }
    store = drill.store()

    def refunds(i: int) -> int:
        return sum(1 for r in store.rows("refunds") if r["order_id"] == f"ORD-7{i:04d}")

    await _operator(operator, "agent", "pause", "drill", "--reason", "fleet drill")
    for i in range(plan.runs, plan.runs + plan.paused_runs):
        try:
            await _plain_sdk_run(drill, i)
            books.ran_while_paused.append(f"run {i} ran while the agent was paused")
        except WorkflowFailureError as failed:
            cause = failed.cause.cause if isinstance(failed.cause, ActivityError) else None
            if isinstance(cause, ApplicationError) and cause.type == "AgentPaused":
                books.refused_while_paused += 1
            else:
                books.ran_while_paused.append(f"run {i} failed otherwise: {failed.cause}")
        if refunds(i):
            books.ran_while_paused.append(f"run {i} refunded while the agent was paused")
    await _operator(operator, "agent", "resume", "drill")

    await _operator(operator, "tool", "disable", "crm.update_ticket", "--reason", "fleet drill")
    first = plan.runs + plan.paused_runs
    for i in range(first, first + plan.disabled_runs):
        summary = await _plain_sdk_run(drill, i)
        codes = [
            (step.get("decision") or {}).get("code")
            for step in summary["steps"]
            if (step.get("proposal") or {}).get("tool") == "crm.update_ticket"
        ]
        if codes == ["tool_disabled"]:
            books.denied_while_disabled += 1
        replied = [
            reply
            for t in store.rows("tickets")
            for reply in json.loads(t["replies"])
            if reply == f"drill run {i}"
        ]
        if replied or refunds(i) != 1:
            books.acted_while_disabled.append(
                f"run {i}: replies {len(replied)}, refunds {refunds(i)} (codes {codes})"
            )
    await _operator(operator, "tool", "enable", "crm.update_ticket")


async def _operator(env: dict[str, str], *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        TIERGATE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    if process.returncode != 0:
        raise RuntimeError(f"tiergate {' '.join(args)} failed: {out.decode()}")


async def _plain_sdk_run(drill: Drill, i: int) -> dict[str, Any]:
    """Run ``i`` started with the plain Temporal SDK (a dict, no tiergate client), to its
    result."""
    assert drill.client is not None
    run_input = {
        "agent": "drill",
        "input": {"ticket_id": "T-1001"},
        "model_overrides": {
            "frontier": {
                "provider": "scripted",
                "model": "demo-frontier",
                "script": run_script(i, approvals=False),
                "timeout_seconds": 3,
            }
        },
    }
    handle = await drill.client.start_workflow(
        "AgentRunWorkflow",
        run_input,
        id=f"drill-fleet-sdk-{i:04d}-{uuid.uuid4().hex[:6]}",
        task_queue=drill.task_queue,
    )
    async with asyncio.timeout(120):
        result: dict[str, Any] = await handle.result()
    return result
