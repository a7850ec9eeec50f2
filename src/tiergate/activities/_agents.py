"""The `agent__load` activity: read and pin an agent's config and policies for one run.

Loading happens in an activity so the workflow sees the exact text it was pinned to on
replay, even after the files on disk change.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.config import load_agent
from tiergate.control import Controls
from tiergate.core import LOAD_AGENT_ACTIVITY, AgentBundle, LoadAgentInput, ToolSpec
from tiergate.errors import TiergateError


class AgentActivities:
    def __init__(
        self,
        agents_dir: Path | None,
        tools: Mapping[str, ToolSpec],
        controls: Controls | None = None,
    ) -> None:
        self.agents_dir = agents_dir
        self.tools = tools
        self.controls = controls

    @activity.defn(name=LOAD_AGENT_ACTIVITY)
    def load(self, request: LoadAgentInput) -> AgentBundle:
        state = self.controls.read() if self.controls else None
        if state is not None and (switch := state.paused_agents.get(request.agent)):
            raise ApplicationError(
                f"agent {request.agent} is paused (by {switch.by} at {switch.at}: "
                f"{switch.reason or 'no reason given'}); `tiergate agent resume` lets runs start",
                type="AgentPaused",
                non_retryable=True,
            )
        try:
            bundle = load_agent(request.agent, self.agents_dir, self.tools, request.version)
            if state is not None and state.disabled_tools:
                bundle = bundle.model_copy(update={"disabled_tools": sorted(state.disabled_tools)})
            return bundle
        except TiergateError as error:
            # A bad config does not get better by retrying: fail the run with the reason.
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=True
            ) from None
