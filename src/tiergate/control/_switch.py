"""The kill switch: paused agents and disabled tools, for operators in an incident.

The state lives in the shared store (`tiergate.state`), so every worker of a fleet reads
the same switches. The `agent__load` activity reads it when a run starts, whoever started
the run: a paused agent's new runs are refused (the refusal is in the run's history), and
disabled tools are pinned into the run so its gate denies them. The tool runner reads it
again before every effect. Running runs also hear about a change through the `control`
signal (`tiergate agent pause`, `tiergate tool disable`), which the workflow records in its
history; a paused run holds at its next gate, durably, until `resume`. Every change is kept
with who and when (`Controls.events`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field

from tiergate.state import Database, Tx

_AGENT = "agent_paused"
_TOOL = "tool_disabled"


class Switch(BaseModel):
    at: str
    by: str
    reason: str = ""


class SwitchEvent(BaseModel):
    at: str
    action: Literal["pause", "resume", "disable", "enable"]
    name: str
    by: str
    reason: str = ""


class ControlState(BaseModel):
    paused_agents: dict[str, Switch] = Field(default_factory=dict)
    disabled_tools: dict[str, Switch] = Field(default_factory=dict)


class Controls:
    """The kill switch in ``database``; each change is one transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def read(self) -> ControlState:
        rows = self.database.transaction(
            lambda tx: tx.all("SELECT kind, name, switched_at, switched_by, reason FROM switches")
        )
        state = ControlState()
        for kind, name, at, by, reason in rows:
            target = state.paused_agents if kind == _AGENT else state.disabled_tools
            target[name] = Switch(at=at, by=by, reason=reason)
        return state

    def switches(self) -> tuple[frozenset[str], frozenset[str]]:
        """(disabled tools, paused agents), in one read."""
        state = self.read()
        return frozenset(state.disabled_tools), frozenset(state.paused_agents)

    def events(self, limit: int = 100) -> list[SwitchEvent]:
        """The newest ``limit`` changes, oldest first."""
        rows = self.database.transaction(
            lambda tx: tx.all(
                "SELECT at, action, name, by_whom, reason FROM switch_events "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            )
        )
        return [
            SwitchEvent(at=at, action=action, name=name, by=by, reason=reason)
            for at, action, name, by, reason in reversed(rows)
        ]

    def _change(self, action: str, kind: str, name: str, by: str, reason: str) -> None:
        at = datetime.now(UTC).isoformat()

        def work(tx: Tx) -> None:
            if action in ("pause", "disable"):
                tx.execute(
                    "INSERT INTO switches VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, name) "
                    "DO UPDATE SET switched_at = excluded.switched_at, "
                    "switched_by = excluded.switched_by, reason = excluded.reason",
                    (kind, name, at, by, reason),
                )
            else:
                tx.execute("DELETE FROM switches WHERE kind = ? AND name = ?", (kind, name))
            tx.execute(
                "INSERT INTO switch_events (at, action, name, by_whom, reason) "
                "VALUES (?, ?, ?, ?, ?)",
                (at, action, name, by, reason),
            )

        self.database.transaction(work)

    def pause(self, agent: str, by: str, reason: str = "") -> None:
        self._change("pause", _AGENT, agent, by, reason)

    def resume(self, agent: str, by: str = "") -> None:
        self._change("resume", _AGENT, agent, by, "")

    def disable(self, tool: str, by: str, reason: str = "") -> None:
        self._change("disable", _TOOL, tool, by, reason)

    def enable(self, tool: str, by: str = "") -> None:
        self._change("enable", _TOOL, tool, by, "")


def dump(state: ControlState) -> str:
    return json.dumps(state.model_dump(), indent=2)
