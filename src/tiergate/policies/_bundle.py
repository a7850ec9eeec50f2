"""The policy set a run is pinned to: text, content hash and per-policy annotations."""

from __future__ import annotations

from functools import lru_cache

import cedarpy
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
