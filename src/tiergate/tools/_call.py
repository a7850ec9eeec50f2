"""What a tool's implementation is told about the call it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tiergate.core import Cap


@dataclass(frozen=True)
class ToolCall:
    """One verified call, as its implementation sees it.

    Attributes:
        run_id: The run's workflow id.
        step: The step of the run the call belongs to.
        agent: The agent the run acts for (its principal is ``agent:<name>``).
        idempotency_key: Stable across retries of this step: apply the effect once per key.
        credential: The short-lived token minted for exactly this call.
        caps: The agent's caps that count this tool (the backend holds their counters).
    """

    run_id: str
    step: int
    agent: str
    idempotency_key: str
    credential: str
    caps: tuple[Cap, ...] = ()


@dataclass(frozen=True)
class Replayed:
    """What a tool function returns when its call's idempotency key was already applied:
    ``output`` is the first application's answer. The run's record marks the call a replay
    (``ToolResult.replayed``), so an operator can tell a retried write from a second one.

    Return the output itself (a dict or pydantic model) when the call took effect now.
    """

    output: Any
