"""Payloads and names shared by workflows, activities and clients.

Each activity takes one typed input and returns one typed output, so fields can be added
later without breaking running workflows. Activity names are a contract: old histories
replay against them and tests register fakes under them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.common import SearchAttributeKey

TASK_QUEUE = "tiergate"
WORKFLOW_NAME = "AgentRunWorkflow"

LOAD_AGENT_ACTIVITY = "agent__load"
CLASSIFY_ACTIVITY = "model__classify"
PROPOSE_ACTIVITY = "model__propose"
TOOL_ACTIVITY_PREFIX = "tool__"
APPROVERS_SNAPSHOT_ACTIVITY = "approvers__snapshot"
APPROVER_STATUS_ACTIVITY = "approvers__status"
NOTIFY_OVERDUE_ACTIVITY = "notify__approval_overdue"
REVIEW_ENQUEUE_ACTIVITY = "review__enqueue"
APPROVAL_UPDATE = "approval"
#: Signal of the kill switch: pause/resume a run, disable/enable a tool in it.
CONTROL_SIGNAL = "control"
PENDING_APPROVAL_QUERY = "pending_approval"
#: Memo key holding the pending action while a run waits, so lists need no worker.
PENDING_MEMO = "tiergate.pending"

#: Visibility: runs waiting for people, listable across runs (`tiergate approvals list`).
PENDING_APPROVAL_ATTRIBUTE = SearchAttributeKey.for_bool("TiergatePendingApproval")
AGENT_ATTRIBUTE = SearchAttributeKey.for_keyword("TiergateAgent")
#: Set at start on shadow re-runs (`tiergate shadow`), so reports can leave them out.
SHADOW_ATTRIBUTE = SearchAttributeKey.for_bool("TiergateShadow")
#: Set at start by rollouts: the agent version a run was routed to, and the variant.
AGENT_VERSION_ATTRIBUTE = SearchAttributeKey.for_keyword("TiergateAgentVersion")
VARIANT_ATTRIBUTE = SearchAttributeKey.for_keyword("TiergateVariant")
SEARCH_ATTRIBUTES = (
    PENDING_APPROVAL_ATTRIBUTE,
    AGENT_ATTRIBUTE,
    SHADOW_ATTRIBUTE,
    AGENT_VERSION_ATTRIBUTE,
    VARIANT_ATTRIBUTE,
)

#: Most bytes of a model's raw output kept in history; the full text is in the content store.
MAX_RAW_OUTPUT_CHARS = 32_000
#: Most bytes of a tool result previewed in history; the full result is in the content store.
MAX_PREVIEW_CHARS = 1_000
#: A run input larger than this is refused before the run starts (Temporal caps payloads at 2 MB).
MAX_RUN_INPUT_BYTES = 256_000
#: The raw proposal's kind when a provider answered with several tool calls at once.
MULTIPLE_TOOL_CALLS = "multiple_tool_calls"
#: What to do instead of sending a large document as run input.
LARGE_INPUT_FIX = "put large documents (tickets, attachments) in a store and pass their id"


def oversized_run_input(raw: Any) -> str | None:
    """Why ``raw`` (a run input as sent to Temporal) is too large, or None when it fits.

    Pure, so the client refuses before starting and the workflow, for input sent around
    the client, fails the run with the same measure and words.
    """
    size = len(json.dumps(raw, default=str))
    if size > MAX_RUN_INPUT_BYTES:
        return f"run input is {size} bytes; the limit is {MAX_RUN_INPUT_BYTES}"
    return None


def tool_activity_name(tool: str) -> str:
    return f"{TOOL_ACTIVITY_PREFIX}{tool}"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSpec(_Payload):
    """Which provider and model a tier name maps to.

    Attributes:
        provider: ``demo`` (rule-based, offline), ``scripted`` (proposals from a file or an
            inline list) or ``openai`` (any OpenAI-compatible chat-completions endpoint).
        model: The model id requested; the id the provider reports is recorded separately.
        base_url: Endpoint root for ``openai`` providers, e.g. ``http://localhost:11434/v1``.
        api_key_env: Name of the environment variable holding the API key (never the key).
        script: For ``scripted``: a path to a YAML/JSON list, or the list itself.
        timeout_seconds: Per-attempt timeout of one model call.
        expected_models: Reported model ids accepted for this pin (shell-style patterns).
            Default: the pinned id itself or a dated/revision variant of it
            (``gpt-4o-2024-08-06``, ``claude-x-20241022``, ``demo-frontier@rules-1``).
        fingerprints: Accepted provider fingerprints (``system_fingerprint``); unset means
            any, but a change within a run is still flagged.
        script_start: The step (0-based) ``script[0]`` answers; set by ``for_step``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: Literal["demo", "scripted", "openai"] = "demo"
    model: str = "demo-frontier"
    base_url: str | None = None
    api_key_env: str | None = None
    script: str | list[Any] | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    expected_models: list[str] | None = None
    fingerprints: list[str] | None = None
    script_start: Annotated[int, Field(ge=0)] = 0

    def for_step(self, step: int) -> ModelSpec:
        """What one model activity needs: a scripted model's output for ``step`` (1-based),
        not the whole script, so a model activity's input does not grow with the run."""
        if self.provider != "scripted" or not isinstance(self.script, list):
            return self
        first = step - 1 - self.script_start
        return self.model_copy(
            update={"script": self.script[first : first + 1], "script_start": step - 1}
        )


