"""The kill switch: paused agents and disabled tools, for operators in an incident.

The state lives in a small JSON file under the tiergate home (a shared volume in the
compose stack), read by the `agent__load` activity when a run starts: a paused agent's new
runs are refused, and disabled tools are pinned into the run so its gate denies them.
Running runs hear about a change through the `control` signal (`tiergate agent pause`,
`tiergate tool disable`), which the workflow records in its history; a paused run holds at
its next gate, durably, until `resume`.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field


class Switch(BaseModel):
    at: str
    by: str
    reason: str = ""


class ControlState(BaseModel):
    paused_agents: dict[str, Switch] = Field(default_factory=dict)
    disabled_tools: dict[str, Switch] = Field(default_factory=dict)


class Controls:
    def __init__(self, home: Path) -> None:
        self.path = home / "controls.json"

    def read(self) -> ControlState:
        if not self.path.exists():
            return ControlState()
        return ControlState.model_validate_json(self.path.read_text(encoding="utf-8"))

    def _write(self, state: ControlState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(state.model_dump_json(indent=2))
        os.replace(tmp, self.path)

    def _switch(self, by: str, reason: str) -> Switch:
        return Switch(at=datetime.now(UTC).isoformat(), by=by, reason=reason)

    def pause(self, agent: str, by: str, reason: str = "") -> None:
        state = self.read()
        state.paused_agents[agent] = self._switch(by, reason)
        self._write(state)

    def resume(self, agent: str) -> None:
        state = self.read()
        state.paused_agents.pop(agent, None)
        self._write(state)

    def disable(self, tool: str, by: str, reason: str = "") -> None:
        state = self.read()
        state.disabled_tools[tool] = self._switch(by, reason)
        self._write(state)

    def enable(self, tool: str) -> None:
        state = self.read()
        state.disabled_tools.pop(tool, None)
        self._write(state)


def dump(state: ControlState) -> str:
    return json.dumps(state.model_dump(), indent=2)
