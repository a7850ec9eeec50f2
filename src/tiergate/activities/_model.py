"""Model activities: `model__classify` (router tier) and `model__propose` (executor tier)."""

from __future__ import annotations

import json

import httpx
from temporalio import activity

from tiergate.activities._content import ContentStore, Transcript
from tiergate.activities._openai import OpenAICompatibleProvider
from tiergate.activities._providers import DemoProvider, Provider, ScriptedProvider
from tiergate.shared import (
    CLASSIFY_ACTIVITY,
    MAX_RAW_OUTPUT_CHARS,
    PROPOSE_ACTIVITY,
    Classification,
    ClassifyInput,
    ModelResponse,
    ModelSpec,
    ProposeInput,
    TranscriptEntry,
)
from tiergate.tools import ToolRegistry


class ModelActivities:
    """Providers as activities. The transcript lives in the content store, not in history."""

    def __init__(
        self, content: ContentStore, tools: ToolRegistry, http: httpx.Client | None = None
    ):
        self.transcript = Transcript(content)
        self.tools = tools
        # Retries off in the client: Temporal's retry policy owns them.
        self.http = http or httpx.Client(transport=httpx.HTTPTransport(retries=0))

    def provider(self, spec: ModelSpec) -> Provider:
        if spec.provider == "scripted":
            return ScriptedProvider(spec)
        if spec.provider == "openai":
            return OpenAICompatibleProvider(spec, self.http)
        return DemoProvider(spec)

    @activity.defn(name=PROPOSE_ACTIVITY)
    def propose(self, request: ProposeInput) -> ModelResponse:
        head = self.transcript.append(request.transcript_head, request.append)
        entries = self.transcript.read(head)
        tools = [spec for name in request.tools if (spec := self.tools.get(name)) is not None]
        output = self.provider(request.model).propose(
            entries, tools, request.max_output_tokens, request.step
        )
        text = output.raw if isinstance(output.raw, str) else json.dumps(output.raw, default=str)
        new_head = self.transcript.append(head, [TranscriptEntry(role="assistant", content=text)])
        raw = output.raw if len(text) <= MAX_RAW_OUTPUT_CHARS else text[:MAX_RAW_OUTPUT_CHARS]
        return ModelResponse(
            raw=raw,
            raw_size=len(text),
            usage=output.usage,
            reported_model=output.model,
            transcript_head=new_head or "",
            attempt=activity.info().attempt,
        )

    @activity.defn(name=CLASSIFY_ACTIVITY)
    def classify(self, request: ClassifyInput) -> Classification:
        output = self.provider(request.model).classify(request.input)
        label = output.raw if isinstance(output.raw, str) else "general"
        return Classification(
            label=label[:40],
            usage=output.usage,
            reported_model=output.model,
            attempt=activity.info().attempt,
        )
