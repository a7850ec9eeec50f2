"""Rollouts of agent versions: the state, the routing of new runs, the promotion criteria.

A rollout puts a candidate version of an agent beside its primary. In *shadow* mode every
new run goes to the primary and the candidate re-runs finished primary runs with writes
simulated (`tiergate.forensics` shadows). In *canary* mode a share of new runs goes to the
candidate, sticky by a key of the run's input (a customer id), so one customer does not
flip between versions. Promotion criteria compare the candidate with the primary on the
runs themselves. Routing and criteria are pure; the state is a small JSON file under the
tiergate home, changed only by `tiergate rollout`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from tiergate.core import Routing


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
    rollout: Rollout | None, run_input: dict[str, Any], fallback_key: str
) -> tuple[str | None, Routing]:
    """(agent version, routing) for a new run of ``rollout.agent`` with ``run_input``."""
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
    """Rollouts by agent, in one JSON file (written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Rollout]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {name: Rollout.model_validate(value) for name, value in data.items()}

    def get(self, agent: str) -> Rollout | None:
        return self._read().get(agent)

    def put(self, rollout: Rollout) -> None:
        rollouts = self._read()
        rollouts[rollout.agent] = rollout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({k: v.model_dump(mode="json") for k, v in rollouts.items()}, out, indent=2)
        os.replace(tmp, self.path)
