"""The overhead benchmark's baseline: the same activities as a governed run, nothing else.

It loads the agent, asks the model, runs each proposed tool and feeds the result back, with
the same activity implementations and payloads as `AgentRunWorkflow` — but no gate, no
budget ledger, no records, memo or telemetry. What tiergate costs on top is the difference.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from tiergate.core import (
        AgentBundle,
        LoadAgentInput,
        ModelResponse,
        ModelSpec,
        ProposeInput,
        ToolCallInput,
        ToolResult,
        TranscriptEntry,
        call_digest,
    )

_TIMEOUT = timedelta(seconds=30)


async def _chat(
    base_url: str, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> dict[str, Any]:
    """One model call of a bare loop: the whole conversation posted (`bare__chat`); the
    answer joins the conversation."""
    message: dict[str, Any] = await workflow.execute_activity(
        "bare__chat",
        args=[base_url, model, messages, tools],
        result_type=dict,
        start_to_close_timeout=_TIMEOUT,
    )
    messages.append(message)
    return message


async def _tool(step: int, tool: str, arguments: dict[str, Any]) -> ToolResult:
    """A governed run's tool activity, called as bare Temporal would: no allow, no checks."""
    run_id = workflow.info().workflow_id
    result: ToolResult = await workflow.execute_activity(
        f"tool__{tool}",
        ToolCallInput(
            run_id=run_id,
            step=step,
            tool=tool,
            arguments=arguments,
            call_digest=call_digest(tool, arguments),
            idempotency_key=f"{run_id}/step-{step}",
            policy_version="bare",
        ),
        result_type=ToolResult,
        start_to_close_timeout=_TIMEOUT,
    )
    return result


@workflow.defn(name="BareAgentWorkflow")
class BareAgentWorkflow:
    @workflow.run
    async def run(self, agent: str, model: dict[str, Any]) -> int:
        info = workflow.info()
        bundle = await workflow.execute_activity(
            "agent__load",
            LoadAgentInput(agent=agent),
            result_type=AgentBundle,
            start_to_close_timeout=_TIMEOUT,
        )
        spec = ModelSpec.model_validate(model)
        head: str | None = None
        append = [
            TranscriptEntry(role="system", content=bundle.config.prompts.system.text),
            TranscriptEntry(role="user", content="{}"),
        ]
        for step in range(1, 50):
            response = await workflow.execute_activity(
                "model__propose",
                ProposeInput(
                    run_id=info.workflow_id,
                    step=step,
                    agent=agent,
                    model=spec,
                    transcript_head=head,
                    append=append,
                    tools=bundle.config.tools.allowlist,
                    max_output_tokens=1024,
                ),
                result_type=ModelResponse,
                start_to_close_timeout=_TIMEOUT,
            )
            head = response.transcript_head
            raw = response.raw
            if not isinstance(raw, dict) or raw.get("kind") != "tool_call":
                return step
            tool, arguments = raw["tool"], raw.get("arguments", {})
            result = await _tool(step, tool, arguments)
            append = [TranscriptEntry(role="tool", name=tool, ref=result.output_ref)]
        return 50


@workflow.defn(name="BareProviderWorkflow")
class BareProviderWorkflow:
    """The provider path's baseline: a plain Temporal agent loop over an OpenAI-compatible
    model, as one would write it without tiergate. The conversation lives in the workflow
    and goes whole into every model call (`bare__chat`, one httpx POST); each proposed call
    runs the same tool activity a governed run's does; its output goes back inline."""

    @workflow.run
    async def run(self, agent: str, base_url: str, model: str) -> int:
        bundle = await workflow.execute_activity(
            "agent__load",
            LoadAgentInput(agent=agent),
            result_type=AgentBundle,
            start_to_close_timeout=_TIMEOUT,
        )
        tools = [
            {
                "type": "function",
                "function": {
                    "name": spec.name.replace(".", "__"),
                    "description": spec.description,
                    "parameters": spec.arguments,
                },
            }
            for spec in bundle.tools.values()
        ]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": bundle.config.prompts.system.text},
            {"role": "user", "content": "{}"},
        ]
        for step in range(1, 50):
            message = await _chat(base_url, model, messages, tools)
            calls = message.get("tool_calls") or []
            if not calls:
                return step
            function = calls[0]["function"]
            tool = function["name"].replace("__", ".")
            arguments = json.loads(function["arguments"])
            arguments.pop("reason", None)
            result = await _tool(step, tool, arguments)
            messages.append(
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": result.preview}
            )
        return 50


@workflow.defn(name="BarePeersWorkflow")
class BarePeersWorkflow:
    """The peers benchmark's baseline: `BareProviderWorkflow`'s loop with the peers' plain
    tool activities (bench/_peer_tools.py), the arguments as the model gave them."""

    @workflow.run
    async def run(
        self, task: str, prompt: str, base_url: str, model: str, tools: list[dict[str, Any]]
    ) -> int:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": prompt},
            {"role": "user", "content": task},
        ]
        for step in range(1, 200):
            message = await _chat(base_url, model, messages, tools)
            calls = message.get("tool_calls") or []
            if not calls:
                return step
            for call in calls:
                function = call["function"]
                output = await workflow.execute_activity(
                    f"plain__{function['name'].replace('__', '.')}",
                    args=list(json.loads(function["arguments"]).values()),
                    result_type=str,
                    start_to_close_timeout=_TIMEOUT,
                )
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
        return 200
