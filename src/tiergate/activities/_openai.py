"""An OpenAI-compatible chat-completions provider (OpenAI, vLLM, Ollama, ...).

Tools are offered as functions (dots in names become ``__``, which the protocol requires),
plus ``final_answer`` and ``escalate`` so every answer is a structured proposal. Transient
failures (timeouts, 429, 5xx) raise retryable errors, honouring ``Retry-After``; anything
the model says, however malformed, is returned raw for the workflow to judge.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import replace
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from tiergate.activities._provider_http import post_json
from tiergate.activities._providers import ProviderOutput
from tiergate.core import (
    MAX_TOOL_CALLS_PER_ANSWER,
    MULTIPLE_TOOL_CALLS,
    TOOL_CALLS,
    ModelSpec,
    TokenUsage,
    ToolSpec,
    TranscriptEntry,
)

_CONTROL_FUNCTIONS = [
    {
        "type": "function",
        "function": {
            "name": "final_answer",
            "description": "Finish with an answer for the customer.",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string"}, "reason": {"type": "string"}},
                "required": ["answer"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "escalate",
            "description": "Hand the task to a human.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string"}},
                "required": ["reason"],
            },
        },
    },
]


def function_name(tool: str) -> str:
    return tool.replace(".", "__")


#: Schemas already built, by the spec object they were built from (kept, so its id is not
#: reused): a worker's specs live as long as it does, and every request offers them again.
_SCHEMAS: dict[int, tuple[ToolSpec, dict[str, Any]]] = {}
_MAX_SCHEMAS = 1024


def schema_with_reason(spec: ToolSpec) -> dict[str, Any]:
    """``spec``'s argument schema plus the required ``reason`` every proposal carries.
    Shared between requests: read it, never change it."""
    if (known := _SCHEMAS.get(id(spec))) is not None and known[0] is spec:
        return known[1]
    schema: dict[str, Any] = _untitled(copy.deepcopy(spec.arguments))
    schema.setdefault("properties", {})["reason"] = {
        "type": "string",
        "description": "Why this call is needed.",
    }
    schema["required"] = [*schema.get("required", []), "reason"]
    if len(_SCHEMAS) >= _MAX_SCHEMAS:
        _SCHEMAS.clear()  # specs rebuilt (a rediscovered MCP server): start over
    _SCHEMAS[id(spec)] = (spec, schema)
    return schema


def _untitled(schema: Any) -> Any:
    """``schema`` without the ``title`` keys pydantic puts on every model and field: they
    name Python classes, tell the model nothing and cost tokens on every request. (A
    property *named* ``title`` stays: only a schema's own ``title`` keyword goes.)"""
    if isinstance(schema, list):
        return [_untitled(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _untitled(sub) for name, sub in value.items()}
        else:
            out[key] = _untitled(value)
    return out


def _function(spec: ToolSpec) -> dict[str, Any]:
    schema = schema_with_reason(spec)
    return {
        "type": "function",
        "function": {
            "name": function_name(spec.name),
            "description": spec.description,
            "parameters": schema,
        },
    }


def proposed_calls(text: str | None) -> list[dict[str, Any]] | None:
    """The tool calls an assistant entry proposed, as raw proposals (one or several), or
    None when it proposed none."""
    proposal = json_or_none(text)
    if not isinstance(proposal, dict):
        return None
    if proposal.get("kind") == "tool_call":
        return [proposal]
    calls = proposal.get("calls")
    if proposal.get("kind") == TOOL_CALLS and isinstance(calls, list):
        return [call if isinstance(call, dict) else {} for call in calls]
    return None


def call_arguments(proposal: dict[str, Any]) -> dict[str, Any]:
    """A raw tool-call proposal's arguments as the model gave them, its reason among them."""
    arguments = proposal.get("arguments")
    return {
        **(arguments if isinstance(arguments, dict) else {}),
        "reason": proposal.get("reason", ""),
    }


def to_messages(entries: list[TranscriptEntry]) -> list[dict[str, Any]]:
    """Rebuild chat messages from the transcript. The tool and gate entries after an answer
    with tool calls answer its calls in order; when fewer came (one note refused the whole
    answer), the last answers the calls left, since every call needs an answer."""
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    last = ""

    def answer_the_rest() -> None:
        for call_id in pending:
            messages.append({"role": "tool", "tool_call_id": call_id, "content": last})
        pending.clear()

    for index, entry in enumerate(entries):
        if entry.role in ("tool", "gate") and pending:
            last = entry.content or ""
            messages.append({"role": "tool", "tool_call_id": pending.pop(0), "content": last})
            continue
        answer_the_rest()
        calls = proposed_calls(entry.content) if entry.role == "assistant" else None
        if calls:
            pending = [
                f"call_{index}" if len(calls) == 1 else f"call_{index}_{n}"
                for n in range(len(calls))
            ]
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": function_name(str(call.get("tool"))),
                                "arguments": json.dumps(call_arguments(call)),
                            },
                        }
                        for call_id, call in zip(pending, calls, strict=True)
                    ],
                }
            )
        elif entry.role == "assistant":
            messages.append({"role": "assistant", "content": entry.content or ""})
        else:
            role = "user" if entry.role in ("gate", "tool") else entry.role
            messages.append({"role": role, "content": entry.content or ""})
    answer_the_rest()
    return messages


def json_or_none(text: str | None) -> Any:
    """``text`` parsed as JSON, or None when it is not JSON."""
    try:
        return json.loads(text or "")
    except json.JSONDecodeError:
        return None


