"""One drill: real runs on a real server and worker processes, faults, then the books.

A drill seeds a support store, registers approvers, starts runs whose scripted model proposes
reads, a small refund (tier 2), a large refund (tier 3, one approval), a ticket reply (tier 1)
and, for every fifth run, a data deletion (tier 4, two approvals). An approver loop answers
every pending action through the real signed-update path. Faults are injected by the worker
processes (`_worker.py`), by the drill killing workers or the server, and by the caller.

Afterwards the drill counts, from the store and from each run's Temporal history, not from
what the runs say about themselves:

- **lost**: a run that did not close with a summary before the deadline;
- **duplicate effects**: a refund, reply or deletion applied more than once for one run;
- **actions without an allow**: a tool activity scheduled without a recorded allow and the
  approvals its tier needs (`ungated_tool_calls`), an approval that fails the history audit,
  or an effect in the store whose idempotency key no run's history allowed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from tests.chaos._server import ServerProcess
from tiergate.approvals import ApproverRegistry, dev_admin, sign
from tiergate.approvals.client import build_request, list_pending, submit
from tiergate.core import (
    WORKFLOW_NAME,
    ApprovalDecision,
    Outcome,
    PendingAction,
    RunInput,
    RunSummary,
    ToolCallInput,
    tool_activity_name,
)
from tiergate.demo import SupportStore
from tiergate.errors import ApprovalRefusedError, NotWaitingError
from tiergate.forensics import audit_approvals, decode, ungated_tool_calls
from tiergate.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TOOLS = [
    "crm.read_ticket",
    "crm.update_ticket",
    "orders.get_status",
    "payments.issue_refund",
    "users.delete_data",
]
APPROVERS = {"lead": ["support_lead"], "p1": ["privacy_officer"], "p2": ["privacy_officer"]}


def _call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"kind": "tool_call", "tool": tool, "arguments": arguments, "reason": "drill"}


def run_script(i: int, approvals: bool) -> list[dict[str, Any]]:
    """What run ``i``'s model proposes; each run's effects name it, so they can be counted."""
    script = [
        _call("crm.read_ticket", ticket_id="T-1001"),
        _call(
            "payments.issue_refund", order_id=f"ORD-7{i:04d}", amount_usd="20", reason_code="late"
        ),
        _call("crm.update_ticket", ticket_id="T-1001", status="pending", reply=f"drill run {i}"),
    ]
    if approvals:
        script.insert(
            2,
            _call(
                "payments.issue_refund",
                order_id=f"ORD-8{i:04d}",
                amount_usd="400",
                reason_code="not_delivered",
            ),
        )
        if i % 5 == 0:
            script.append(
                _call("users.delete_data", user_id=f"U-9{i:04d}", justification="customer asked")
            )
    return [*script, {"kind": "final_answer", "answer": f"run {i} done", "reason": "drill"}]


@dataclass
class Tally:
    """What one drill did and what the books say afterwards."""

    drill: str
    runs_started: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    lost: list[str] = field(default_factory=list)
    duplicate_effects: list[str] = field(default_factory=list)
    missing_effects: list[str] = field(default_factory=list)
    unauthorized: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return self.outcomes[Outcome.COMPLETED.value]

    @property
    def faults_injected(self) -> int:
        return sum(self.faults.values())

    def p99(self) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicate_effects or self.unauthorized)


@dataclass(frozen=True)
class Shared:
    """A fleet: tiergate's state in PostgreSQL, each worker a host with a home of its own.

    ``database_url`` is the owner role's (the drill acts as administrator and operator),
    ``worker_url`` and ``web_url`` the store as the worker and page roles, ``store_url``
    the demo's support database as the worker role."""

    database_url: str
    worker_url: str
    web_url: str
    store_url: str
    admins: list[str]


