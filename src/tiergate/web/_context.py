"""What the page serves from: the Temporal client, the settings, sessions and sign-in limits."""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field

from temporalio.client import Client

from tiergate.approvals import ApproverRegistry
from tiergate.approvals._credentials import Credentials
from tiergate.core import ApproverGate, PendingAction
from tiergate.errors import TiergateError
from tiergate.forensics import fetch_history, read_history
from tiergate.settings import Settings
from tiergate.web._sessions import SessionStore

#: Sign-in failures allowed per client address and per approver name in the window.
MAX_FAILURES, FAILURE_WINDOW = 5, 300.0
#: Runs whose pinned approver policy the page keeps in memory.
MAX_CACHED_RUNS = 2048


@dataclass
class Limiter:
    """Sign-in failures per key (client address, approver name), over a sliding window."""

    failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def blocked(self, *keys: str) -> float:
        """Seconds until the first of ``keys`` may try again (0 when none is blocked)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            window = self.failures[key]
            while window and now - window[0] > FAILURE_WINDOW:
                window.popleft()
            if len(window) >= MAX_FAILURES:
                wait = max(wait, FAILURE_WINDOW - (now - window[0]))
        return wait

    def failed(self, *keys: str) -> None:
        for key in keys:
            self.failures[key].append(time.monotonic())


@dataclass
class WebContext:
    client: Client
    settings: Settings
    ui_url: str | None = None
    sessions: SessionStore = field(default_factory=SessionStore)
    limiter: Limiter = field(default_factory=Limiter)
    gates: OrderedDict[str, ApproverGate] = field(default_factory=OrderedDict)

    @property
    def registry(self) -> ApproverRegistry:
        return ApproverRegistry(self.settings.home)

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.settings.home)

    async def may_decide(self, approver: str, pending: PendingAction) -> bool:
        """The approver policy the run pinned, applied as the workflow will apply it."""
        entry = self.registry.snapshot().approvers.get(approver)
        if entry is None or not entry.active or approver == pending.requester:
            return False
        gate = await self._approver_gate(pending.run_id)
        if gate is None:
            return False
        allowed, _ = gate.may_decide(
            approver, entry.roles, pending.agent, pending.tool, pending.tier, pending.arguments
        )
        return allowed

    async def _approver_gate(self, run_id: str) -> ApproverGate | None:
        """The approver policy run ``run_id`` is pinned to, read from its history once."""
        gate = self.gates.get(run_id)
        if gate is None:
            try:
                bundle = read_history(await fetch_history(self.client, run_id)).pinned_bundle()
            except TiergateError:
                return None
            gate = self.gates[run_id] = ApproverGate(bundle.approver_policy)
            while len(self.gates) > MAX_CACHED_RUNS:
                self.gates.popitem(last=False)
        self.gates.move_to_end(run_id)
        return gate
