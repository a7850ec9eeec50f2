"""Shadow re-runs: a finished run's input, re-executed under a candidate, with no side effects.

The candidate is the run's own pinned agent bundle (read back from its `agent__load`
result in history) with one or more changes: another agent config, another executor model,
another policy folder, another system prompt. The shadow is a real `AgentRunWorkflow` run on
a private task queue, so the gate, budgets and records are the production code; only the
edges differ:

- write tools are simulated: they verify the call like the real tool and never touch a
  backend; a write the original made with exactly these arguments is answered as it was
  answered then, any other with ``{"simulated": true, ...}``;
- read tools answer with the output the original run recorded for exactly that call (same
  digest), and refuse calls the original never made (a shadow never reads live systems);
- approvals are never simulated: a held call expires at once and ends the shadow
  (`escalated`), so the diff shows where people would have been asked;
- tier-2 review sampling is off, and notifications go nowhere.

Shadows carry the `TiergateShadow` search attribute so reports leave them out.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError

from tiergate.activities import ContentStore, ReRunActivities, ReviewStore, content_store
from tiergate.approvals import ApproverRegistry
from tiergate.core import (
    WORKFLOW_NAME,
    AgentBundle,
    RunInput,
    RunSummary,
    ToolCallInput,
    ToolKind,
    ToolResult,
    ToolSpec,
    verified_arguments,
)
from tiergate.errors import HistoryError, UnverifiedToolCallError
from tiergate.forensics._candidate import Candidate, candidate_bundle
from tiergate.forensics._reader import read_history
from tiergate.forensics._shadow_diff import ShadowDiff, diff_runs
from tiergate.settings import Settings
from tiergate.state import open_database
from tiergate.worker import Toolkit, edge_worker
from tiergate.workflows import SHADOW_ATTRIBUTE

# -- the shadow's edges --------------------------------------------------------------------


class ShadowTools:
    """How a shadow's tool calls are answered: recorded reads, simulated writes, and a
    list of each kind for the diff."""

    def __init__(self, content: ContentStore, recorded: dict[str, ToolResult]) -> None:
        self.content, self.recorded = content, recorded
        self.simulated: list[str] = []
        self.unrecorded: list[str] = []

    def answer(self, spec: ToolSpec, call: ToolCallInput) -> ToolResult:
        try:
            verified_arguments(call, spec)  # nothing runs here; still, refuse what was not gated
        except UnverifiedToolCallError as refused:
            raise ApplicationError(
                refused.message, type="UnverifiedToolCall", non_retryable=True
            ) from None
        what = f"step {call.step}: {spec.name} {json.dumps(call.arguments, sort_keys=True)}"
        recorded = self.recorded.get(call.call_digest)
        if spec.kind is ToolKind.WRITE:
            self.simulated.append(what)
            if recorded is not None:
                # The original made exactly this write: answer as it was answered, unexecuted.
                return self._with_output(recorded)
            text = json.dumps({"simulated": True, "tool": spec.name, "arguments": call.arguments})
            return ToolResult(
                ok=True,
                output_ref=self.content.put(text.encode()),
                output_size=len(text),
                preview=text[:1000],
            )
        if recorded is None:
            self.unrecorded.append(what)
            return ToolResult(
                ok=False,
                error="shadow run: the original run never made this call, and shadows do not "
                "read live systems",
            )
        return self._with_output(recorded)

    def _with_output(self, recorded: ToolResult) -> ToolResult:
        if recorded.output_ref and not self.content.has(recorded.output_ref):
            # The original's output is not in this content store: answer with its preview.
            ref = self.content.put(recorded.preview.encode())
            return recorded.model_copy(update={"output_ref": ref})
        return recorded


# -- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    """One shadow to start: the original's summary, the shadow's id, input and tools."""

    original: RunSummary
    shadow_id: str
    run_input: RunInput
    tools: ShadowTools


def _plan(
    history: WorkflowHistory,
    candidate: Candidate,
    settings: Settings,
    content: ContentStore,
    tools: Mapping[str, ToolSpec],
) -> tuple[_Planned, AgentBundle]:
    """The shadow of one finished run: the candidate's bundle, the original's input (its
    executor model swapped when the candidate names one), recorded reads."""
    view = read_history(history)
    if view.summary is None:
        raise HistoryError(
            f"run {history.workflow_id} has not finished ({view.status}); a shadow compares "
            "against a finished run"
        )
    bundle = candidate_bundle(view.pinned_bundle(), candidate, settings.agents_dir, tools)
    run_input = RunInput.model_validate(view.input)
    executor = bundle.config.model_tier.executor
    if candidate.model and executor in run_input.model_overrides:
        overrides = dict(run_input.model_overrides)
        overrides[executor] = overrides[executor].model_copy(update={"model": candidate.model})
        run_input = run_input.model_copy(update={"model_overrides": overrides})
    shadow_id = f"shadow-{history.workflow_id}-{uuid.uuid4().hex[:6]}"
    planned = _Planned(
        view.summary, shadow_id, run_input, ShadowTools(content, view.tool_results())
    )
    return planned, bundle


async def _run_shadow(client: Client, task_queue: str, planned: _Planned) -> RunSummary:
    handle = await client.start_workflow(
        WORKFLOW_NAME,
        planned.run_input.model_dump(),
        id=planned.shadow_id,
        task_queue=task_queue,
        result_type=RunSummary,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SHADOW_ATTRIBUTE, True)]),
    )
    summary: RunSummary = await handle.result()
    return summary


async def shadow_runs(
    client: Client,
    settings: Settings,
    histories: list[WorkflowHistory],
    candidate: Candidate,
    toolkit: Toolkit,
) -> list[ShadowDiff]:
    """Shadows of every (finished) run in ``histories`` under ``candidate``, and their diffs.
    ``toolkit``'s tools compile a candidate agent version; its model providers serve the
    shadows beside scripted and openai (its backend is never touched: writes are simulated)."""
    content = content_store(settings)
    reruns = ReRunActivities({})
    plans = []
    for history in histories:
        planned, bundle = _plan(history, candidate, settings, content, toolkit.tools.specs)
        reruns.add(planned.shadow_id, bundle, planned.tools.answer)
        plans.append(planned)
    task_queue = f"tiergate-shadow-{uuid.uuid4().hex[:8]}"
    async with edge_worker(
        client,
        settings,
        task_queue,
        reruns,
        toolkit.providers,
        content=content,
        registry=ApproverRegistry.of(settings),
        reviews=ReviewStore(
            open_database(
                f"sqlite:///{Path(tempfile.mkdtemp(prefix='tiergate-shadow-'))}/state.sqlite"
            )
        ),
    ):
        shadows = await asyncio.gather(*(_run_shadow(client, task_queue, p) for p in plans))
    return [
        diff_runs(p.original, shadow, candidate.describe(), p.tools.simulated, p.tools.unrecorded)
        for p, shadow in zip(plans, shadows, strict=True)
    ]
