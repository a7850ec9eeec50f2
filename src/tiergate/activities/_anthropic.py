"""Anthropic's Messages API as a provider (``provider: anthropic``).

Tools are offered with their JSON Schemas (dots in names become ``__``: the API allows
``[a-zA-Z0-9_-]``), plus ``final_answer`` and ``escalate``, with parallel tool use off so
every step is one action gated on its own. The transcript becomes alternating ``user`` and
``assistant`` messages: a proposed call is a ``tool_use`` block and what came back (the tool's
output or the gate's refusal) the ``tool_result`` that answers it.

Usage keeps prompt-cache tokens apart (``cache_read_input_tokens``,
``cache_creation_input_tokens``), so cost follows the agent's cached-token prices. ``429``,
``529`` (overloaded) and other ``5xx`` are transient, with ``retry-after`` passed to Temporal's
retry; any other ``4xx`` is refused for good; anything the model says, however malformed, is
returned raw for the workflow to judge.

**Decision:** httpx rather than the official SDK. The SDK retries by itself (off only by
configuration), holds its own connection pool and types, and would add a dependency to every
worker; the protocol needed here is one POST, and the OpenAI-compatible provider already
speaks httpx with the same transient/refused/raw rules.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx

from tiergate.activities._openai import (
    answer_of,
    call_arguments,
    function_name,
    proposal_of,
    proposed_calls,
    schema_with_reason,
)
from tiergate.activities._provider_http import post_json
from tiergate.activities._providers import ProviderOutput
from tiergate.core import (
    MAX_TOOL_CALLS_PER_ANSWER,
    MULTIPLE_TOOL_CALLS,
    ModelSpec,
    TokenUsage,
    ToolSpec,
    TranscriptEntry,
)

DEFAULT_BASE_URL = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"
#: Overloaded: Anthropic's "try again later", like 503.
OVERLOADED = 529

_CONTROL_TOOLS = [
    {
        "name": "final_answer",
        "description": "Finish with an answer for the user.",
        "input_schema": {
            "type": "object",
            "properties": {"answer": {"type": "string"}, "reason": {"type": "string"}},
            "required": ["answer"],
        },
    },
    {
        "name": "escalate",
        "description": "Hand the task to a human.",
        "input_schema": {
            "type": "object",
            "properties": {"reason": {"type": "string"}},
            "required": ["reason"],
        },
    },
]


def _tool(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": function_name(spec.name),
        "description": spec.description,
        "input_schema": schema_with_reason(spec),
    }


def to_messages(entries: list[TranscriptEntry]) -> tuple[str, list[dict[str, Any]]]:
    """The system prompt and alternating messages rebuilt from the transcript. The tool and
    gate entries after an answer with tool uses answer them in order; when fewer came (one
    note refused the whole answer), the last answers the uses left."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    last = ""

    def add(role: str, block: dict[str, Any]) -> None:
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append(block)  # the API wants roles to alternate
        else:
            messages.append({"role": role, "content": [block]})

    def answer_the_rest() -> None:
        for use in pending:
            add("user", {"type": "tool_result", "tool_use_id": use, "content": last})
        pending.clear()

    for index, entry in enumerate(entries):
        text = entry.content or ""
        if entry.role in ("tool", "gate") and pending:
            last = text
            add("user", {"type": "tool_result", "tool_use_id": pending.pop(0), "content": text})
            continue
        answer_the_rest()
        calls = proposed_calls(text) if entry.role == "assistant" else None
        if entry.role == "system":
            system.append(text)
        elif calls:
            for n, call in enumerate(calls):
                use = f"toolu_{index}" if len(calls) == 1 else f"toolu_{index}_{n}"
                pending.append(use)
                name = function_name(str(call.get("tool")))
                block = {"type": "tool_use", "id": use, "name": name, "input": call_arguments(call)}
                add("assistant", block)
        elif entry.role == "assistant":
            add("assistant", {"type": "text", "text": text or "(no answer)"})
        else:
            add("user", {"type": "text", "text": text or "(empty)"})
    answer_the_rest()
    if not messages or messages[0]["role"] != "user":
        messages.insert(0, {"role": "user", "content": [{"type": "text", "text": "(start)"}]})
    return "\n\n".join(system), messages


