"""The policy set a run is pinned to: text, content hash and per-policy annotations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PolicySource(BaseModel):
    """Where a group of policies came from, for audits ("which file said so?")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sha256: str
    policy_ids: list[str]


class PolicyBundle(BaseModel):
    """Everything the gate needs, loaded once by an activity and pinned for the run.

    Attributes:
        text: All policies, concatenated in load order; the workflow parses it once.
        schema_text: The Cedar schema the policies were validated against.
        version: ``sha256:`` of schema and text; recorded on every decision.
        annotations: ``@id`` -> that policy's annotations (``approval``, ``alert`` ...).
        sources: The files (and compiled inline rules) the text came from.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    schema_text: str
    version: str
    annotations: dict[str, dict[str, str]] = Field(default_factory=dict)
    sources: list[PolicySource] = Field(default_factory=list)
