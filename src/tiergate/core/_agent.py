"""An agent: its config as pydantic models, and the bundle a run is pinned to.

The seed article's `agent_config.yaml` loads as written (bar the policy engine, which must be
`cedar`); everything tiergate adds has a default, so the seed's small file stays valid.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tiergate.core._answers import RegistrySnapshot
from tiergate.core._cedar import PolicyBundle
from tiergate.core._names import MAX_TOOL_CALLS_PER_ANSWER
from tiergate.core._payloads import Cap, ModelSpec, Routing
from tiergate.core._tools import ToolSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelTiers(_Strict):
    """Which model tier does which job (the seed's `model_tier`)."""

    router: str | None = Field(default=None, description="Tier that classifies the request once.")
    executor: str = Field(default="frontier", description="Tier that proposes every step.")


class Prompt(_Strict):
    """A versioned prompt; the version is recorded on every run it produced."""

    version: str = "builtin-2"
    text: str = (
        "You are an agent that acts through the tools you are given. Use them to complete the "
        "task. Every tool call you propose is checked by policy before it runs; give a short "
        "reason for each call. When done, give a final answer; if you cannot proceed safely, "
        "escalate."
    )


class Prompts(_Strict):
    system: Prompt = Prompt()


class AdaptiveBudgets(_Strict):
    """What ambiguous tool results and low model confidence do to a run's budgets.

    A result is ambiguous when its tool says so (`tiergate.tools.Ambiguous`, or a value its
    spec's ``ambiguous_when`` lists), when a read returns the same answer to the same call
    again, when a tool fails with the same error again, or when an output rule withholds it.
    """

    shrink_after: Annotated[int, Field(ge=1)] = Field(
        default=2,
        description="Every this many ambiguous results, the remaining tool-call and "
        "model-call budgets shrink by their factors.",
    )
    tool_calls_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    model_calls_factor: Annotated[float, Field(gt=0, le=1)] = 0.5
    escalate_after: Annotated[int, Field(ge=1)] | None = Field(
        default=4, description="At this many ambiguous results the run stops, escalated."
    )
    min_confidence: Annotated[float, Field(ge=0, le=1)] | None = Field(
        default=None,
        description="A proposal whose `confidence` is below this escalates the run.",
    )


class Budgets(_Strict):
    """Hard limits checked in workflow code before every model call and tool call."""

    max_total_tokens: Annotated[int, Field(gt=0)] = 50_000
    max_model_calls: Annotated[int, Field(gt=0)] = 20
    max_tool_calls: Annotated[int, Field(ge=0)] = 10
    max_retries: Annotated[int, Field(ge=0)] = 6
    max_wall_time_seconds: Annotated[float, Field(gt=0)] = 300.0
    max_cost_usd: Annotated[float, Field(gt=0)] = 1.0
    max_identical_tool_calls: Annotated[int, Field(gt=0)] = 2
    max_denials: Annotated[int, Field(gt=0)] = 1
    max_invalid_proposals: Annotated[int, Field(gt=0)] = 2
    max_irreversible_actions: Annotated[int, Field(ge=0)] | None = Field(
        default=None,
        description="Irreversible tool calls (refunds, emails, deletions) allowed per run.",
    )
    adaptive: AdaptiveBudgets | None = Field(
        default=None, description="Shrink budgets on ambiguous results; escalate past a point."
    )


class Tools(_Strict):
    allowlist: list[str] = Field(default_factory=list)
    timeout_seconds: Annotated[float, Field(gt=0)] = Field(
        default=30.0,
        description="Per-attempt timeout of one tool call; a dead worker is noticed after it.",
    )
    max_parallel_calls: Annotated[int, Field(ge=1, le=MAX_TOOL_CALLS_PER_ANSWER)] = Field(
        default=8,
        description="Tool calls one model answer may propose; each is a step of its own. "
        "An answer with more is an invalid proposal and none of it runs; 1 asks providers "
        "for one call per answer.",
    )


class McpTool(_Strict):
    """One tool of an MCP server that an agent may use, and how the gate treats it.

    The server's own annotations may make it stricter (see `tiergate.mcp_servers`), never
    laxer: a tier listed here is the floor.
    """

    tier: Annotated[int, Field(ge=0, le=4)] = Field(description="Risk tier 0-4 (required).")
    kind: Literal["read", "write"] = "read"
    irreversible: bool = False
    honors_idempotency_key: bool = Field(
        default=False,
        description="The server applies a call's `_meta` idempotency key at most once.",
    )
    emits: list[str] = Field(default_factory=list)
    session_keys: list[str] = Field(
        default_factory=list,
        description="Argument fields the run remembers for policies (context.session.seen).",
    )
    session_sums: list[str] = Field(
        default_factory=list,
        description="Numeric argument fields the run sums for policies (context.session.sums).",
    )
    ambiguous_when: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Result fields and the values that make an answer ambiguous "
        "(budgets.adaptive).",
    )
    description: str | None = Field(
        default=None, description="Shown to the model; defaults to the server's description."
    )


