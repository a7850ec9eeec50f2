"""Flips: where two policy sets decide one call differently, and which policies did it.

A flip compares the decision one policy set reached on a call (the set the run was pinned
to) with the decision another reaches on the same call in the same context (a candidate, or
the pinned set with its log-only policies enforced). Only what changes what happens counts:
a call that would be denied instead of run or held, run or held instead of denied, or held
for more or fewer people (its tier raised or lowered). A deny for another reason, or an
allow under other permits, is no flip.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field


class FlipKind(StrEnum):
    ALLOW_TO_DENY = "allow_to_deny"
    DENY_TO_ALLOW = "deny_to_allow"
    TIER_RAISED = "tier_raised"
    TIER_LOWERED = "tier_lowered"


class Flip(BaseModel):
    """One call decided differently.

    Attributes:
        kind: What changed.
        before / after: The two outcomes, as people read them (``allow (tier 2)``,
            ``needs 2 approvals (tier 4)``, ``deny (policy_forbid)``).
        policy_ids: The policies the flip is put down to: the forbids that now deny (or,
            when nothing permits any more, the permits that did), the forbids that no longer
            deny (or the permits that now allow), the ``@approval`` policies that raised the
            tier (or that raised it before).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FlipKind
    tool: str
    before: str
    after: str
    policy_ids: list[str] = Field(default_factory=list)


class Decided(Protocol):
    """What a flip reads of a decision. Decisions record flips (``would_flip``, for
    log-only policies), so this module describes them rather than importing them."""

    @property
    def verdict(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def tool(self) -> str | None: ...
    @property
    def tier(self) -> int | None: ...
    @property
    def policy_ids(self) -> list[str]: ...
    @property
    def tier_policy_ids(self) -> list[str]: ...


def outcome(decision: Decided) -> str:
    """What a decision lets happen, in a few words."""
    if decision.verdict == "deny":
        return f"deny ({decision.code})"
    if decision.verdict == "needs_dual_approval":
        return f"needs 2 approvals (tier {decision.tier})"
    if decision.verdict == "needs_approval":
        return f"needs 1 approval (tier {decision.tier})"
    return f"allow (tier {decision.tier})"


def flip(before: Decided, after: Decided, only: frozenset[str] | None = None) -> Flip | None:
    """How ``after`` differs from ``before`` in what it lets happen, or None if it does not.
    With ``only``, the flip is put down to those of its policies in ``only`` (the log-only
    ones, when ``after`` is the decision with them enforced)."""
    kind: FlipKind
    denied_before, denied_after = before.verdict == "deny", after.verdict == "deny"
    if denied_after and not denied_before:
        kind = FlipKind.ALLOW_TO_DENY
        ids = after.policy_ids or before.policy_ids
    elif denied_before and not denied_after:
        kind = FlipKind.DENY_TO_ALLOW
        ids = before.policy_ids or after.policy_ids
        if only is not None:
            ids = after.policy_ids  # a log-only permit now allows it
    elif denied_before or before.tier == after.tier:
        return None
    elif (after.tier or 0) > (before.tier or 0):
        kind, ids = FlipKind.TIER_RAISED, after.tier_policy_ids
    else:
        kind, ids = FlipKind.TIER_LOWERED, before.tier_policy_ids
    if only is not None:
        ids = [pid for pid in ids if pid in only] or ids
    return Flip(
        kind=kind,
        tool=after.tool or before.tool or "",
        before=outcome(before),
        after=outcome(after),
        policy_ids=sorted(ids),
    )
