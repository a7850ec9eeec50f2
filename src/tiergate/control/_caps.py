"""Caps: how many calls, or how much of an argument, an agent may spend per time window.

A cap is counted by whoever owns the effect's backend, in the same transaction as the
effect, so a counted call and its effect cannot part (a crash between them would otherwise
leak a count or an effect). This module says which counter a call is charged to and how
much: fixed UTC windows, keyed by agent, cap and window.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from tiergate.core import Cap

_WINDOWS = {"minute": "%Y-%m-%dT%H:%M", "hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d"}


def cap_window(cap: Cap, now: datetime) -> str:
    """The window ``now`` falls in, e.g. ``2026-12-01`` for a daily cap."""
    return now.strftime(_WINDOWS[cap.window])


def cap_counter(agent: str, cap: Cap, window: str) -> str:
    """The counter of ``agent``'s ``cap`` in ``window``: one per agent, cap and window."""
    return f"{agent}:{cap.name}:{window}"


def cap_amount(cap: Cap, arguments: dict[str, Any]) -> Decimal:
    """How much of the cap's summed field a call spends (0 for a cap on calls alone)."""
    return Decimal(str(arguments.get(cap.sum_field, 0))) if cap.sum_field else Decimal(0)


def caps_for(tool: str, caps: list[Cap] | tuple[Cap, ...]) -> list[Cap]:
    """The caps that count calls of ``tool``."""
    return [cap for cap in caps if tool in cap.tools]
