"""Rewrites of a gate's decision by what the run knows and the gate does not: an operator's
disabled tools, and the writes the run has already made.

Both only ever make a decision stricter: a disabled tool's call is denied, a repeated
write is held for a person.
"""

from __future__ import annotations

from typing import TypeVar

from tiergate.core._decision import Allowed, Decision, Denied, Held, Verdict, denial
from tiergate.core._tools import ToolKind, ToolSpec

_D = TypeVar("_D", bound=Allowed | Held | Denied)


def unless_disabled(decision: _D, disabled: set[str]) -> _D | Denied:
    """``decision``, or its denial ``tool_disabled`` when an operator disabled its tool."""
    if decision.tool not in disabled or isinstance(decision, Denied):
        return decision
    reason = f"{decision.tool} is disabled by an operator (kill switch)"
    return denial(decision, "tool_disabled", reason, policy_ids=[])


def unless_repeated_write(decision: Decision, spec: ToolSpec | None, times_made: int) -> Decision:
    """An identical write (same tool, same canonical arguments) made again in one run is
    what a hostile or looping model does to apply one refund twice: it waits for one
    approver (``repeated_write``), whatever its tier, instead of running on the first allow.
    ``times_made`` is how often the run has already made exactly this call."""
    if (
        not isinstance(decision, Allowed)
        or spec is None
        or spec.kind is not ToolKind.WRITE
        or not times_made
    ):
        return decision
    return Held(
        **decision.model_dump(exclude={"verdict", "code", "reason", "tier", "answers"}),
        verdict=Verdict.NEEDS_APPROVAL,
        code="repeated_write",
        reason=f"{decision.tool} already ran with these exact arguments in this run; "
        "a person decides whether it runs again",
        tier=max(decision.tier, 3),
    )
