"""The tool runner's check, on real sources: the server, the worker's bundles, registry and
controls. The rules are the pure `tiergate.core.verify_tool_call`; this gathers what they
are checked against.

The execution is asked of the Temporal server (`DescribeWorkflowExecution` for the run the
activity task names): its workflow type, its task queue, its first run id and the
kill-switch memo. That is one RPC per tool attempt, measured in BENCHMARKS.md. When the
bundle's policies read ``context.session``, the run's history is read as well, to rebuild
the session the call was decided in (`HistorySessions`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from tiergate.activities._session_history import HistorySessions
from tiergate.core import (
    CONTROLS_MEMO,
    NOTHING_YET,
    AgentBundle,
    Execution,
    RegistrySnapshot,
    RunSoFar,
    Session,
    ToolCallInput,
    ToolSpec,
    Trusted,
    VerifiedCall,
    verify_tool_call,
)
from tiergate.errors import UnverifiedToolCallError
from tiergate.sensitive import pii_kinds

#: Finds the worker's bundle of (agent, config hash, policy version), or None.
BundleSource = Callable[[str, str, str], AgentBundle | None]

_DESCRIBE_TIMEOUT_SECONDS = 10.0


#: The worker's kill switch as the runner reads it: (disabled tools, paused agents).
Switches = tuple[frozenset[str], frozenset[str]]


class ToolCallVerifier:
    """Verifies each tool call where it executes (see `tiergate.core.verify_tool_call`).

    Built inside the worker's event loop: the tool activities run in threads and ask the
    server through the worker's own client on that loop.
    """

    def __init__(
        self,
        client: Client,
        task_queue: str,
        bundles: BundleSource,
        specs: Callable[[str], ToolSpec | None],
        registry: Callable[[], RegistrySnapshot],
        switches: Callable[[], Switches] = lambda: (frozenset(), frozenset()),
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.bundles = bundles
        self.specs = specs
        self.registry = registry
        self.switches = switches
        self.loop = asyncio.get_running_loop()
        self.sessions = HistorySessions(client, task_queue)

    def verify(self, call: ToolCallInput) -> VerifiedCall:
        """The verified call, or a non-retryable ``UnverifiedToolCall`` error naming the
        check that failed (nothing has acted)."""
        execution = self._execution()
        disabled_tools, paused_agents = self.switches()  # one read of the kill switch
        trusted = Trusted(
            task_queue=self.task_queue,
            bundle=self.bundles(call.agent, call.config_hash, call.policy_version),
            spec=self.specs(call.tool),
            registry=self.registry(),
            disabled_tools=disabled_tools,
            detect=pii_kinds,
            paused_agents=paused_agents,
        )
        try:
            so_far = NOTHING_YET
            if trusted.bundle is not None and trusted.bundle.policy.reads_session:
                so_far = RunSoFar(
                    self._session(execution, call.step, trusted.bundle),
                    denials=call.run_denials,
                    invalid_proposals=call.run_invalid_proposals,
                    seconds=call.run_seconds,
                )
            return verify_tool_call(call, execution, trusted, so_far)
        except UnverifiedToolCallError as refused:
            activity.logger.warning("tool call refused: %s", refused.message)
            raise ApplicationError(
                refused.message, refused.check, type="UnverifiedToolCall", non_retryable=True
            ) from None

    def _session(self, execution: Execution, step: int, bundle: AgentBundle) -> Session:
        future = asyncio.run_coroutine_threadsafe(
            self.sessions.before(execution.workflow_id, execution.run_id, step, bundle.tools),
            self.loop,
        )
        try:
            return future.result(timeout=_DESCRIBE_TIMEOUT_SECONDS)
        except FutureTimeout:
            future.cancel()
            raise RuntimeError(
                "the Temporal server did not send the run's history in time"
            ) from None

    def _execution(self) -> Execution:
        info = activity.info()
        if info.workflow_id is None or info.workflow_run_id is None:
            raise ApplicationError(
                "tool activities run only for a workflow",
                type="UnverifiedToolCall",
                non_retryable=True,
            )
        future = asyncio.run_coroutine_threadsafe(
            self._describe(info.workflow_id, info.workflow_run_id), self.loop
        )
        try:
            return future.result(timeout=_DESCRIBE_TIMEOUT_SECONDS)
        except FutureTimeout:
            future.cancel()
            raise RuntimeError("the Temporal server did not describe the run in time") from None

    async def _describe(self, workflow_id: str, run_id: str) -> Execution:
        handle = self.client.get_workflow_handle(workflow_id, run_id=run_id)
        try:
            described = await handle.describe()
            memo = await described.memo()
        except RPCError as error:
            # Retryable: the server is the one source that can say who scheduled this call.
            raise RuntimeError(f"cannot describe run {workflow_id}: {error.message}") from None
        controls = memo.get(CONTROLS_MEMO) or {}
        return Execution(
            workflow_id=described.id,
            run_id=described.run_id,
            first_run_id=described.raw_info.first_run_id,
            workflow_type=described.workflow_type,
            task_queue=described.task_queue,
            paused=bool(controls.get("paused", False)),
            disabled_tools=frozenset(controls.get("disabled_tools", ())),
        )
