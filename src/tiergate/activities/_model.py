"""Model activities: `model__classify` (router tier) and `model__propose` (executor tier).

Each call also stores a prompt/response record for operators: what was sent (the entries
new since the previous call), what came back, and the usage, passed through the redaction
layer first. Records chain to their predecessor, so `read_exchanges` rebuilds a run's whole
conversation without storing it once per call. The transcript chain itself is the model's
working memory and is kept as the model saw it (it is what a replay or a re-run feeds back).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.activities._anthropic import AnthropicProvider
from tiergate.activities._content import ContentStore, Transcript
from tiergate.activities._openai import OpenAICompatibleProvider
from tiergate.activities._providers import Provider, ProviderOutput, ScriptedProvider
from tiergate.core import (
    CLASSIFY_ACTIVITY,
    MAX_RAW_OUTPUT_CHARS,
    OFFLINE_PROVIDERS,
    PROPOSE_ACTIVITY,
    Classification,
    ClassifyInput,
    ModelResponse,
    ModelSpec,
    ProposeInput,
    ToolSpec,
    TranscriptEntry,
)
from tiergate.sensitive import Redactor

#: Whether this worker lets a run of ``agent`` call ``spec``: None, or why not.
ModelVet = Callable[[str, ModelSpec], str | None]


def declared_models(declared: Callable[[str], list[ModelSpec]], offline_ok: bool) -> ModelVet:
    """The worker's rule for where a model activity may call: a provider that leaves the
    worker (with its URL and key variable) only as one of the agent's configs, in the
    worker's own files, declares it; an offline one (a script, the demo's rules) where the
    worker takes offline models from runs, else only as declared. The run's input and its
    carry are never trusted with it: a client's workflow that continued as new into a run
    with a bundle of its own cannot send the worker's keys anywhere."""

    def vet(agent: str, spec: ModelSpec) -> str | None:
        if spec.provider in OFFLINE_PROVIDERS and offline_ok:
            return None
        for known in declared(agent):
            same_place = (known.provider, known.base_url, known.api_key_env) == (
                spec.provider,
                spec.base_url,
                spec.api_key_env,
            )
            if same_place and known.model == spec.model:
                return None
        return (
            f"agent {agent!r} declares no model {spec.provider}/{spec.model} at "
            f"{spec.base_url or 'its default endpoint'} with key variable "
            f"{spec.api_key_env or 'none'} in this worker's agent configs"
        )

    return vet