class WorkerFleet:
    """Worker processes on one task queue, restarted whenever one dies.

    With ``hosts``, worker ``n`` runs in home ``hosts[n]`` (a restarted one in the same
    home, as a host restarts its worker) with ``env`` added; else all share ``home``.
    """

    def __init__(
        self,
        address: str,
        task_queue: str,
        home: Path,
        faults: Path,
        probability: float,
        hosts: list[Path] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.address, self.task_queue, self.home = address, task_queue, home
        self.faults, self.probability = faults, probability
        self.hosts, self.env = hosts, env or {}
        self.processes: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.deaths = 0
        self.generation = 0

    def _spawn(self, slot: int) -> tuple[subprocess.Popen[bytes], Path]:
        self.generation += 1
        log = self.home / f"worker-{self.generation}.log"
        home = self.hosts[slot] if self.hosts else self.home
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.chaos._worker",
                    self.address,
                    self.task_queue,
                    str(home),
                    str(self.faults),
                    str(self.probability),
                ],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TIERGATE_LOG_LEVEL": "warning", **self.env},
            )
        return process, log

    async def start(self, size: int) -> None:
        spawned = [self._spawn(n) for n in range(size)]
        self.processes = [process for process, _ in spawned]
        self.logs = [log for _, log in spawned]
        await self._ready(range(size))

    async def _ready(self, slots: range | list[int]) -> None:
        async with asyncio.timeout(60):
            for n in slots:
                while b"worker ready" not in self.logs[n].read_bytes():
                    if self.processes[n].poll() is not None:
                        raise RuntimeError(f"a worker exited at start; see {self.logs[n]}")
                    await asyncio.sleep(0.1)

    def revive(self) -> int:
        """Start a new worker for every one that died; returns how many died."""
        died = 0
        for n, process in enumerate(self.processes):
            if process.poll() is not None:
                died += 1
                self.processes[n], self.logs[n] = self._spawn(n)
        self.deaths += died
        return died

    def kill_pid(self, pid: int) -> bool:
        """kill -9 the worker process ``pid`` if it is one of this fleet's and alive."""
        for process in self.processes:
            if process.pid == pid and process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return True
        return False

    def kill_one(self, rng: random.Random) -> None:
        alive = [p for p in self.processes if p.poll() is None]
        if alive:
            victim = rng.choice(alive)
            victim.send_signal(signal.SIGKILL)
            victim.wait()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class Drill:
    """The stage for one drill: server, store, approvers, agent, workers and runs."""

    def __init__(
        self,
        name: str,
        root: Path,
        *,
        approvals: bool = True,
        seed: int = 7,
        shared: Shared | None = None,
        caps: list[dict[str, Any]] | None = None,
    ) -> None:
        self.shared, self.caps = shared, caps or []
        self.tally = Tally(name)
        self.root = root
        self.home = root / "home"
        self.approvals = approvals
        self.rng = random.Random(seed)
        self.task_queue = f"chaos-{name}-{uuid.uuid4().hex[:8]}"
        self.server = ServerProcess(root / "temporal.sqlite", root / "server.log")
        self.faults = root / "faults"
        self.client: Client | None = None
        self.fleet: WorkerFleet | None = None
        self.run_ids: dict[str, int] = {}
        self.answered: set[tuple[str, int, str]] = set()
        self.before_answer: Callable[[], Awaitable[None]] | None = None
        #: How an approver answers (default: a signed update with their demo key).
        self.answer: Callable[[PendingAction, str], Awaitable[bool]] | None = None
        self.hold_approvals = False  # approvers stay away (runs pile up waiting)

    @property
    def settings(self) -> Settings:
        """The drill's own: the administrator's and operator's (the owner role, in a fleet)."""
        if self.shared is None:
            return Settings(home=self.home)
        return Settings(
            home=self.home,
            database_url=SecretStr(self.shared.database_url),
            store_url=SecretStr(self.shared.store_url),
        )

    def store(self) -> SupportStore:
        return SupportStore(self.settings.support_store)

    # -- set-up ------------------------------------------------------------------------------

    async def setup(self, runs: int, workers: int = 1, crash_probability: float = 0.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        for point in ("model", "tool", "effect", "fired"):
            (self.faults / point).mkdir(parents=True, exist_ok=True)
        store = self.store()
        store.seed(
            demo=True,
            orders=[(f"ORD-7{i:04d}", "C-1", "delivered", "100.00") for i in range(runs)]
            + [(f"ORD-8{i:04d}", "C-1", "lost_in_transit", "500.00") for i in range(runs)],
            users=[
                (f"U-9{i:04d}", f"user{i}@customers.example.com", "Drill User") for i in range(runs)
            ],
        )
        dev_admin(self.home)  # the drill's administrator: its workers trust it
        registry = ApproverRegistry.of(self.settings)
        for name, roles in APPROVERS.items():
            registry.add(name, roles, demo_key=True)
        ApproverRegistry.of(self.settings, "operators").add("oncall", ["operator"], demo_key=True)
        agent = yaml.safe_dump(self.agent(self.caps))
        hosts = [self.root / "hosts" / f"host-{n}" for n in range(workers)] if self.shared else []
        for home in [self.home, *hosts]:
            (home / "agents").mkdir(parents=True)
            (home / "agents" / "drill.yaml").write_text(agent)
        self.client = await self.server.start()
        env = {}
        if self.shared is not None:
            env = {
                "TIERGATE_DATABASE_URL": self.shared.worker_url,
                "TIERGATE_STORE_URL": self.shared.store_url,
                "TIERGATE_CONTENT_URL": "database",
                "TIERGATE_REGISTRY_ADMINS": json.dumps(self.shared.admins),
            }
        self.fleet = WorkerFleet(
            self.server.address,
            self.task_queue,
            self.home,
            self.faults,
            crash_probability,
            hosts=hosts or None,
            env=env,
        )
        await self.fleet.start(workers)

    @staticmethod
    def agent(caps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "agent": {
                "name": "drill",
                "version": "drill-1",
                "model_tier": {"executor": "frontier"},
                "tools": {"allowlist": TOOLS, "timeout_seconds": 3},
                "budgets": {
                    "max_tool_calls": 10,
                    "max_retries": 20,
                    "max_wall_time_seconds": 1800,
                    # A call a cap or a disabled tool refuses is fed back; the run goes on.
                    **({"max_denials": 5} if caps else {}),
                },
                "policy": {
                    "engine": "cedar",
                    "files": ["support.cedar"],
                    "rules": [
                        {
                            "id": "refund_cap",
                            "tool": "payments.issue_refund",
                            "condition": "input.amount_usd <= 50",
                            "on_fail": "escalate_to_human",
                        }
                    ],
                },
                "approvals": {"policy_files": ["approvers.cedar"]},
                **({"limits": {"caps": caps}} if caps else {}),
            }
        }

    def plant(self, point: str, count: int) -> None:
        """Leave ``count`` crash tokens for a worker fault point."""
        for n in range(count):
            (self.faults / point / f"{n:03d}").write_text("")

    def fired(self) -> Counter[str]:
        return Counter(p.name.split("-")[0] for p in (self.faults / "fired").iterdir())

    # -- runs --------------------------------------------------------------------------------

    async def start_runs(self, runs: int) -> None:
        assert self.client is not None
        gate = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            run_id = f"drill-{self.tally.drill}-{i:04d}-{uuid.uuid4().hex[:6]}"
            spec = {
                "provider": "scripted",
                "model": "demo-frontier",
                "script": run_script(i, self.approvals),
                "timeout_seconds": 3,
            }
            run_input = RunInput(
                agent="drill", input={"ticket_id": "T-1001"}, model_overrides={"frontier": spec}
            )
            async with gate:
                await self._retrying(
                    lambda c: c.start_workflow(
                        WORKFLOW_NAME, run_input, id=run_id, task_queue=self.task_queue
                    )
                )
            self.run_ids[run_id] = i

        await asyncio.gather(*(one(i) for i in range(runs)))
        self.tally.runs_started = len(self.run_ids)

    async def _retrying(self, action: Callable[[Client], Awaitable[Any]]) -> Any:
        """An RPC that survives a server restart: retried on the current client."""
        for attempt in range(100):
            assert self.client is not None
            try:
                return await action(self.client)
            except RPCError:
                if attempt == 99:
                    raise
                await asyncio.sleep(0.5)
        return None

    async def answer_pending(self) -> None:
        """One pass of the approvers over everything that waits, through signed updates."""
        assert self.client is not None
        registry = ApproverRegistry.of(self.settings)
        try:
            waiting = await list_pending(self.client, limit=1000)
        except RPCError:
            return
        for pending in waiting:
            who = ["p1", "p2"] if pending.tool == "users.delete_data" else ["lead"]
            for approver in who:
                key = (pending.run_id, pending.step, approver)
                if key in self.answered or approver in pending.approved_by:
                    continue
                if self.before_answer is not None:
                    await self.before_answer()
                if self.answer is not None:
                    if await self.answer(pending, approver):
                        self.answered.add(key)
                    continue
                request = build_request(
                    pending, approver, ApprovalDecision.APPROVE, "drill approval", via="api"
                )
                try:
                    async with asyncio.timeout(20):
                        await submit(self.client, sign(request, registry.private_key(approver)))
                    self.answered.add(key)
                except ApprovalRefusedError as refused:
                    if refused.code == "duplicate_approver":
                        self.answered.add(key)
                except (NotWaitingError, RPCError, TimeoutError):
                    pass  # the run moved on, or a worker or the server is down: next pass

    async def settle(
        self, deadline_seconds: float, tick: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Answer approvals, revive dead workers and wait until every run closed."""
        assert self.fleet is not None
        open_runs = set(self.run_ids)
        deadline = time.monotonic() + deadline_seconds
        while open_runs and time.monotonic() < deadline:
            self.fleet.revive()
            if self.approvals and not self.hold_approvals:
                await self.answer_pending()
            if tick is not None:
                await tick()
            for run_id in list(open_runs)[:200]:
                assert self.client is not None
                try:
                    description = await self.client.get_workflow_handle(run_id).describe()
                except RPCError:
                    break
                if description.status != WorkflowExecutionStatus.RUNNING:
                    open_runs.discard(run_id)
                    if description.close_time and description.start_time:
                        elapsed = description.close_time - description.start_time
                        self.tally.latencies.append(elapsed.total_seconds())
            await asyncio.sleep(0.3)
        self.tally.lost.extend(sorted(open_runs))

    # -- the books ---------------------------------------------------------------------------

    async def audit(self) -> Tally:
        assert self.client is not None
        allowed_keys: set[str] = set()
        for run_id in sorted(self.run_ids):
            handle = self.client.get_workflow_handle(run_id, result_type=RunSummary)
            history = await handle.fetch_history()
            allowed_keys |= _scheduled_keys(history)
            description = await handle.describe()
            if description.status != WorkflowExecutionStatus.COMPLETED:
                if run_id not in self.tally.lost:
                    self.tally.lost.append(run_id)
                continue
            summary = await handle.result()
            self.tally.outcomes[summary.outcome.value] += 1
            self.tally.unauthorized += [f"{run_id}: {p}" for p in ungated_tool_calls(history)]
            approvals = audit_approvals(history)
            if not approvals.ok:
                self.tally.unauthorized += [
                    f"{run_id}: {f.subject}: {f.detail}" for f in approvals.findings if not f.ok
                ]
        self._count_effects(allowed_keys)
        self.tally.faults.update(self.fired())
        return self.tally

    def _count_effects(self, allowed_keys: set[str]) -> None:
        store = self.store()
        refunds = Counter(r["order_id"] for r in store.rows("refunds"))
        replies = Counter(
            reply
            for t in store.rows("tickets")
            if t["id"] == "T-1001"
            for reply in json.loads(t["replies"])
        )
        deleted = {u["id"] for u in store.rows("users") if u["deleted"]}
        for run_id, i in self.run_ids.items():
            expected = [(f"refund ORD-7{i:04d}", refunds[f"ORD-7{i:04d}"])]
            expected.append((f"reply 'drill run {i}'", replies[f"drill run {i}"]))
            if self.approvals:
                expected.append((f"refund ORD-8{i:04d}", refunds[f"ORD-8{i:04d}"]))
                if i % 5 == 0:
                    expected.append((f"deletion U-9{i:04d}", int(f"U-9{i:04d}" in deleted)))
            for effect, count in expected:
                if count > 1:
                    self.tally.duplicate_effects.append(f"{run_id}: {effect} applied {count}x")
                elif count == 0 and run_id not in self.tally.lost:
                    self.tally.missing_effects.append(f"{run_id}: {effect} never applied")
        for row in store.rows("applied_keys"):
            if row["key"] not in allowed_keys:
                self.tally.unauthorized.append(
                    f"store: {row['tool']} applied under key {row['key']} that no history allowed"
                )

    async def close(self) -> None:
        if self.fleet is not None:
            self.fleet.stop()
        self.server.kill()


def _scheduled_keys(history: Any) -> set[str]:
    """Idempotency keys of the tool calls this history scheduled (checked by the caller)."""
    keys = set()
    prefix = tool_activity_name("")
    for event in history.events:
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name.startswith(prefix):
            keys.add(ToolCallInput.model_validate(decode(attrs.input.payloads[0])).idempotency_key)
    return keys
