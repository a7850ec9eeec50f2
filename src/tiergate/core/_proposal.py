"""Proposals: what the model may propose, and how its raw output becomes one or a recorded
reason why not."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from tiergate.core._names import MAX_TOOL_CALLS_PER_ANSWER, MULTIPLE_TOOL_CALLS, TOOL_CALLS


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCallProposal(_Record):
    """The model asks to call a tool. Nothing runs until the gate allows this exact call."""

    kind: Literal["tool_call"] = "tool_call"
    tool: Annotated[str, Field(min_length=1, max_length=200)]
    arguments: dict[str, Any] = Field(default_factory=dict)
    reason: Annotated[str, Field(max_length=2000)] = ""
    #: How sure the model says it is (0-1); below ``budgets.adaptive.min_confidence`` the
    #: run escalates instead of gating the call.
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None


class FinalAnswerProposal(_Record):
    """The model is done; the answer is checked by output rules before it leaves."""

    kind: Literal["final_answer"] = "final_answer"
    answer: Annotated[str, Field(max_length=8000)]
    reason: Annotated[str, Field(max_length=2000)] = ""
    confidence: Annotated[float, Field(ge=0, le=1)] | None = None


class EscalateProposal(_Record):
    """The model hands the task to a human."""

    kind: Literal["escalate"] = "escalate"
    reason: Annotated[str, Field(max_length=2000)] = ""


Proposal = Annotated[
    ToolCallProposal | FinalAnswerProposal | EscalateProposal, Field(discriminator="kind")
]


class ToolCallsProposal(_Record):
    """Several tool calls in one model answer, as real models propose them. Each becomes a
    step of its own — gated, budgeted, recorded, keyed and (tier 3/4) approved on its own —
    and every result goes back to the model in one turn. Never recorded as such: a step's
    record holds its own call and where in the answer it was (`CallBatch`)."""

    kind: Literal["tool_calls"] = "tool_calls"
    calls: Annotated[
        list[ToolCallProposal], Field(min_length=1, max_length=MAX_TOOL_CALLS_PER_ANSWER)
    ]


class InvalidProposal(_Record):
    """Model output that is not a valid proposal. Recorded; nothing runs on it.

    Attributes:
        excerpt: The start of the output, for the history and timelines.
        ref: For output too large to keep in history: the whole of it, in the content store.
    """

    code: Literal["not_json", "schema", "too_large", "multiple_tool_calls"]
    message: str
    excerpt: str = ""
    ref: str | None = None


_PROPOSAL = TypeAdapter(Proposal)
_CALLS = TypeAdapter(ToolCallsProposal)
#: Canonical arguments larger than this are refused: tool inputs are small by design.
MAX_ARGUMENTS_BYTES = 16_000


def parse_proposal(
    raw: dict[str, Any] | str,
    raw_size: int,
    max_chars: int,
    whole_ref: str | None = None,
    max_calls: int = 1,
) -> Proposal | ToolCallsProposal | InvalidProposal:
    """Validate raw model output. Never raises: bad output becomes an InvalidProposal.
    ``whole_ref`` is where output over ``max_chars`` was kept whole. An answer with several
    tool calls is a `ToolCallsProposal` when it has at most ``max_calls`` and every call is
    valid, else the whole answer is invalid and none of it runs; an answer of one call is
    that call."""
    excerpt = (raw if isinstance(raw, str) else json.dumps(raw, default=str))[:500]
    if raw_size > max_chars:
        return InvalidProposal(
            code="too_large",
            message=f"model output is {raw_size} chars; limit {max_chars}",
            excerpt=excerpt,
            ref=whole_ref,
        )
    data: Any = raw
    if isinstance(raw, str):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as error:
            return InvalidProposal(code="not_json", message=f"not JSON: {error}", excerpt=excerpt)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind in (MULTIPLE_TOOL_CALLS, TOOL_CALLS):
        assert isinstance(data, dict)
        calls = data.get("calls")
        count = len(calls) if kind == TOOL_CALLS and isinstance(calls, list) else data.get("count")
        if kind == MULTIPLE_TOOL_CALLS or (isinstance(count, int) and count > max_calls):
            return InvalidProposal(
                code=MULTIPLE_TOOL_CALLS,
                message=f"the model proposed {count} tool calls in one answer; this agent "
                f"takes at most {max_calls} (tools.max_parallel_calls), each gated on its own",
                excerpt=excerpt,
            )
    try:
        proposal: Proposal | ToolCallsProposal = (
            _CALLS.validate_python(data) if kind == TOOL_CALLS else _PROPOSAL.validate_python(data)
        )
    except ValidationError as error:
        return InvalidProposal(code="schema", message=_describe(error), excerpt=excerpt)
    for call in proposal.calls if isinstance(proposal, ToolCallsProposal) else [proposal]:
        size = len(json.dumps(getattr(call, "arguments", {}), default=str))
        if size > MAX_ARGUMENTS_BYTES:
            return InvalidProposal(
                code="too_large",
                message=f"arguments are {size} bytes; limit {MAX_ARGUMENTS_BYTES}",
                excerpt=excerpt,
            )
    if isinstance(proposal, ToolCallsProposal) and len(proposal.calls) == 1:
        return proposal.calls[0]
    return proposal


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in item["loc"]) or "proposal"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def by_step(
    step: int, parsed: Proposal | ToolCallsProposal | InvalidProposal
) -> dict[int, Proposal | InvalidProposal]:
    """What each step stands for, given the parsed answer of step ``step``'s model call:
    an answer with several calls is that step and the ones after it, one call each."""
    if isinstance(parsed, ToolCallsProposal):
        return {step + index: call for index, call in enumerate(parsed.calls)}
    return {step: parsed}
