"""Payloads shared by the workflow, its activities and its clients.

Each activity takes one typed input and returns one typed output, so fields can be added
later without breaking running workflows. Their names are in `tiergate.core.names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tiergate.core._answers import ApprovalRequest
from tiergate.core._decision import Allowed
from tiergate.core._digest import canonical_json
from tiergate.core._names import LARGE_INPUT_FIX, oversized_run_input
from tiergate.core._session import RunCounts
from tiergate.errors import RunInputError


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Payload):
    """Which provider and model a tier name maps to.

    Attributes:
        provider: ``demo`` (rule-based, offline), ``scripted`` (proposals from a file or an
            inline list), ``openai`` (any OpenAI-compatible chat-completions endpoint) or
            ``anthropic`` (Anthropic's Messages API).
        model: The model id requested; the id the provider reports is recorded separately.
        base_url: Endpoint root for ``openai`` providers, e.g. ``http://localhost:11434/v1``;
            for ``anthropic``, default ``https://api.anthropic.com/v1``.
        api_key_env: Name of the environment variable holding the API key (never the key).
        script: For ``scripted``: a path to a YAML/JSON list, or the list itself.
        timeout_seconds: Per-attempt timeout of one model call.
        expected_models: Reported model ids accepted for this pin (shell-style patterns).
            Default: the pinned id itself or a dated/revision variant of it
            (``gpt-4o-2024-08-06``, ``claude-x-20241022``, ``demo-frontier@rules-1``).
        fingerprints: Accepted provider fingerprints (``system_fingerprint``); unset means
            any, but a change within a run is still flagged.
        script_start: The answer (0-based) ``script[0]`` is; set by ``for_step``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["demo", "scripted", "openai", "anthropic"] = "demo"
    model: str = "demo-frontier"
    base_url: str | None = None
    api_key_env: str | None = None
    script: str | list[Any] | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    expected_models: list[str] | None = None
    fingerprints: list[str] | None = None
    script_start: Annotated[int, Field(ge=0)] = 0

    def for_step(self, turn: int) -> ModelSpec:
        """What one model activity needs: a scripted model's output for the run's answer
        ``turn`` (1-based; the step, until an answer proposes several tool calls), not the
        whole script, so a model activity's input does not grow with the run."""
        if self.provider != "scripted" or not isinstance(self.script, list):
            return self
        first = turn - 1 - self.script_start
        return self.model_copy(
            update={"script": self.script[first : first + 1], "script_start": turn - 1}
        )


class RunInput(_Payload):
    """What a backend sends to start a run.

    Attributes:
        agent: Name of an agent config known to the worker.
        input: The task, as plain JSON (e.g. ``{"invoice_id": "INV-7"}``).
        requester: Who asked for the run; recorded and never allowed to approve its actions.
        model_overrides: Replace a tier's model for this run (evals, shadow runs, tests).
        agent_version: Load this version of the agent, bypassing its rollout (shadows,
            evals); default: the version the agent's rollout routes the run to inside the
            run, else its only version.
        routing: Which rollout variant served the run, and why, as chosen by a client
            (histories from before routing moved into the run; new runs record it in their
            load activity's result).
        continue_as_new_after_events: Continue as new once the history has this many events
            (default 8,000, below Temporal's 10,240 warning); tests and benchmarks lower it.
    """

    agent: Annotated[str, Field(min_length=1, max_length=100)]
    input: dict[str, Any] = Field(default_factory=dict)
    requester: Annotated[str, Field(max_length=200)] = "anonymous"
    model_overrides: dict[str, ModelSpec] = Field(default_factory=dict)
    agent_version: str | None = None
    routing: Routing | None = None
    continue_as_new_after_events: Annotated[int, Field(ge=50)] | None = None


def cut(text: str | None, limit: int = 300) -> str | None:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def read_run_input(raw: Any) -> RunInput:
    """``raw`` (a run's input as Temporal delivered it) validated, or RunInputError naming
    what is wrong and the shape expected."""
    if too_large := oversized_run_input(raw):
        raise RunInputError(f"{too_large}: {LARGE_INPUT_FIX}")
    try:
        return RunInput.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
        raise RunInputError(
            f"run input fails its schema: {problems}. Expected "
            '{"agent": "<name>", "input": {...}, "requester": "...", "model_overrides": {...}}'
        ) from None


class ControlCommand(_Payload):
    """An operator's kill-switch command to one running run, signed with their key.

    A run applies it only when ``by`` is an operator in the registry it pinned, the
    signature verifies over every other field, it is for this execution (workflow id and
    first run id), it is fresh (``expires_at`` within the run's limit) and its
    ``command_id`` is new to the run; anything else is ignored and recorded.

    Attributes:
        by: The operator who signed it (`tiergate operators add`).
        signature: base64 Ed25519 signature over `signing_message()`.
    """

    action: Literal["pause", "resume", "disable_tool", "enable_tool"]
    tool: str | None = None
    by: Annotated[str, Field(max_length=100)] = "operator"
    reason: Annotated[str, Field(max_length=2000)] = ""
    run_id: Annotated[str, Field(max_length=400)] = ""
    first_run_id: Annotated[str, Field(max_length=100)] = ""
    command_id: Annotated[str, Field(max_length=100)] = ""
    expires_at: datetime | None = None
    signature: Annotated[str, Field(max_length=200)] = ""

    def signing_message(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"signature"})
        return f"tiergate-control-v1\n{canonical_json(body)}".encode()


