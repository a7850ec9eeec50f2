"""The kill switch as a run hears of it: an operator's pause and disabled tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tiergate.core._payloads import ControlCommand


@dataclass
class KillSwitch:
    """An operator's pause and disabled tools, as the run has heard of them."""

    paused: bool = False
    paused_seconds: float = 0.0
    disabled: set[str] = field(default_factory=set)
    commands: list[dict[str, Any]] = field(default_factory=list)

    def apply(self, command: ControlCommand, now: datetime) -> None:
        if command.action == "pause":
            self.paused = True
        elif command.action == "resume":
            self.paused = False
        elif command.action == "disable_tool" and command.tool:
            self.disabled.add(command.tool)
        elif command.action == "enable_tool" and command.tool:
            self.disabled.discard(command.tool)
        self.commands.append({**command.model_dump(), "at": now.isoformat()})

    def memo(self) -> dict[str, Any]:
        """The switch as the run's memo shows it: who did what when, the last twenty."""
        return {
            "paused": self.paused,
            "disabled_tools": sorted(self.disabled),
            "events": self.commands[-20:],
        }