def usage_of(body: dict[str, Any]) -> TokenUsage:
    data = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    assert isinstance(data, dict)

    def count(key: str) -> int:
        value = data.get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    return TokenUsage(
        input_tokens=count("input_tokens"),
        output_tokens=count("output_tokens"),
        cache_read_tokens=count("cache_read_input_tokens"),
        cache_write_tokens=count("cache_creation_input_tokens"),
    )


def parse_message(body: dict[str, Any], tools: list[ToolSpec]) -> ProviderOutput:
    """A Messages response as a raw proposal, usage and the reported model id."""
    usage = usage_of(body)
    model = str(body.get("model") or "")
    content = body.get("content")
    if not isinstance(content, list):
        return ProviderOutput(json.dumps(body)[:2000], usage, model)
    uses = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
    text = "".join(
        str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"
    )
    if body.get("stop_reason") == "max_tokens":
        # Cut off mid-answer: whatever came is judged raw (an invalid proposal), never
        # completed into an action the model did not finish.
        return ProviderOutput(text or json.dumps(content)[:2000], usage, model)
    if not uses:
        return ProviderOutput(
            {"kind": "final_answer", "answer": text} if text else "", usage, model
        )
    if len(uses) > MAX_TOOL_CALLS_PER_ANSWER:
        # A flood is counted, not listed: the run refuses it whole, and nothing of it runs.
        names = [str(u.get("name")) for u in uses[:5]]
        return ProviderOutput(
            {"kind": MULTIPLE_TOOL_CALLS, "count": len(uses), "first": names}, usage, model
        )
    proposals: list[dict[str, Any] | str] = []
    for use in uses:
        arguments = use.get("input")
        if not isinstance(arguments, dict):
            proposals.append(json.dumps(use)[:2000])
            continue
        proposals.append(proposal_of(str(use.get("name")), arguments, tools))
    return ProviderOutput(answer_of(proposals), usage, model)


class AnthropicProvider:
    """Calls ``{base_url}/messages`` once per attempt; no client-side retries."""

    def __init__(self, spec: ModelSpec, client: httpx.Client, *, parallel: bool = True) -> None:
        self.spec = spec
        self.client = client
        self.parallel = parallel  # False: the agent takes one tool call per answer

    def _post(self, payload: dict[str, Any]) -> dict[str, Any] | str:
        headers = {"anthropic-version": API_VERSION}
        if self.spec.api_key_env and (key := os.environ.get(self.spec.api_key_env)):
            headers["x-api-key"] = key
        url = f"{(self.spec.base_url or DEFAULT_BASE_URL).rstrip('/')}/messages"
        return post_json(
            self.client, url, payload, headers, self.spec.timeout_seconds, (429, OVERLOADED)
        )

    def propose(
        self,
        entries: list[TranscriptEntry],
        tools: list[ToolSpec],
        max_output_tokens: int,
        step: int,
    ) -> ProviderOutput:
        system, messages = to_messages(entries)
        payload: dict[str, Any] = {
            "model": self.spec.model,
            "max_tokens": max_output_tokens,
            "messages": messages,
            "tools": [*(_tool(spec) for spec in tools), *_CONTROL_TOOLS],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": not self.parallel},
        }
        if system:
            payload["system"] = system
        body = self._post(payload)
        if isinstance(body, str):
            return ProviderOutput(body, TokenUsage(), self.spec.model)
        return parse_message(body, tools)

    def classify(self, task: dict[str, Any]) -> ProviderOutput:
        payload = {
            "model": self.spec.model,
            "max_tokens": 5,
            "system": "Classify the request with one word: refund, order_status, "
            "data_deletion or general.",
            "messages": [{"role": "user", "content": json.dumps(task)}],
        }
        body = self._post(payload)
        if isinstance(body, str):
            return ProviderOutput("general", TokenUsage(), self.spec.model)
        output = parse_message(body, [])
        label = output.raw.get("answer", "general") if isinstance(output.raw, dict) else "general"
        return ProviderOutput(str(label).strip().lower()[:40], output.usage, output.model)