#: The longest input value a canary is sticky by (longer ones route by run id).
ROUTING_KEY_LIMIT = 200


def routing_keys(run_input: Mapping[str, Any]) -> dict[str, str]:
    """The top-level fields of a run's input a canary can be sticky by: scalars (text,
    numbers, booleans) up to `ROUTING_KEY_LIMIT` characters, as text. What the run gives its
    load activity to route by, so the whole input is not copied into the history again."""
    keys = {}
    for name, value in run_input.items():
        if isinstance(value, str | int | float | bool) and len(str(value)) <= ROUTING_KEY_LIMIT:
            keys[name] = str(value)
    return keys


class LoadAgentInput(_Payload):
    """What the run asks its load activity for.

    Attributes:
        agent: The agent's name.
        version: The version the run's input pins (shadows, evals, a backend's choice);
            None: the agent's rollout decides, else its only version.
        route_keys: The run input's fields a canary may be sticky by (`routing_keys`).
    """

    agent: str
    version: str | None = None
    route_keys: dict[str, str] = Field(default_factory=dict)


class Routing(_Payload):
    """Why a run got the agent version it got (rollouts): recorded in its input and summary.

    Attributes:
        variant: ``primary`` or ``canary``.
        reason: e.g. ``canary: customer_id=C-17 -> bucket 0.0712 < share 0.10``.
    """

    variant: Literal["primary", "canary"] = "primary"
    reason: str = ""


class TranscriptEntry(_Payload):
    """One entry of the conversation, kept in the content store, never in every model input.

    Exactly one of ``content`` (inline, small) and ``ref`` (a content-store hash) is set.
    """

    role: Literal["system", "user", "assistant", "tool", "gate"]
    content: str | None = None
    ref: str | None = None
    name: str | None = None


class TokenUsage(_Payload):
    """Tokens of one model answer. ``input_tokens`` are the uncached prompt tokens;
    providers that cache prompts report the tokens read from and written to their cache
    apart (``cache_read_tokens``, ``cache_write_tokens``), priced apart and counted in the
    total like any other."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


class ProposeInput(_Payload):
    """Input of `model__propose`. Its size does not grow with the conversation: the
    transcript is addressed by the hash of its newest entry, plus this step's new entries."""

    run_id: str
    step: int
    agent: str
    model: ModelSpec
    transcript_head: str | None
    append: list[TranscriptEntry]
    tools: list[str]
    max_output_tokens: int
    previous_record: str | None = None
    #: Tool calls one answer may carry (``tools.max_parallel_calls``); 1 asks the provider
    #: for one call per answer.
    max_parallel_calls: int = 1


class ModelResponse(_Payload):
    """What a provider said, before tiergate validates it into a proposal.

    Attributes:
        raw: The proposal as the provider gave it: a dict when it was JSON, else the text
            (cut to MAX_RAW_OUTPUT_CHARS; ``raw_size`` is the full size).
        reported_model: The model id as the provider reported it.
        transcript_head: Hash of the transcript including this response.
        attempt: Temporal's attempt number, so retries are charged to the budget.
        record_ref: The redacted prompt/response record of this call in the content store.
        raw_ref: When the output was cut, the whole of it in the content store.
    """

    raw: dict[str, Any] | str
    raw_size: int
    raw_ref: str | None = None
    usage: TokenUsage
    reported_model: str
    transcript_head: str
    attempt: int = 1
    record_ref: str | None = None
    fingerprint: str | None = None


class ClassifyInput(_Payload):
    run_id: str
    agent: str
    model: ModelSpec
    input: dict[str, Any]


class Classification(_Payload):
    label: str
    usage: TokenUsage
    reported_model: str
    attempt: int = 1
    record_ref: str | None = None
    fingerprint: str | None = None


class Cap(_Payload):
    """A limit on an agent's use of tools over a window, across all workers and restarts.

    Attributes:
        name: Shown in the denial (``rate_limited``), e.g. ``emails_per_day``.
        tools: The tools the cap counts.
        window: ``minute``, ``hour`` or ``day`` (UTC, fixed windows).
        max_calls: At most this many calls in a window.
        sum_field / max_sum: At most this total of an argument (e.g. refund dollars).
    """

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")]
    tools: list[str]
    window: Literal["minute", "hour", "day"] = "day"
    max_calls: Annotated[int, Field(ge=0)] | None = None
    sum_field: str | None = None
    max_sum: str | None = None


