"""Decisions: the gate's verdict on one proposed call, as one of its three cases.

An `Allowed` call runs now, exactly as decided; a `Held` one waits for people; a `Denied`
one does not run. Only the cases that can run carry the call's canonical arguments and
digest as required fields, so no code can hold an allow without knowing what it allows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core._answers import ApprovalRequest
from tiergate.core._flips import Flip


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Verdict(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    NEEDS_APPROVAL = "needs_approval"
    NEEDS_DUAL_APPROVAL = "needs_dual_approval"


class _Decision(_Record):
    """What every decision says: its cause, and the evidence it was reached on.

    Attributes:
        code: Machine-readable cause, e.g. ``allowed``, ``approved``, ``policy_forbid``,
            ``no_permit``, ``unknown_tool``, ``not_in_allowlist``, ``invalid_arguments``,
            ``policy_error``, ``approval_required``, ``output_blocked``, ``tool_disabled``.
        tool: The tool named by the proposal.
        registered_tier: The tool's tier floor. ``tier``: after policy annotations.
        policy_ids: ``@id`` of every policy that matched (permits on allow, forbids on deny).
        tier_policy_ids: The policies whose ``@approval`` raised the tier.
        policy_version: The pinned policy set's content hash.
        alerts: Alert names raised by matching ``@alert`` policies.
        approved_by: The approvers whose verified approvals of exactly this call released it.
        would_flip: What the bundle's log-only policies (``@mode("log_only")``) would have
            made of the call had they been enforced, when that differs; never enforced.
    """

    code: str
    reason: str
    tool: str | None = None
    registered_tier: int | None = None
    tier: int | None = None
    policy_ids: list[str] = Field(default_factory=list)
    tier_policy_ids: list[str] = Field(default_factory=list)
    policy_version: str = ""
    alerts: list[str] = Field(default_factory=list)
    approved_by: list[str] = Field(default_factory=list)
    would_flip: Flip | None = None


class Allowed(_Decision):
    """The call may run now: exactly these canonical arguments, under this policy version.

    Attributes:
        arguments: The canonical (validated, normalized) arguments.
        call_digest: sha256 of tool + canonical arguments: what the allow is for.
        answers: For a call people released, their signed answers, exactly as verified:
            the tool runner verifies them again where the call executes.
    """

    verdict: Literal[Verdict.ALLOW] = Verdict.ALLOW
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    registered_tier: int
    tier: int
    answers: list[ApprovalRequest] = Field(default_factory=list)


class Held(_Decision):
    """The call waits for people: one approver at tier 3, two distinct ones at tier 4."""

    verdict: Literal[Verdict.NEEDS_APPROVAL, Verdict.NEEDS_DUAL_APPROVAL]
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    registered_tier: int
    tier: int

    @property
    def required_approvals(self) -> int:
        return 2 if self.verdict == Verdict.NEEDS_DUAL_APPROVAL else 1


class Denied(_Decision):
    """The call does not run. Its arguments and digest are set when they were valid."""

    verdict: Literal[Verdict.DENY] = Verdict.DENY
    arguments: dict[str, Any] | None = None
    call_digest: str | None = None


#: The gate's verdict on one proposed tool call: one of its three cases.
Decision = Annotated[Allowed | Held | Denied, Field(discriminator="verdict")]


def denial(
    decision: Allowed | Held | Denied,
    code: str,
    reason: str,
    policy_ids: list[str] | None = None,
) -> Denied:
    """``decision`` turned into a denial for ``code``, keeping the call's evidence."""
    kept = decision.model_dump(exclude={"verdict", "code", "reason", "approved_by", "answers"})
    if policy_ids is not None:
        kept["policy_ids"] = policy_ids
    return Denied(code=code, reason=reason, **kept)


class OutputCheck(_Record):
    """An output rule evaluation on content leaving the system."""

    resource: str
    field: str
    allowed: bool
    contains_pii: bool
    pii_kinds: list[str] = Field(default_factory=list)
    policy_ids: list[str] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)
    #: The log-only policies that would have blocked content this check let through.
    would_block: list[str] = Field(default_factory=list)
