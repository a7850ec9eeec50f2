"""The `agent__load` activity: read and pin an agent's config and policies for one run.

Loading happens in an activity so the workflow sees the exact text it was pinned to on
replay, even after the files on disk change.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.config import AgentCatalog
from tiergate.control import Controls
from tiergate.core import LOAD_AGENT_ACTIVITY, AgentBundle, LoadAgentInput, RegistrySnapshot
from tiergate.errors import TiergateError


class AgentActivities:
    """Loads bundles through the worker's catalog, which the tool runner trusts them by."""

    def __init__(
        self,
        catalog: AgentCatalog,
        controls: Controls | None = None,
        offline_model_overrides: bool = False,
        operators: Callable[[], RegistrySnapshot] = RegistrySnapshot,
    ) -> None:
        self.catalog = catalog
        self.controls = controls
        self.offline_model_overrides = offline_model_overrides
        self.operators = operators

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
            bundle = self.catalog.load(request.agent, request.version)
            return bundle.model_copy(
                update={
                    "disabled_tools": sorted(state.disabled_tools) if state else [],
                    "offline_model_overrides": self.offline_model_overrides,
                    "operators": self.operators(),
                }
            )
        except TiergateError as error:
            # A bad config does not get better by retrying: fail the run with the reason.
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=True
            ) from None