class ToolCallInput(_Payload):
    """Input of a `tool__<name>` activity: only ever built from an `allow` decision.

    It carries the decision's evidence (digest, policy ids and version, tier, code, reason,
    the verified approvers and their signed answers) so the ActivityTaskScheduled event alone
    shows which allow the call ran under: the record and the action it allows are one event,
    so neither can be in history without the other. The tool runner trusts none of it: it
    re-derives the decision from the worker's own bundles, registry and controls, checking
    the claims against what it finds (`tiergate.core.verify_tool_call`).
    """

    run_id: str
    step: int
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    idempotency_key: str
    policy_version: str
    policy_ids: list[str] = Field(default_factory=list)
    tier: int = 0
    agent: str = ""
    config_hash: str = ""
    code: str = ""
    reason: str = ""
    approved_by: list[str] = Field(default_factory=list)
    approvals: list[ApprovalRequest] = Field(default_factory=list)
    #: The run's counters the gate decided with (``context.session.denials`` ...). The
    #: runner rebuilds the session's calls, sums and keys from the run's history, but takes
    #: these as the run reports them: no event of the history holds them.
    run_denials: int = 0
    run_invalid_proposals: int = 0
    run_seconds: float = 0.0

    @classmethod
    def allowing(
        cls,
        decision: Allowed,
        run_id: str,
        step: int,
        idempotency_key: str,
        agent: str,
        config_hash: str,
        counts: RunCounts | None = None,
    ) -> ToolCallInput:
        """The input of the call ``decision`` allows: the only way the run builds one."""
        return cls(
            run_id=run_id,
            step=step,
            tool=decision.tool,
            arguments=decision.arguments,
            call_digest=decision.call_digest,
            idempotency_key=idempotency_key,
            policy_version=decision.policy_version,
            policy_ids=decision.policy_ids,
            tier=decision.tier,
            agent=agent,
            config_hash=config_hash,
            code=decision.code,
            reason=cut(decision.reason) or "",
            approved_by=decision.approved_by,
            approvals=decision.answers,
            run_denials=counts.denials if counts else 0,
            run_invalid_proposals=counts.invalid_proposals if counts else 0,
            run_seconds=counts.seconds if counts else 0.0,
        )


class ToolResult(_Payload):
    """A tool's answer. The full output lives in the content store (``output_ref``).

    Attributes:
        ok: False when the backend refused the call (``error`` says why).
        preview: At most MAX_PREVIEW_CHARS of the JSON output, for the history and timelines.
        contains_pii: Whether the PII detector found personal data in the full output.
        replayed: True when the backend had already applied this idempotency key.
        checks: What the tool runner verified before the call acted, one line per check.
        ambiguous: Why the answer is not definite, when the tool said so (it raised
            `tiergate.tools.Ambiguous`, or a result field has a value its spec's
            ``ambiguous_when`` lists).
    """

    ok: bool
    output_ref: str | None = None
    output_size: int = 0
    preview: str = ""
    error: str | None = None
    contains_pii: bool = False
    pii_kinds: list[str] = Field(default_factory=list)
    replayed: bool = False
    attempt: int = 1
    code: str | None = None
    cap: str | None = None
    principal: str | None = None
    credential: str | None = None
    checks: list[str] = Field(default_factory=list)
    ambiguous: str | None = None


class RegistryRequest(_Payload):
    run_id: str


class ApproverStatusInput(_Payload):
    name: str


class ApproverStatus(_Payload):
    """The live registry's view of one approver, checked when an approval is applied.

    ``keys``: the ids of every key the entry holds now (its Ed25519 key and its passkeys);
    an answer proved by a key no longer among them is refused. Empty in histories recorded
    before passkeys, where ``key_id`` alone was compared.
    """

    known: bool
    active: bool
    key_id: str = ""
    keys: list[str] = Field(default_factory=list)


class OverdueNotice(_Payload):
    """Sent to the notification hook when an approval passes its SLA."""

    run_id: str
    agent: str
    step: int
    tool: str
    tier: int
    waiting_since: str
    expires_at: str


class NotifyResult(_Payload):
    delivered: bool
    detail: str


class ReviewItem(_Payload):
    """A tier-2 action sampled for post-hoc review."""

    run_id: str
    agent: str
    step: int
    tool: str
    arguments: dict[str, Any]
    call_digest: str
    policy_ids: list[str]
    policy_version: str
    reason: str
    result_preview: str


class ReviewEnqueued(_Payload):
    review_id: int