def parse_completion(body: dict[str, Any], tools: list[ToolSpec]) -> ProviderOutput:
    """A chat-completions response as a raw proposal, usage and the reported model id."""
    usage_data = body.get("usage") or {}
    usage = TokenUsage(
        input_tokens=int(usage_data.get("prompt_tokens") or 0),
        output_tokens=int(usage_data.get("completion_tokens") or 0),
    )
    model = str(body.get("model") or "")
    try:
        message = body["choices"][0]["message"]
    except (KeyError, IndexError, TypeError):
        return ProviderOutput(json.dumps(body)[:2000], usage, model)
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list) or not calls:
        content = message.get("content")
        raw: dict[str, Any] | str = (
            {"kind": "final_answer", "answer": content}
            if isinstance(content, str) and content
            else ""
        )
        return ProviderOutput(raw, usage, model)
    if len(calls) > MAX_TOOL_CALLS_PER_ANSWER:
        # A flood is counted, not listed: the run refuses it whole, and nothing of it runs.
        names = [str(c.get("function", {}).get("name")) for c in calls[:5] if isinstance(c, dict)]
        return ProviderOutput(
            {"kind": MULTIPLE_TOOL_CALLS, "count": len(calls), "first": names}, usage, model
        )
    proposals: list[dict[str, Any] | str] = []
    for item in calls:
        function = item.get("function", {}) if isinstance(item, dict) else {}
        arguments = json_or_none(function.get("arguments"))
        if not isinstance(arguments, dict):
            proposals.append(str(function.get("arguments")))
            continue
        proposals.append(proposal_of(str(function.get("name")), arguments, tools))
    return ProviderOutput(answer_of(proposals), usage, model)


def answer_of(proposals: list[dict[str, Any] | str]) -> dict[str, Any] | str:
    """The raw answer of a model turn with these calls: one call is itself (as is its raw
    text when it was not JSON), several are ``tool_calls`` — one that is not JSON in them
    makes the whole answer invalid, and none of it runs."""
    if len(proposals) == 1:
        return proposals[0]
    return {"kind": TOOL_CALLS, "calls": proposals}


def proposal_of(name: str, arguments: dict[str, Any], tools: list[ToolSpec]) -> dict[str, Any]:
    """The raw proposal a function call named ``name`` with ``arguments`` stands for: a
    control (``final_answer``, ``escalate``) or a call of the tool whose function it is."""
    if name in ("final_answer", "escalate"):
        return {"kind": name, **arguments}
    by_function = {function_name(spec.name): spec.name for spec in tools}
    rest = dict(arguments)
    reason = rest.pop("reason", "")
    tool = by_function.get(name, name.replace("__", "."))
    return {"kind": "tool_call", "tool": tool, "arguments": rest, "reason": reason}


class OpenAICompatibleProvider:
    """Calls ``{base_url}/chat/completions`` once per attempt; no client-side retries."""

    def __init__(self, spec: ModelSpec, client: httpx.Client, *, parallel: bool = True) -> None:
        self.spec = spec
        self.client = client
        self.parallel = parallel  # False: the agent takes one tool call per answer
        if not spec.base_url:
            raise ApplicationError(
                f"model {spec.model}: provider openai needs base_url",
                type="ConfigError",
                non_retryable=True,
            )

    def _post(self, payload: dict[str, Any]) -> dict[str, Any] | str:
        headers = {}
        if self.spec.api_key_env and (key := os.environ.get(self.spec.api_key_env)):
            headers["Authorization"] = f"Bearer {key}"
        url = f"{self.spec.base_url.rstrip('/')}/chat/completions"  # type: ignore[union-attr]
        return post_json(self.client, url, payload, headers, self.spec.timeout_seconds)

    def propose(
        self,
        entries: list[TranscriptEntry],
        tools: list[ToolSpec],
        max_output_tokens: int,
        step: int,
    ) -> ProviderOutput:
        payload: dict[str, Any] = {
            "model": self.spec.model,
            "messages": to_messages(entries),
            "tools": [*(_function(spec) for spec in tools), *_CONTROL_FUNCTIONS],
            "tool_choice": "auto",
            "max_tokens": max_output_tokens,
        }
        if not self.parallel:
            # Sent only to ask for one call: servers that do not know it may refuse it.
            payload["parallel_tool_calls"] = False
        body = self._post(payload)
        if isinstance(body, str):
            return ProviderOutput(body, TokenUsage(), self.spec.model)
        return replace(parse_completion(body, tools), fingerprint=_fingerprint(body))

    def classify(self, task: dict[str, Any]) -> ProviderOutput:
        payload = {
            "model": self.spec.model,
            "messages": [
                {
                    "role": "system",
                    "content": "Classify the support request with one word: "
                    "refund, order_status, data_deletion or general.",
                },
                {"role": "user", "content": json.dumps(task)},
            ],
            "max_tokens": 5,
        }
        body = self._post(payload)
        if isinstance(body, str):
            return ProviderOutput("general", TokenUsage(), self.spec.model)
        output = parse_completion(body, [])
        label = output.raw.get("answer", "general") if isinstance(output.raw, dict) else "general"
        return ProviderOutput(
            str(label).strip().lower()[:40], output.usage, output.model, _fingerprint(body)
        )


def _fingerprint(body: dict[str, Any]) -> str | None:
    """The backend configuration id OpenAI-compatible servers report (`system_fingerprint`)."""
    value = body.get("system_fingerprint")
    return str(value)[:200] if value else None
