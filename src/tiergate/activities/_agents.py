"""The `agent__load` activity: route a run, read and pin its agent's config and policies.

Loading happens in an activity so the workflow sees the exact text it was pinned to on
replay, even after the files on disk change. Routing and the kill switch are decided here,
from the shared store, so a run started by any client (tiergate's `start_run`, the plain
SDK in any language, `temporal workflow start`) is routed and refused alike, and the
version chosen, the reason and any refusal are in the run's history.
"""

from __future__ import annotations

from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from tiergate.config import AgentCatalog, agent_versions
from tiergate.control import Controls, RolloutStore, route
from tiergate.core import (
    LOAD_AGENT_ACTIVITY,
    AgentBundle,
    LoadAgentInput,
    RegistrySnapshot,
    Routing,
)
from tiergate.errors import RolloutError, TiergateError


class AgentActivities:
    """Loads bundles through the worker's catalog, which the tool runner trusts them by."""

    def __init__(
        self,
        catalog: AgentCatalog,
        controls: Controls | None = None,
        offline_model_overrides: bool = False,
        operators: Callable[[], RegistrySnapshot] = RegistrySnapshot,
        rollouts: RolloutStore | None = None,
    ) -> None:
        self.catalog = catalog
        self.controls = controls
        self.offline_model_overrides = offline_model_overrides
        self.operators = operators
        self.rollouts = rollouts

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
            version, routing = self._route(request)
            bundle = self.catalog.load(request.agent, version)
            return bundle.model_copy(
                update={
                    "disabled_tools": sorted(state.disabled_tools) if state else [],
                    "offline_model_overrides": self.offline_model_overrides,
                    "operators": self.operators(),
                    "routing": routing,
                }
            )
        except TiergateError as error:
            # A bad config does not get better by retrying: fail the run with the reason.
            raise ApplicationError(
                str(error), type=type(error).__name__, non_retryable=True
            ) from None

    def _route(self, request: LoadAgentInput) -> tuple[str | None, Routing]:
        if request.version is not None:
            return request.version, Routing(
                variant="primary", reason=f"version {request.version} pinned by the run's input"
            )
        rollout = self.rollouts.get(request.agent) if self.rollouts else None
        info = activity.info()
        run_key = info.workflow_id or info.activity_id
        version, routing = route(rollout, request.route_keys, run_key)
        if version is None:
            versions = agent_versions(request.agent, self.catalog.agents_dir)
            if len(versions) > 1:
                raise RolloutError(
                    f"agent {request.agent} has several versions ({', '.join(versions)}) and "
                    "no rollout says which is the primary",
                    fix=f"tiergate rollout start {request.agent} --primary V --candidate W",
                )
        return version, routing
