"""The marker a tool raises when it cannot give a definite answer."""

from __future__ import annotations

from typing import Any


class Ambiguous(Exception):
    """Raised by a read whose answer is not definite (a carrier that has not updated, a
    search with several equally good matches): its ``output`` goes back to the model, and
    the result counts as ambiguous toward the agent's ``budgets.adaptive``. A write that
    raises it is refused (``ok`` false): whether a write took effect must be definite."""

    def __init__(self, reason: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output if output is not None else {"ambiguous": reason}