class RunInput(_Payload):
    """What a backend sends to start a run.

    Attributes:
        agent: Name of an agent config known to the worker.
        input: The task, as plain JSON (for the support agent: ``{"ticket_id": "T-1001"}``).
        requester: Who asked for the run; recorded and never allowed to approve its actions.
        model_overrides: Replace a tier's model for this run (evals, shadow runs, tests).
        agent_version: Load this version of the agent (rollouts); default: the only one.
        routing: Which rollout variant served the run, and why.
        continue_as_new_after_events: Continue as new once the history has this many events
            (default 8,000, below Temporal's 10,240 warning); tests and benchmarks lower it.
        record_format: How the run lays out its records in history, pinned at start so a
            replay reads them the way they were written (see ``RECORD_FORMAT``). Leave it at
            its default; input without it is a run from before format 3.
    """

    agent: Annotated[str, Field(min_length=1, max_length=100)]
    input: dict[str, Any] = Field(default_factory=dict)
    requester: Annotated[str, Field(max_length=200)] = "anonymous"
    model_overrides: dict[str, ModelSpec] = Field(default_factory=dict)
    agent_version: str | None = None
    routing: Routing | None = None
    continue_as_new_after_events: Annotated[int, Field(ge=50)] | None = None
    record_format: Literal[3] = 3


RECORD_FORMAT_FIELD = "record_format"
"""Run input with this field pins its record format. Formats:

1. A step mark (memo upsert) at every change of a step.
2. Lean marks (patch ``lean-step-marks``): no mark where the history already holds the state.
3. As 2, and the allow rides in the tool's own ActivityTaskScheduled event (the
   ``ToolCallInput`` carries the verdict's evidence and approvals) instead of a mark before
   it. No patch marker either: the input pins the format.
"""


class ControlCommand(_Payload):
    """An operator's kill-switch command to a running run (recorded in its history)."""

    action: Literal["pause", "resume", "disable_tool", "enable_tool"]
    tool: str | None = None
    by: str = "operator"
    reason: str = ""


class LoadAgentInput(_Payload):
    agent: str
    version: str | None = None


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
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens


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


class ModelResponse(_Payload):
    """What a provider said, before tiergate validates it into a proposal.

    Attributes:
        raw: The proposal as the provider gave it: a dict when it was JSON, else the text
            (cut to MAX_RAW_OUTPUT_CHARS; ``raw_size`` is the full size).
        reported_model: The model id as the provider reported it.
        transcript_head: Hash of the transcript including this response.
        attempt: Temporal's attempt number, so retries are charged to the budget.
        record_ref: The redacted prompt/response record of this call in the content store.
    """

    raw: dict[str, Any] | str
    raw_size: int
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

    It carries the decision's evidence (digest, policy ids and version, tier, code, reason and
    the verified approvers) so the ActivityTaskScheduled event alone shows which allow the
    call ran under. From record format 3 this event *is* the allow's record: the record and
    the action it allows are one event, so neither can be in history without the other.
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
    caps: list[Cap] = Field(default_factory=list)
    code: str = ""
    reason: str = ""
    approved_by: list[str] = Field(default_factory=list)


class ToolResult(_Payload):
    """A tool's answer. The full output lives in the content store (``output_ref``).

    Attributes:
        ok: False when the backend refused the call (``error`` says why).
        preview: At most MAX_PREVIEW_CHARS of the JSON output, for the history and timelines.
        contains_pii: Whether the PII detector found personal data in the full output.
        replayed: True when the backend had already applied this idempotency key.
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


class RegistryRequest(_Payload):
    run_id: str


class ApproverStatusInput(_Payload):
    name: str


class ApproverStatus(_Payload):
    """The live registry's view of one approver, checked when an approval is applied."""

    known: bool
    active: bool
    key_id: str = ""


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
