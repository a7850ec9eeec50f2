"""Agent loading and tools for private re-runs (eval cases, shadows), one run at a time.

A re-run is a real `AgentRunWorkflow` on a private task queue; only its edges differ. Each
run, found by its workflow id, is pinned to the bundle given for it and has its tool calls
answered its own way (an eval case's own backend, a shadow's recorded reads and simulated
writes), so many run side by side on one worker without seeing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from temporalio import activity

from tiergate.core import (
    LOAD_AGENT_ACTIVITY,
    AgentBundle,
    LoadAgentInput,
    ModelSpec,
    ToolCallInput,
    ToolResult,
    ToolSpec,
    tool_activity_name,
)

#: How a re-run's tool call is answered: given the tool's pinned spec and the call.
Answer = Callable[[ToolSpec, ToolCallInput], ToolResult]


class ReRunActivities:
    """The load activity and one activity per tool, dispatching on the run's workflow id."""

    def __init__(self, specs: Mapping[str, ToolSpec]) -> None:
        self.specs = dict(specs)
        self.bundles: dict[str, AgentBundle] = {}
        self.answers: dict[str, Answer] = {}

    def add(self, workflow_id: str, bundle: AgentBundle, answer: Answer) -> None:
        """Pin run ``workflow_id`` to ``bundle`` and answer its tool calls with ``answer``.
        A re-run brings its own models (an eval case's script, a shadow's candidate)."""
        offline = bundle.model_copy(update={"offline_model_overrides": True})
        self.bundles[workflow_id], self.answers[workflow_id] = offline, answer
        self.specs.update(bundle.tools)

    def declared_models(self, agent: str) -> list[ModelSpec]:
        """The models the re-runs' bundles of ``agent`` declare."""
        return [
            spec
            for bundle in self.bundles.values()
            if bundle.config.name == agent
            for spec in bundle.config.models.values()
        ]

    def activities(self) -> list[Callable[..., Any]]:
        @activity.defn(name=LOAD_AGENT_ACTIVITY)
        def load(request: LoadAgentInput) -> AgentBundle:
            return self.bundles[_workflow_id()]

        return [load, *(self._tool(spec) for spec in self.specs.values())]

    def _tool(self, spec: ToolSpec) -> Callable[[ToolCallInput], ToolResult]:
        @activity.defn(name=tool_activity_name(spec.name))
        def run_tool(call: ToolCallInput) -> ToolResult:
            return self.answers[_workflow_id()](spec, call)

        return run_tool


def _workflow_id() -> str:
    return activity.info().workflow_id or ""
