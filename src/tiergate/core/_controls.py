"""The kill switch as a run hears of it: an operator's pause and disabled tools.

Anyone with namespace access can send the `control` signal, so a command counts only when
an operator signed it for this execution (`refusal_of`); an unsigned, foreign, stale or
replayed one changes nothing and is recorded with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tiergate.core._answers import RegistrySnapshot, verify_signature
from tiergate.core._payloads import ControlCommand

#: The longest a signed command may stay valid, counted from when the run hears it.
MAX_COMMAND_TTL = timedelta(minutes=10)


def refusal_of(
    command: ControlCommand,
    operators: RegistrySnapshot,
    execution: tuple[str, str],
    seen: set[str],
    now: datetime,
) -> str | None:
    """None when ``command`` may be applied to ``execution`` (workflow id, first run id),
    else why not."""
    operator = operators.approvers.get(command.by)
    if operator is None or not operator.active:
        return f"{command.by!r} is not an active operator of this run"
    if not command.signature or not verify_signature(
        command.signing_message(), command.signature, operator.public_key
    ):
        return f"the signature does not verify with {operator.key_id}"
    if (command.run_id, command.first_run_id) != execution:
        return f"signed for execution {command.run_id}/{command.first_run_id}"
    if not command.command_id or command.command_id in seen:
        return "a command id this run has already heard"
    if command.expires_at is None or command.expires_at <= now:
        return "the signed command has expired"
    if command.expires_at - now > MAX_COMMAND_TTL:
        return f"signed to stay valid longer than {MAX_COMMAND_TTL.total_seconds():.0f} s"
    return None


@dataclass
class KillSwitch:
    """An operator's pause and disabled tools, as the run has heard of them."""

    paused: bool = False
    paused_seconds: float = 0.0
    disabled: set[str] = field(default_factory=set)
    commands: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)

    def hear(
        self,
        command: ControlCommand,
        now: datetime,
        operators: RegistrySnapshot,
        execution: tuple[str, str],
    ) -> bool:
        """Apply ``command`` if an operator signed it for ``execution``; else record it as
        ignored. Returns whether it was applied."""
        seen = {c.get("command_id", "") for c in self.commands}
        why = refusal_of(command, operators, execution, seen, now)
        if why is None:
            self.apply(command, now)
            return True
        entry = command.model_dump(mode="json", include={"action", "tool", "by", "command_id"})
        self.ignored.append({**entry, "at": now.isoformat(), "why": why})
        return False

    def apply(self, command: ControlCommand, now: datetime) -> None:
        """Apply a verified command (`hear` verifies; a carry re-applies what it held)."""
        if command.action == "pause":
            self.paused = True
        elif command.action == "resume":
            self.paused = False
        elif command.action == "disable_tool" and command.tool:
            self.disabled.add(command.tool)
        elif command.action == "enable_tool" and command.tool:
            self.disabled.discard(command.tool)
        self.commands.append({**command.model_dump(mode="json"), "at": now.isoformat()})

    def memo(self) -> dict[str, Any]:
        """The switch as the run's memo shows it: who did what when, the last twenty."""
        return {
            "paused": self.paused,
            "disabled_tools": sorted(self.disabled),
            "events": self.commands[-20:],
            "ignored": self.ignored[-20:],
        }
