"""What the page serves from: the Temporal client, the settings, sessions and sign-in limits."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from temporalio.client import Client

from tiergate.approvals import ApproverRegistry
from tiergate.approvals._credentials import Credentials
from tiergate.approvals._enrollments import PasskeyEnrollments
from tiergate.core import (
    APPROVERS_SNAPSHOT_ACTIVITY,
    ApproverGate,
    PendingAction,
    RegistrySnapshot,
)
from tiergate.errors import TiergateError
from tiergate.forensics import fetch_history, read_history
from tiergate.settings import Settings
from tiergate.state import Database, Tx
from tiergate.web._sessions import SessionStore

#: Failed sign-ins a key (client address, approver name) has free; each one after doubles
#: the wait before the next try, from BACKOFF_BASE seconds up to the key's cap. A key
#: without failures for FORGET_AFTER seconds starts over.
FREE_FAILURES, BACKOFF_BASE, FORGET_AFTER = 5, 1.0, 900.0
#: The longest a client address, and an approver name, can be made to wait: short for a
#: name, so a stranger guessing it delays the real approver by a minute at most (and a
#: one-time sign-in link is never held back).
CLIENT_CAP, NAME_CAP = 900.0, 60.0
#: Keys the limiter remembers; the longest quiet are forgotten first.
MAX_KEYS = 10_000
#: Runs whose pinned approver policy the page keeps in memory.
MAX_CACHED_RUNS = 2048


@dataclass
class _Failures:
    count: int
    last: float


@dataclass
class Limiter:
    """Failed sign-ins per key, with exponential backoff instead of a lock, in bounded memory."""

    max_keys: int = MAX_KEYS
    entries: OrderedDict[str, _Failures] = field(default_factory=OrderedDict)

    def blocked(self, *keys: str, now: float | None = None) -> float:
        """Seconds until every one of ``keys`` may try again (0 when none must wait)."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        for key in keys:
            entry = self.entries.get(key)
            if entry is None:
                continue
            if now - entry.last > FORGET_AFTER:
                del self.entries[key]
                continue
            wait = max(wait, _wait(key, entry.count, entry.last, now))
        return wait

    def failed(self, *keys: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        for key in keys:
            entry = self.entries.pop(key, None) or _Failures(0, now)
            self.entries[key] = _Failures(entry.count + 1, now)
        while len(self.entries) > self.max_keys:
            self.entries.popitem(last=False)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self.entries.pop(key, None)


def _cap(key: str) -> float:
    return NAME_CAP if key.startswith("name:") else CLIENT_CAP


def _wait(key: str, count: int, last: float, now: float) -> float:
    """Seconds ``key`` must still wait after ``count`` failures, the last at ``last``."""
    if count < FREE_FAILURES:
        return 0.0
    backoff: float = min(_cap(key), BACKOFF_BASE * 2.0 ** (count - FREE_FAILURES))
    return max(0.0, backoff - (now - last))


class SignInLimits(Protocol):
    """Failed sign-ins by key (``ip:…``, ``name:…``): what the page backs off on."""

    def blocked(self, *keys: str, now: float | None = None) -> float: ...
    def failed(self, *keys: str, now: float | None = None) -> None: ...
    def succeeded(self, *keys: str) -> None: ...


class SharedLimiter:
    """`Limiter`'s rules over the shared store (``signin_failures``): every replica of the
    page counts the same failures, so a guesser spreading tries over replicas backs off as
    fast as one trying a single replica. Wall-clock seconds, since replicas' monotonic
    clocks do not agree; the table holds at most ``max_keys`` rows, the longest quiet
    dropped first."""

    def __init__(self, database: Database, max_keys: int = MAX_KEYS) -> None:
        self.database, self.max_keys = database, max_keys

    def blocked(self, *keys: str, now: float | None = None) -> float:
        now = time.time() if now is None else now
        marks = ", ".join("?" * len(keys))
        rows = self.database.transaction(
            lambda tx: tx.all(
                f"SELECT key, count, last FROM signin_failures WHERE key IN ({marks})", keys
            )
        )
        waits = [
            _wait(str(key), int(count), float(last), now)
            for key, count, last in rows
            if now - float(last) <= FORGET_AFTER
        ]
        return max([0.0, *waits])

    def failed(self, *keys: str, now: float | None = None) -> None:
        moment = time.time() if now is None else now

        def work(tx: Tx) -> None:
            for key in keys:
                row = tx.one("SELECT count, last FROM signin_failures WHERE key = ?", (key,))
                fresh = row is None or moment - float(row[1]) > FORGET_AFTER
                count = 1 if fresh or row is None else int(row[0]) + 1
                tx.execute(
                    "INSERT INTO signin_failures VALUES (?, ?, ?) ON CONFLICT (key) "
                    "DO UPDATE SET count = excluded.count, last = excluded.last",
                    (key, count, moment),
                )
            total = tx.one("SELECT count(*) FROM signin_failures")
            extra = int(total[0]) - self.max_keys if total else 0
            if extra > 0:
                for (stale,) in tx.all(
                    "SELECT key FROM signin_failures ORDER BY last, key LIMIT ?", (extra,)
                ):
                    tx.execute("DELETE FROM signin_failures WHERE key = ?", (stale,))

        self.database.transaction(work)

    def succeeded(self, *keys: str) -> None:
        def work(tx: Tx) -> None:
            for key in keys:
                tx.execute("DELETE FROM signin_failures WHERE key = ?", (key,))

        self.database.transaction(work)


@dataclass
class WebContext:
    """``demo_keys``: `demo --keep` only. Approvers labeled ``demo_key`` may answer with
    the key made for them on this host (recorded ``via demo``); every other answer, and
    every answer anywhere else, is signed by the approver's passkey in their browser."""

    client: Client
    settings: Settings
    ui_url: str | None = None
    demo_keys: bool = False
    #: Failed sign-ins; None: counted in the shared store, across every page replica.
    limiter: SignInLimits | None = None
    gates: OrderedDict[str, ApproverGate] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = SharedLimiter(self.settings.database())

    @property
    def limits(self) -> SignInLimits:
        assert self.limiter is not None  # set at construction
        return self.limiter

    @property
    def registry(self) -> ApproverRegistry:
        # What the page has taken is remembered in its own home (`RegistryMemory`).
        return ApproverRegistry.of(self.settings, seen=self.settings.home / "registry-seen")

    @property
    def sessions(self) -> SessionStore:
        return SessionStore(self.settings.database())

    @property
    def enrollments(self) -> PasskeyEnrollments:
        return PasskeyEnrollments(self.settings.database())

    def approvers(self) -> RegistrySnapshot:
        """The registry's endorsed entries: who may sign in and decide."""
        return self.registry.trusted(self.settings.registry_admins)

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.settings.database())

    async def may_decide(self, approver: str, pending: PendingAction) -> bool:
        """The approver policy the run pinned, applied as the workflow will apply it."""
        entry = self.approvers().approvers.get(approver)
        if entry is None or not entry.active or approver == pending.requester:
            return False
        gate = await self._approver_gate(pending.run_id)
        if gate is None:
            return False
        allowed, _ = gate.may_decide(
            approver, entry.roles, pending.agent, pending.tool, pending.tier, pending.arguments
        )
        return allowed

    async def pinned_registry(self, run_id: str) -> RegistrySnapshot | None:
        """The registry snapshot run ``run_id``'s current wait pinned (the last one in its
        history): the keys the run will accept answers from."""
        try:
            view = read_history(await fetch_history(self.client, run_id))
        except TiergateError:
            return None
        pinned = [a.result for a in view.named(APPROVERS_SNAPSHOT_ACTIVITY) if a.result]
        return RegistrySnapshot.model_validate(pinned[-1]) if pinned else None

    async def _approver_gate(self, run_id: str) -> ApproverGate | None:
        """The approver policy run ``run_id`` is pinned to, read from its history once."""
        gate = self.gates.get(run_id)
        if gate is None:
            try:
                bundle = read_history(await fetch_history(self.client, run_id)).pinned_bundle()
            except TiergateError:
                return None
            gate = self.gates[run_id] = ApproverGate(bundle.approver_policy, bundle.tools)
            while len(self.gates) > MAX_CACHED_RUNS:
                self.gates.popitem(last=False)
        self.gates.move_to_end(run_id)
        return gate
