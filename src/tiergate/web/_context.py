"""What the page serves from: the Temporal client, the settings, sessions and sign-in limits."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

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
            if entry.count >= FREE_FAILURES:
                backoff = min(_cap(key), BACKOFF_BASE * 2 ** (entry.count - FREE_FAILURES))
                wait = max(wait, backoff - (now - entry.last))
        return max(wait, 0.0)

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


@dataclass
class WebContext:
    """``demo_keys``: `demo --keep` only. Approvers labeled ``demo_key`` may answer with
    the key made for them on this host (recorded ``via demo``); every other answer, and
    every answer anywhere else, is signed by the approver's passkey in their browser."""

    client: Client
    settings: Settings
    ui_url: str | None = None
    demo_keys: bool = False
    limiter: Limiter = field(default_factory=Limiter)
    gates: OrderedDict[str, ApproverGate] = field(default_factory=OrderedDict)

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
