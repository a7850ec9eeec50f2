"""Cedar as the gate evaluates it: the pinned policy set, its parsed form and request values.

Pure and deterministic: a policy set is text pinned with the run, parsed once per process
and evaluated against requests whose context is built from canonical tool arguments.
Loading policy files and generating schemas is `tiergate.policies`' job.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any

import cedarpy
from pydantic import BaseModel, ConfigDict, Field

#: ``@approval`` levels and the tier each raises a call to.
APPROVAL_LEVELS = {"human": 3, "dual": 4}
#: ``@mode`` values: enforced (the default), or evaluated and recorded but not enforced.
POLICY_MODES = ("enforce", "log_only")
LOG_ONLY = "log_only"
#: The action output rules are written against, asked for content leaving the system.
EMIT_ACTION = "tiergate.emit"
#: The resource of a run's final answer, for output rules.
FINAL_ANSWER_RESOURCE = "agent.final_answer"


class PolicySource(BaseModel):
    """Where a group of policies came from, for audits ("which file said so?")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str
    policy_ids: list[str]


class PolicyBundle(BaseModel):
    """Everything the gate needs, loaded once by an activity and pinned for the run.

    Attributes:
        text: The enforced policies, concatenated in load order; the workflow parses it once.
        log_only_text: The policies annotated ``@mode("log_only")``: evaluated with the
            enforced ones for each decision and recorded where they would change it
            (`Decision.would_flip`), never enforced (the tool runner never sees them).
        schema_text: The Cedar schema the policies were validated against.
        version: ``sha256:`` of schema and text; recorded on every decision.
        annotations: ``@id`` -> that policy's annotations (``approval``, ``alert`` ...).
        sources: The files (and compiled inline rules) the text came from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    log_only_text: str = ""
    schema_text: str
    version: str
    annotations: dict[str, dict[str, str]] = Field(default_factory=dict)
    sources: list[PolicySource] = Field(default_factory=list)

    @property
    def reads_session(self) -> bool:
        """Whether any policy reads ``context.session``: only then does the tool runner
        rebuild the run's session from its history to re-decide a call."""
        return "context.session" in self.text

    @property
    def mentions_session(self) -> bool:
        """Whether any policy, enforced or log-only, so much as mentions ``session``: looser
        than `reads_session` on purpose, for what must not guess (a comment or a
        ``context["session"]`` counts), such as whether calls may be decided side by side."""
        return "session" in self.text or "session" in self.log_only_text

    @property
    def log_only_ids(self) -> frozenset[str]:
        return frozenset(
            pid for pid, notes in self.annotations.items() if notes.get("mode") == LOG_ONLY
        )


@lru_cache(maxsize=64)
def parsed_policies(text: str) -> cedarpy.PolicySet:
    """The parsed form of a policy text, shared by every run pinned to it.

    Parsing is pure and a worker sees few distinct policy versions, while every run builds
    a gate and an approver gate: parsing per run was a measurable part of a governed run's
    worker time (bench/overhead.py). A PolicySet is only read after parsing.
    """
    return cedarpy.PolicySet.from_str(text)


@lru_cache(maxsize=1)
def no_entities() -> cedarpy.Entities:
    """The empty entity set, parsed once.

    Gate requests carry everything in their context, so they pass no entities; a list would
    be serialized and parsed again by cedarpy on every decision (about an eighth of a
    decision's Cedar time, bench/gate_latency.py). The handle is immutable.
    """
    return cedarpy.Entities.from_json_str("[]")


def _cedar_decimal(text: str) -> dict[str, Any]:
    """A decimal's text as Cedar's extension value.

    Cedar's `decimal` wants a point and one to four digits after it: a whole number gets
    ``.0`` (``100`` would otherwise be a policy error, a deny). Anything else Cedar cannot
    hold (five decimals, an exponent) stays as written and fails closed in evaluation.
    """
    if text.lstrip("-").isdigit():
        text += ".0"
    return {"__extn": {"fn": "decimal", "arg": text}}


def to_cedar_value(value: Any) -> Any:
    """A Python value as Cedar JSON: decimals become extension values, None is dropped."""
    if isinstance(value, Decimal):
        return _cedar_decimal(format(value, "f"))
    if isinstance(value, dict):
        return {k: to_cedar_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_cedar_value(v) for v in value]
    return value


def to_cedar_record(canonical: dict[str, Any], decimals: frozenset[str]) -> dict[str, Any]:
    """Canonical tool arguments (JSON mode) as a Cedar record; None attributes are omitted.

    Built from the canonical form the gate already has rather than from the model: JSON
    mode has turned sets into lists and decimals into their text, so only the ``decimals``
    need wrapping, and each decision is spared a type check per value.
    """
    return {
        name: _cedar_decimal(value) if name in decimals else value
        for name, value in canonical.items()
        if value is not None
    }