class ModelActivities:
    """Providers as activities. The transcript lives in the content store, not in history."""

    def __init__(
        self,
        content: ContentStore,
        tools: Mapping[str, ToolSpec],
        vet: ModelVet,
        http: httpx.Client | None = None,
        redactor: Redactor | None = None,
        providers: Mapping[str, Callable[[ModelSpec], Provider]] | None = None,
    ):
        self.vet = vet
        self.content = content
        self.transcript = Transcript(content)
        self.tools = tools
        self.redactor = redactor or Redactor()
        # Retries off in the client: Temporal's retry policy owns them.
        self.http = http or httpx.Client(transport=httpx.HTTPTransport(retries=0))
        # Providers a worker adds by name (the offline demo model is one).
        self.providers = dict(providers or {})

    def vetted(self, agent: str, spec: ModelSpec, *, parallel: bool = True) -> Provider:
        """The provider for ``spec``, once this worker's rule lets ``agent`` call it."""
        if (why := self.vet(agent, spec)) is not None:
            raise ApplicationError(
                f"model call refused: {why}", type="ProviderRefused", non_retryable=True
            )
        return self.provider(spec, parallel=parallel)

    def provider(self, spec: ModelSpec, *, parallel: bool = True) -> Provider:
        """``parallel``: whether the agent takes several tool calls in one answer (a
        provider that can be told asks for one per answer when it does not)."""
        if spec.provider == "scripted":
            return ScriptedProvider(spec)
        if spec.provider == "openai":
            return OpenAICompatibleProvider(spec, self.http, parallel=parallel)
        if spec.provider == "anthropic":
            return AnthropicProvider(spec, self.http, parallel=parallel)
        if (make := self.providers.get(spec.provider)) is not None:
            return make(spec)
        raise ApplicationError(
            f"this worker has no model provider {spec.provider!r} "
            f"(it has scripted, openai, anthropic{''.join(', ' + p for p in sorted(self.providers))})",
            type="ConfigError",
            non_retryable=True,
        )

    @activity.defn(name=PROPOSE_ACTIVITY)
    def propose(self, request: ProposeInput) -> ModelResponse:
        head = self.transcript.append(request.transcript_head, request.append)
        entries = self.transcript.read(head)
        tools = [spec for name in request.tools if (spec := self.tools.get(name)) is not None]
        parallel = request.max_parallel_calls > 1
        output = self.vetted(request.agent, request.model, parallel=parallel).propose(
            entries, tools, request.max_output_tokens, request.step
        )
        text = output.raw if isinstance(output.raw, str) else json.dumps(output.raw, default=str)
        new_head = self.transcript.append(head, [TranscriptEntry(role="assistant", content=text)])
        # Measured here, before Temporal sees it: an answer over the limit leaves the
        # activity as an excerpt (the run records it as a too_large invalid proposal) and
        # stays whole in the content store, instead of a payload the server refuses.
        whole = len(text) > MAX_RAW_OUTPUT_CHARS
        raw = text[:MAX_RAW_OUTPUT_CHARS] if whole else output.raw
        raw_ref = self.content.put(text.encode()) if whole else None
        sent = entries[-len(request.append) :] if request.append else []
        record = self._record(
            request.run_id,
            "propose",
            request.step,
            request.model,
            output,
            previous=request.previous_record,
            messages=[e.model_dump(exclude_none=True, exclude={"ref"}) for e in sent],
            response=text,
        )
        return ModelResponse(
            raw=raw,
            raw_size=len(text),
            raw_ref=raw_ref,
            usage=output.usage,
            reported_model=output.model,
            transcript_head=new_head or "",
            attempt=activity.info().attempt,
            record_ref=record,
            fingerprint=output.fingerprint,
        )

    @activity.defn(name=CLASSIFY_ACTIVITY)
    def classify(self, request: ClassifyInput) -> Classification:
        output = self.vetted(request.agent, request.model).classify(request.input)
        label = output.raw if isinstance(output.raw, str) else "general"
        record = self._record(
            request.run_id,
            "route",
            None,
            request.model,
            output,
            previous=None,
            messages=[{"role": "user", "content": json.dumps(request.input, sort_keys=True)}],
            response=label,
        )
        return Classification(
            label=label[:40],
            usage=output.usage,
            reported_model=output.model,
            attempt=activity.info().attempt,
            record_ref=record,
            fingerprint=output.fingerprint,
        )

    def _record(
        self,
        run_id: str,
        purpose: str,
        step: int | None,
        model: ModelSpec,
        output: ProviderOutput,
        *,
        previous: str | None,
        messages: list[dict[str, Any]],
        response: str,
    ) -> str:
        """Stores the redacted prompt/response record of one call; returns its hash."""
        return self.content.put_json(
            {
                "kind": "model_exchange",
                "run_id": run_id,
                "purpose": purpose,
                "step": step,
                "provider": model.provider,
                "requested_model": model.model,
                "reported_model": output.model,
                "fingerprint": output.fingerprint,
                "usage": output.usage.model_dump(),
                "previous": previous,
                "messages": self.redactor.value(messages),
                "response": self.redactor.value(response),
            }
        )


def read_exchanges(content: ContentStore, ref: str | None) -> list[dict[str, Any]]:
    """A run's prompt/response records up to ``ref``, oldest first (all redacted)."""
    records: list[dict[str, Any]] = []
    while ref is not None:
        record: dict[str, Any] = content.get_json(ref)
        records.append(record)
        ref = record.get("previous")
    records.reverse()
    return records
