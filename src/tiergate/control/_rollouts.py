"""Rollouts of agent versions: the state, the routing of new runs, the promotion criteria.

A rollout puts a candidate version of an agent beside its primary. In *shadow* mode every
new run goes to the primary and the candidate re-runs finished primary runs with writes
simulated (`tiergate.forensics` shadows). In *canary* mode a share of new runs goes to the
candidate, sticky by a key of the run's input (a customer id), so one customer does not
flip between versions. Promotion criteria compare the candidate with the primary on the
runs themselves. Routing and criteria are pure; the state is in the shared store (`tiergate.state`), read
by every worker's load activity and changed only by `tiergate rollout`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from tiergate.core import Routing
from tiergate.state import Database, Tx


class Criteria(BaseModel):
    """When a candidate may be promoted, each compared with the primary over the window.

    Attributes:
        min_runs: Finished candidate runs needed before any verdict.
        success_rate_drop: The candidate's success rate may be at most this much lower.
        cost_increase: Cost per completed task may be at most this fraction higher.
        violations_increase: Policy denials per run may be at most this much higher.
        escalation_increase: The escalation rate may be at most this much higher.
    """

    min_runs: int = 20
    success_rate_drop: float = 0.02
    cost_increase: float = 0.10
    violations_increase: float = 0.0
    escalation_increase: float = 0.05


class Event(BaseModel):
    at: str
    action: str
    detail: str


class Rollout(BaseModel):
    agent: str
    primary: str
    candidate: str | None = None
    mode: Literal["off", "shadow", "canary"] = "off"
    share: float = Field(default=0.0, ge=0, le=1)
    key: str = "customer_id"
    criteria: Criteria = Field(default_factory=Criteria)
    events: list[Event] = Field(default_factory=list)

    def log(self, action: str, detail: str) -> None:
        self.events.append(Event(at=datetime.now(UTC).isoformat(), action=action, detail=detail))


def bucket(agent: str, key: str) -> float:
    """A stable number in [0, 1) for ``key``: the same customer always lands the same way."""
    digest = hashlib.sha256(f"{agent}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route(
    rollout: Rollout | None, run_input: Mapping[str, Any], fallback_key: str
) -> tuple[str | None, Routing]:
    """(agent version, routing) for a new run of ``rollout.agent`` with ``run_input``
    (the input itself or its `routing_keys`: both route alike)."""
    if rollout is None:
        return None, Routing(variant="primary", reason="no rollout: the agent's only version")
    if rollout.mode != "canary" or rollout.candidate is None:
        return rollout.primary, Routing(
            variant="primary", reason=f"primary {rollout.primary} (rollout mode {rollout.mode})"
        )
    value = run_input.get(rollout.key)
    sticky = value is not None
    key = str(value) if sticky else fallback_key
    share_of = bucket(rollout.agent, key)
    label = f"{rollout.key}={key}" if sticky else f"no {rollout.key} in the input, by run id {key}"
    if share_of < rollout.share:
        return rollout.candidate, Routing(
            variant="canary",
            reason=f"canary: {label} -> bucket {share_of:.4f} < share {rollout.share:.2f}",
        )
    return rollout.primary, Routing(
        variant="primary",
        reason=f"primary: {label} -> bucket {share_of:.4f} >= share {rollout.share:.2f}",
    )


class RolloutStore:
    """Rollouts by agent in the shared store: the state of each, and its event list."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @staticmethod
    def _read(tx: Tx, agent: str) -> Rollout | None:
        row = tx.one("SELECT body FROM rollouts WHERE agent = ?", (agent,))
        if row is None:
            return None
        events = tx.all(
            "SELECT at, action, detail FROM rollout_events WHERE agent = ? ORDER BY id",
            (agent,),
        )
        rollout = Rollout.model_validate_json(row[0])
        rollout.events = [
            Event(at=at, action=action, detail=detail) for at, action, detail in events
        ]
        return rollout

    def get(self, agent: str) -> Rollout | None:
        return self.database.transaction(lambda tx: self._read(tx, agent))

    def change(self, agent: str, edit: Callable[[Rollout | None], Rollout]) -> Rollout:
        """``edit`` applied to ``agent``'s current rollout in one transaction (run again if a
        concurrent change wins), so two operators never lose each other's change; events
        ``edit`` logs are appended to the list."""

        def work(tx: Tx) -> Rollout:
            current = self._read(tx, agent)
            known = len(current.events) if current else 0
            rollout = edit(current.model_copy(deep=True) if current else None)
            if rollout.agent != agent:
                raise ValueError(f"a change of {agent}'s rollout returned {rollout.agent}'s")
            body = rollout.model_dump_json(exclude={"events"})
            tx.execute(
                "INSERT INTO rollouts VALUES (?, ?) ON CONFLICT (agent) "
                "DO UPDATE SET body = excluded.body",
                (agent, body),
            )
            for event in rollout.events[known:]:
                tx.execute(
                    "INSERT INTO rollout_events (agent, at, action, detail) VALUES (?, ?, ?, ?)",
                    (agent, event.at, event.action, event.detail),
                )
            return rollout

        return self.database.transaction(work)

    def put(self, rollout: Rollout) -> None:
        """Store ``rollout`` as read and changed by the caller: its events past those stored
        are appended. Prefer `change`, which cannot lose a concurrent change."""
        self.change(rollout.agent, lambda _current: rollout)