class McpServer(_Strict):
    """A Model Context Protocol server whose listed tools the agent may use (``<name>.<tool>``).

    Exactly one of ``command`` (a process spoken to over stdio) or ``url`` (streamable HTTP).
    A tool the server offers but ``tools`` does not list is neither offered nor allowed.
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,49}$")]
    command: Annotated[list[str], Field(min_length=1)] | None = None
    url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment of the stdio server's process."
    )
    headers_env: dict[str, str] = Field(
        default_factory=dict,
        description="HTTP headers and the worker environment variables they are read from.",
    )
    cwd: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0,
        description="Every wait on the started server (a list, a call) is bounded by it.",
    )
    start_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        default=30.0,
        description="How long the server may take to start and complete its handshake: a "
        "process that imports its SDK or is fetched by npx/uvx takes longer than a call.",
    )
    tools: Annotated[dict[str, McpTool], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_reach(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                f"MCP server {self.name!r} needs exactly one of `command` (stdio) or `url` "
                "(streamable HTTP)"
            )
        if self.headers_env and self.url is None:
            raise ValueError(f"MCP server {self.name!r}: headers_env applies to a `url` server")
        if self.env and self.command is None:
            raise ValueError(f"MCP server {self.name!r}: env applies to a `command` server")
        return self

    def tool_names(self) -> list[str]:
        """The governed names of the listed tools, ``<server>.<tool>``."""
        return [f"{self.name}.{tool}" for tool in self.tools]


OnFail = Literal["escalate_to_human", "escalate_to_dual", "block", "block_and_alert"]


class PolicyRule(_Strict):
    """An inline rule; compiled into Cedar (see `tiergate.config.compile_rules`)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]
    tool: str | None = None
    condition: Annotated[str, Field(min_length=1, max_length=2000)]
    on_fail: OnFail


class Policy(_Strict):
    engine: str = "cedar"
    files: list[str] = Field(
        default_factory=list,
        description="Cedar files, relative to the config file or to the demo's policies/. "
        "None: no call is permitted (Cedar denies what no policy permits).",
    )
    rules: list[PolicyRule] = Field(default_factory=list)

    @field_validator("engine")
    @classmethod
    def _cedar_only(cls, engine: str) -> str:
        if engine != "cedar":
            raise ValueError(
                f"policy engine {engine!r} is not supported: tiergate enforces policy with Cedar. "
                "Set `engine: cedar`; inline rules (condition + on_fail) are compiled to Cedar as is"
            )
        return engine


#: Fields every step event carries, whatever `log_fields` says: invariant 5's identifying
#: fields and the step's record (inputs, outputs, reason, decision evidence, approvals).
REQUIRED_LOG_FIELDS = (
    "run_id",
    "agent",
    "prompt_version",
    "policy_version",
    "model",
    "tool_name",
    "cost_usd",
    "policy_ids",
    "reason",
    "arguments",
    "observation",
    "approvals",
)

#: Every field a step event can carry, and what it holds.
LOG_FIELDS: dict[str, str] = {
    "run_id": "the run's id (its Temporal workflow id)",
    "temporal_run_id": "Temporal's run id of this execution",
    "agent": "agent name",
    "agent_version": "agent config version",
    "config_hash": "content hash of the agent config",
    "prompt_version": "system prompt version",
    "policy_version": "content hash of the pinned policy set",
    "model": "model id the provider reported for this step",
    "tool_name": "tool the step proposed",
    "cost_usd": "model cost of this step",
    "run_cost_usd": "model cost of the run so far",
    "input_tokens": "input tokens of this step",
    "output_tokens": "output tokens of this step",
    "tier": "risk tier of the proposed call",
    "policy_ids": "policies that decided the call",
    "call_digest": "digest of tool + canonical arguments",
    "idempotency_key": "key the tool call carried",
    "requester": "who started the run",
    "route": "the router's label",
    "reason": "the model's reason (redacted)",
    "arguments": "the call's arguments (redacted)",
    "observation": "what was fed back to the model (redacted)",
    "approved_by": "approvers who released the call",
    "approvals": "each verified answer: approver, decision, when, via, how verified",
    "tool_result": "the tool's result preview (redacted)",
    "step_seconds": "work time of the step, approval wait excluded",
    "tool_ok": "whether the tool call succeeded",
}


