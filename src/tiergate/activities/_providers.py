"""Model providers behind one small interface: transcript in, raw proposal out.

Providers never retry on their own: Temporal owns retries, so each attempt is visible in
the history and charged to the run's retry budget. Providers never validate proposals
either: the workflow does, so a malformed answer becomes a recorded invalid proposal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from tiergate.core import ModelSpec, TokenUsage, ToolSpec, TranscriptEntry


@dataclass(frozen=True)
class ProviderOutput:
    """A provider's answer: the raw proposal, what it cost, and who answered."""

    raw: dict[str, Any] | str
    usage: TokenUsage
    model: str
    fingerprint: str | None = None


class Provider(Protocol):
    def propose(
        self,
        entries: list[TranscriptEntry],
        tools: list[ToolSpec],
        max_output_tokens: int,
        step: int,
    ) -> ProviderOutput: ...

    def classify(self, task: dict[str, Any]) -> ProviderOutput: ...


def count_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters per token."""
    return max(1, len(text) // 4)


def prompt_tokens(entries: list[TranscriptEntry]) -> int:
    return count_tokens("".join(entry.content or "" for entry in entries))


def raw_tokens(raw: dict[str, Any] | str) -> int:
    return count_tokens(raw if isinstance(raw, str) else json.dumps(raw))


class ScriptedProvider:
    """Replays model outputs from a list: one entry per model answer (per step, until an
    answer proposes several tool calls: ``{"kind": "tool_calls", "calls": [...]}``).

    An entry is a proposal (a mapping with ``kind``), a raw string (to test malformed
    output), or ``{"output": ..., "usage": {...}, "model": "..."}`` to pin usage and model.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.script: list[Any] = spec.script if isinstance(spec.script, list) else []

    def _entry(self, index: int, entries: list[TranscriptEntry]) -> ProviderOutput:
        index -= self.spec.script_start
        if not 0 <= index < len(self.script):
            raw: dict[str, Any] | str = {
                "kind": "escalate",
                "reason": "scripted model has no output for answer "
                f"{index + self.spec.script_start + 1}",
            }
            return ProviderOutput(
                raw, TokenUsage(input_tokens=prompt_tokens(entries)), self.spec.model
            )
        item = self.script[index]
        if isinstance(item, dict) and "output" in item:
            usage = TokenUsage.model_validate(item.get("usage", {}))
            return ProviderOutput(item["output"], usage, str(item.get("model", self.spec.model)))
        usage = TokenUsage(input_tokens=prompt_tokens(entries), output_tokens=raw_tokens(item))
        return ProviderOutput(item, usage, self.spec.model)

    def propose(
        self,
        entries: list[TranscriptEntry],
        tools: list[ToolSpec],
        max_output_tokens: int,
        step: int,
    ) -> ProviderOutput:
        # The answers so far are the transcript's assistant entries (one per model call,
        # across segments of a long run too), so this is the run's next answer.
        answered = sum(1 for entry in entries if entry.role == "assistant")
        return self._entry(answered, entries)

    def classify(self, task: dict[str, Any]) -> ProviderOutput:
        return ProviderOutput("scripted", TokenUsage(), self.spec.model)
