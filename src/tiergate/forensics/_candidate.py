"""What a shadow re-run, an eval or a what-if changes about a pinned run: the candidate.

Light on purpose (no worker, no activities): reading a history and re-deciding it offline
imports this, not the shadow's private worker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from tiergate.config import load_agent
from tiergate.core import AgentBundle, TierApproval, ToolSpec
from tiergate.errors import HistoryError
from tiergate.policies import build_bundle, compile_rules, read_policy_file

#: A shadow never waits for people: a held call expires at once and ends it, escalated.
_NO_WAIT = TierApproval(sla_seconds=0.05, expiry_seconds=0.1)


class Candidate(BaseModel):
    """What a shadow changes; unset fields keep what the original run was pinned to."""

    agent_version: str | None = Field(
        default=None, description="An agent config file or name to use instead."
    )
    model: str | None = Field(default=None, description="Executor model id to use instead.")
    policies: Path | None = Field(default=None, description="Folder of .cedar files to use.")
    prompt: str | None = Field(default=None, description="System prompt text, or a file of it.")

    def describe(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.model_dump().items() if v is not None}


# -- reading the original ----------------------------------------------------------------


def candidate_bundle(
    base: AgentBundle,
    candidate: Candidate,
    agents_dir: Path | None,
    tools: Mapping[str, ToolSpec],
    *,
    shadow: bool = True,
) -> AgentBundle:
    """``base`` with the candidate's changes; for a shadow, set up to never wait for people.
    A candidate agent version is compiled against ``tools`` (the shadowing worker's); other
    candidates keep the tools, and the policy schema, the run was pinned to."""
    bundle = (
        load_agent(candidate.agent_version, agents_dir, tools) if candidate.agent_version else base
    )
    config = bundle.config
    updates: dict[str, Any] = {}
    if candidate.model:
        executor = config.model_tier.executor
        models = dict(config.models)
        pinned = models[executor]
        models[executor] = pinned.model_copy(update={"model": candidate.model})
        pricing = dict(config.pricing)
        # A candidate model without a price is priced like the pin, so costs stay comparable.
        pricing.setdefault(candidate.model, pricing[pinned.model])
        updates.update(models=models, pricing=pricing)
    if candidate.prompt:
        path = Path(candidate.prompt)
        text = path.read_text(encoding="utf-8") if path.is_file() else candidate.prompt
        version = "shadow-" + hashlib.sha256(text.encode()).hexdigest()[:12]
        updates["prompts"] = config.prompts.model_copy(
            update={
                "system": config.prompts.system.model_copy(
                    update={"text": text, "version": version}
                )
            }
        )
    if shadow:
        updates["approvals"] = config.approvals.model_copy(
            update={
                "tier3": _NO_WAIT,
                "tier4": _NO_WAIT,
                "on_deny": "escalate",
                "review_fraction": 0.0,
            }
        )
    config = config.model_copy(update=updates)
    policy = bundle.policy
    if candidate.policies is not None:
        files = sorted(candidate.policies.glob("*.cedar"))
        if not files:
            raise HistoryError(f"{candidate.policies}: no .cedar files in this folder")
        sources = [read_policy_file(f) for f in files]
        rules = compile_rules(config.policy.rules, {**tools, **bundle.tools})
        if rules:
            sources.append((f"{bundle.source}#policy.rules", rules))
        # Validated against the schema the run was pinned with: the worker's tools then.
        policy = build_bundle(sources, bundle.policy.schema_text)
    return bundle.model_copy(
        update={"config": config, "config_hash": config.content_hash(), "policy": policy}
    )