class Observability(_Strict):
    """Tracing and the fields of each step's log event (see LOG_FIELDS)."""

    tracing: Literal["opentelemetry", "none"] = "opentelemetry"
    log_fields: list[str] = Field(
        default_factory=lambda: [
            "run_id",
            "prompt_version",
            "policy_version",
            "tool_name",
            "cost_usd",
        ]
    )

    @field_validator("log_fields")
    @classmethod
    def _known_fields(cls, fields: list[str]) -> list[str]:
        unknown = [f for f in fields if f not in LOG_FIELDS]
        if unknown:
            raise ValueError(
                f"unknown log field(s) {unknown}; known fields: {', '.join(LOG_FIELDS)}"
            )
        return fields

    @property
    def emitted_fields(self) -> list[str]:
        """The required fields, then the configured extras, each once."""
        return list(dict.fromkeys([*REQUIRED_LOG_FIELDS, *self.log_fields]))


class Limits(_Strict):
    """Blast radius: caps per tool over time windows, held across workers and restarts."""

    caps: list[Cap] = Field(default_factory=list)


class Price(_Strict):
    """USD per million tokens. Cached prompt tokens cost ``cache_read_per_mtok`` when read
    and ``cache_write_per_mtok`` when written; without those, the input price (never less
    than what a cache could cost more: a budget that overestimates stops early, one that
    underestimates does not stop)."""

    input_per_mtok: Annotated[float, Field(ge=0)]
    output_per_mtok: Annotated[float, Field(ge=0)]
    cache_read_per_mtok: Annotated[float | None, Field(ge=0)] = None
    cache_write_per_mtok: Annotated[float | None, Field(ge=0)] = None


class TierApproval(_Strict):
    """How long a tier's approvals may wait: escalate after the SLA, deny after expiry."""

    sla_seconds: Annotated[float, Field(gt=0)]
    expiry_seconds: Annotated[float, Field(gt=0)]

    @model_validator(mode="after")
    def _expiry_after_sla(self) -> TierApproval:
        if self.expiry_seconds <= self.sla_seconds:
            raise ValueError("expiry_seconds must be later than sla_seconds")
        return self


class Approvals(_Strict):
    """Human approval for tier 3 (one approver) and tier 4 (two, neither the requester).

    Attributes:
        policy_files: Cedar approver policies (who may approve what).
        tier3 / tier4: SLA and expiry of the wait, per tier.
        on_deny: After a deny or an expiry, `continue` feeds the denial back to the model;
            `escalate` ends the run as escalated.
        review_fraction: Share of allowed tier-2 actions sampled into the post-hoc review queue.
        answer_ttl_seconds: The longest a signed answer may stay valid, counted from when
            the run receives it: an answer signed to last longer is refused, so an answer
            leaked from one session cannot be held back and used much later.
    """

    # None: nobody may answer, so a held call expires undecided (fails closed).
    policy_files: list[str] = Field(default_factory=list)
    tier3: TierApproval = TierApproval(sla_seconds=4 * 3600, expiry_seconds=24 * 3600)
    tier4: TierApproval = TierApproval(sla_seconds=24 * 3600, expiry_seconds=72 * 3600)
    on_deny: Literal["continue", "escalate"] = "continue"
    review_fraction: Annotated[float, Field(ge=0, le=1)] = 0.1
    answer_ttl_seconds: Annotated[float, Field(gt=0, le=86_400)] = 900.0


def _default_models() -> dict[str, ModelSpec]:
    return {
        "small": ModelSpec(provider="demo", model="demo-small"),
        "frontier": ModelSpec(provider="demo", model="demo-frontier"),
    }


def _default_pricing() -> dict[str, Price]:
    # Notional prices so the demo's cost accounting shows real arithmetic.
    return {
        "demo-small": Price(input_per_mtok=0.15, output_per_mtok=0.60),
        "demo-frontier": Price(input_per_mtok=3.0, output_per_mtok=15.0),
    }


class AgentConfig(_Strict):
    """A named, versioned agent: models, prompts, budgets, tools, policy and pricing."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")]
    version: str | None = Field(default=None, description="Defaults to the config's content hash.")
    model_tier: ModelTiers = ModelTiers()
    models: dict[str, ModelSpec] = Field(default_factory=_default_models)
    prompts: Prompts = Prompts()
    budgets: Budgets = Budgets()
    tools: Tools = Tools()
    policy: Policy = Policy()
    observability: Observability = Observability()
    pricing: dict[str, Price] = Field(default_factory=_default_pricing)
    approvals: Approvals = Approvals()
    limits: Limits = Limits()
    mcp_servers: list[McpServer] = Field(
        default_factory=list,
        description="MCP servers whose listed tools the agent may use besides the allowlist.",
    )
    on_model_drift: Literal["continue", "stop"] = Field(
        default="continue",
        description="When a model answers as something the pin does not accept: flag the "
        "step and go on, or stop the run (outcome escalated) before acting on the answer.",
    )

    @model_validator(mode="after")
    def _tiers_have_models(self) -> AgentConfig:
        for role, tier in (
            ("router", self.model_tier.router),
            ("executor", self.model_tier.executor),
        ):
            if tier is not None and tier not in self.models:
                raise ValueError(
                    f"model_tier.{role} is {tier!r} but `models` has no such tier "
                    f"(known: {sorted(self.models)}); add models.{tier}: {{provider: ..., model: ...}}"
                )
        return self

    @model_validator(mode="after")
    def _servers_named_once(self) -> AgentConfig:
        names = [server.name for server in self.mcp_servers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(
                f"mcp_servers names {twice} more than once; give each server one entry"
            )
        return self

    @property
    def allowed_tools(self) -> list[str]:
        """Every tool the agent may call: the allowlist, then each MCP server's listed tools."""
        listed = [name for server in self.mcp_servers for name in server.tool_names()]
        return list(dict.fromkeys([*self.tools.allowlist, *listed]))

    def content_hash(self) -> str:
        """sha256 of the canonical JSON of this config: changes whenever any field changes."""
        data = self.model_dump(mode="json")
        if not self.mcp_servers:
            # Configs written before MCP servers existed keep the hash their runs recorded.
            del data["mcp_servers"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def effective_version(self) -> str:
        return self.version or self.content_hash()[:19]


class AgentFile(_Strict):
    """The file format: everything under a top-level `agent:` key, as in the seed."""

    agent: AgentConfig

    @classmethod
    def parse(cls, data: Any) -> AgentFile:
        return cls.model_validate(data)


class AgentBundle(BaseModel):
    """An agent config with everything resolved: policies compiled, scripts inlined.

    Attributes:
        config: The validated config.
        config_hash: sha256 of the config, recorded as a run's agent config version.
        source: The file it was read from.
        policy: The pinned policy set (files + compiled inline rules).
        approver_policy: The pinned approver policies (who may decide what).
        tools: The spec of each tool the agent allowlists, as the worker offered it when
            the run was pinned: the gate decides from these, so a tool that changes later
            does not change the run.
        other_tools: The worker's other tools, by name (a call to one is ``not_in_allowlist``
            rather than ``unknown_tool``).
        tool_schemas_hash: sha256 of the allowlisted tools' specs, recorded in versions.
        disabled_tools: Tools an operator had disabled when the run started.
        offline_model_overrides: Whether the worker that loaded it lets a run bring its own
            offline model (a script): on in dev, tests, evals and shadows, off by default.
        operators: The operator registry when the run started: whose signed kill-switch
            commands it obeys.
        routing: Which rollout variant the load activity chose for the run, and why (None
            in histories from before routing moved into the run).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    config: AgentConfig
    config_hash: str
    source: str
    policy: PolicyBundle
    approver_policy: PolicyBundle
    tools: dict[str, ToolSpec]
    other_tools: list[str] = Field(default_factory=list)
    tool_schemas_hash: str
    disabled_tools: list[str] = Field(default_factory=list)
    offline_model_overrides: bool = False
    operators: RegistrySnapshot = Field(default_factory=RegistrySnapshot)
    routing: Routing | None = None
