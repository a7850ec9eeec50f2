"""The worker: hosts AgentRunWorkflow and its activities on a task queue.

Agent configs and policies are loaded and validated before the worker polls, so a policy
that does not parse or validate refuses the worker (naming file and line) instead of
failing runs later.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.plugin import SimplePlugin
from temporalio.worker import Plugin, Worker, WorkerConfig

from tiergate.activities import (
    AgentActivities,
    ApprovalActivities,
    ContentStore,
    CredentialBroker,
    ModelActivities,
    Provider,
    ReRunActivities,
    ReviewStore,
    ToolBackend,
    ToolCallVerifier,
    ToolRunner,
    content_store,
    declared_models,
)
from tiergate.approvals import ApproverRegistry
from tiergate.cluster import connect, data_converter, ensure_search_attributes
from tiergate.config import AgentCatalog, declared_mcp_servers, load_all_agents
from tiergate.control import CapLedger, Controls, RolloutStore
from tiergate.core import AgentBundle, ModelSpec, ToolSpec
from tiergate.errors import ConfigError
from tiergate.mcp_servers import McpBackend, McpHub, discover
from tiergate.observe import plugins as telemetry_plugins
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.tools import (
    CaseFixture,
    Tool,
    ToolCall,
    ToolRegistry,
    Toolset,
    ToolsetBackend,
    charged,
)
from tiergate.workflows import AgentRunWorkflow, workflow_runner

_log = structlog.get_logger("tiergate.worker")


@dataclass(frozen=True)
class Toolkit:
    """What a worker serves besides tiergate's own activities.

    Attributes:
        tools: The tools it runs; their specs are pinned into every run it loads.
        backend: Where those tools take effect, made from the worker's settings.
        providers: Model providers it adds, by name, to ``scripted`` and ``openai``.
        fixtures: Each toolset's eval fixture, by toolset name (`Toolset.fixture`).
        mcp: The MCP sessions of the servers its agents name, once it serves them
            (`serving_mcp`); closed when the worker shuts down.
    """

    tools: ToolRegistry
    backend: Callable[[Settings], ToolBackend]
    providers: Mapping[str, Callable[[ModelSpec], Provider]] = field(default_factory=dict)
    mcp: McpHub | None = None
    fixtures: Mapping[str, CaseFixture] = field(default_factory=dict)

    def serving_mcp(self, agents_dir: Path | None) -> Toolkit:
        """This toolkit plus the listed tools of every MCP server the agent configs in
        ``agents_dir`` name, discovered now (`McpServerError` or `ToolRegistrationError`
        naming the server refuses the worker). Without servers, this toolkit unchanged."""
        servers = declared_mcp_servers(agents_dir)
        if not servers or self.mcp is not None:
            return self
        hub, found = discover(servers)
        try:
            tools = ToolRegistry.of([*self.tools, *found])
        except BaseException:
            hub.close()
            raise
        mcp = McpBackend(hub, found)
        own = self.backend

        def backend(settings: Settings) -> ToolBackend:
            return _Routed(mcp, own(settings), CapLedger(settings.database()))

        return dataclasses.replace(self, tools=tools, backend=backend, mcp=hub)

    def close(self) -> None:
        """Close the MCP sessions, if any (stdio servers' processes end)."""
        if self.mcp is not None:
            self.mcp.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Around a worker's run: closes the MCP sessions when it stops."""
        try:
            yield
        finally:
            await asyncio.to_thread(self.close)

    @classmethod
    def of(
        cls,
        *toolsets: Toolset,
        providers: Mapping[str, Callable[[ModelSpec], Provider]] | None = None,
    ) -> Toolkit:
        """A worker serving ``toolsets``: every call to its toolset's function, its caps
        charged in the worker home's cap ledger (``caps.sqlite``) first. Two toolsets
        offering one tool name are refused (`ToolRegistrationError`)."""
        tools = ToolRegistry.of(tool for toolset in toolsets for tool in toolset)

        def backend(settings: Settings) -> ToolBackend:
            # Made while the worker's activities are built, on its event loop: async tool
            # functions run there.
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            return ToolsetBackend(list(toolsets), loop, caps=CapLedger(settings.database()))

        fixtures = {t.name: t.case_fixture for t in toolsets if t.case_fixture is not None}
        return cls(tools=tools, backend=backend, providers=dict(providers or {}), fixtures=fixtures)


class _Routed:
    """MCP tools to their servers (caps charged in the worker's ledger first: tiergate is
    not in a server's transaction), every other tool to the toolkit's own backend."""

    def __init__(self, mcp: McpBackend, own: ToolBackend, caps: CapLedger) -> None:
        self.mcp = mcp
        self.own = own
        self.caps = caps

    def run(self, tool: Tool, arguments: Any, call: ToolCall) -> tuple[dict[str, Any], bool]:
        if tool.name not in self.mcp:
            return self.own.run(tool, arguments, call)
        with charged(self.caps, call, arguments):
            return self.mcp.run(tool, arguments, call)


_BUILT_IN_PROVIDERS = ("scripted", "openai", "anthropic")


def check_providers(bundles: Mapping[str, AgentBundle], toolkit: Toolkit) -> None:
    """Every model an agent names has a provider on this worker, or ConfigError naming the
    agent's file and tier: a team's agent that omits ``models`` (whose default is the demo's
    offline model) refuses the worker instead of failing its first run."""
    known = [*_BUILT_IN_PROVIDERS, *sorted(toolkit.providers)]
    for bundle in bundles.values():
        for tier, spec in bundle.config.models.items():
            if spec.provider not in known:
                raise ConfigError(
                    f"agent {bundle.config.name} calls provider {spec.provider!r}, which this "
                    f"worker lacks (it has {', '.join(known)})",
                    file=bundle.source,
                    field=f"agent.models.{tier}",
                    fix=f"set models.{tier}: {{provider: openai | anthropic | scripted, model: ...}}",
                )


def model_activities(
    settings: Settings,
    content: ContentStore,
    tools: Mapping[str, ToolSpec],
    providers: Mapping[str, Callable[[ModelSpec], Provider]],
    declared: Callable[[str], list[ModelSpec]],
    offline_ok: bool,
) -> ModelActivities:
    """Model activities that call only what ``declared`` (the worker's own agent configs)
    allows, and offline models from runs where ``offline_ok``."""
    return ModelActivities(
        content,
        tools,
        declared_models(declared, offline_ok),
        redactor=Redactor(settings.redaction),
        providers=providers,
    )


def build_activities(
    client: Client, settings: Settings, toolkit: Toolkit, task_queue: str | None = None
) -> list[Callable[..., Any]]:
    """Every activity a run needs, for a worker serving ``toolkit`` on ``task_queue``
    (default: the settings'). Call it inside the worker's event loop: the tool runner asks
    the server, through ``client``, which run scheduled each call."""
    content = content_store(settings)
    specs = toolkit.tools.specs
    catalog = AgentCatalog(settings.agents_dir, specs)
    models = model_activities(
        settings,
        content,
        specs,
        toolkit.providers,
        catalog.declared_models,
        settings.offline_model_overrides,
    )
    # What the worker has taken from the registry is remembered in its own home, so a
    # registry rolled back to an older endorsed state is not believed.
    seen = settings.home / "registry-seen"
    database = settings.database()
    approvals = ApprovalActivities(
        ApproverRegistry.of(settings, seen=seen),
        settings.notify_url,
        ReviewStore(database),
        settings.registry_admins,
    )
    controls = Controls(database)
    verifier = ToolCallVerifier(
        client,
        task_queue or settings.task_queue,
        catalog.trusted,
        specs.get,
        lambda: ApproverRegistry.of(settings, seen=seen).trusted(settings.registry_admins),
        controls.switches,
    )
    runner = ToolRunner(
        toolkit.tools,
        toolkit.backend(settings),
        content,
        verifier,
        CredentialBroker.from_home(settings.home),
        Redactor(settings.redaction),
    )
    return [
        approvals.snapshot,
        approvals.status,
        approvals.notify_overdue,
        approvals.enqueue_review,
        AgentActivities(
            catalog,
            controls,
            settings.offline_model_overrides,
            lambda: ApproverRegistry.of(settings, "operators", seen=seen).trusted(
                settings.registry_admins
            ),
            RolloutStore(database),
        ).load,
        models.propose,
        models.classify,
        *runner.activities(),
    ]


def build_worker(
    client: Client,
    settings: Settings,
    toolkit: Toolkit,
    *,
    task_queue: str | None = None,
    activities: list[Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for ``settings`` serving ``toolkit`` and the MCP servers its agents name;
    checks every agent config and policy against those tools first, so a bad one refuses
    the worker instead of failing runs. The MCP sessions close when the worker stops."""
    toolkit = toolkit.serving_mcp(settings.agents_dir)
    try:
        check_providers(load_all_agents(settings.agents_dir, toolkit.tools.specs), toolkit)
    except BaseException:
        toolkit.close()
        raise
    # Temporal's OpenTelemetry plugin, unless the client already brings it.
    on_client = {type(p) for p in client.config()["plugins"]}
    plugins: list[Plugin] = [p for p in telemetry_plugins() if type(p) not in on_client]
    if toolkit.mcp is not None:
        plugins.append(SimplePlugin("tiergate.mcp", run_context=toolkit.running))
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[AgentRunWorkflow],
        workflow_runner=workflow_runner(),
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        activities=activities
        if activities is not None
        else build_activities(client, settings, toolkit, task_queue),
        activity_executor=ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        plugins=plugins,
    )


def edge_worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    reruns: ReRunActivities,
    providers: Mapping[str, Callable[[ModelSpec], Provider]],
    *,
    content: ContentStore,
    registry: ApproverRegistry,
    reviews: ReviewStore,
    max_workers: int = 8,
) -> Worker:
    """A private worker for re-runs (evals, shadows): each run's bundle and tool answers
    come from ``reruns``; models and approvals are real, notifications go nowhere."""
    # A re-run's bundles are the operator's own (an eval's agent, a shadow's candidate).
    models = model_activities(
        settings, content, reruns.specs, providers, reruns.declared_models, offline_ok=True
    )
    approvals = ApprovalActivities(registry, None, reviews, settings.registry_admins)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[AgentRunWorkflow],
        workflow_runner=workflow_runner(),
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        activities=[
            *reruns.activities(),
            models.propose,
            models.classify,
            approvals.snapshot,
            approvals.status,
            approvals.notify_overdue,
            approvals.enqueue_review,
        ],
        activity_executor=ThreadPoolExecutor(max_workers=max_workers),
        max_concurrent_activities=max_workers,
    )


class TiergatePlugin(SimplePlugin):
    """tiergate in a team's own Temporal ``Client`` and ``Worker``.

        plugin = TiergatePlugin([acme], agents_dir=Path("agents"))
        client = await Client.connect("localhost:7233", plugins=[plugin])
        worker = Worker(client, task_queue="tiergate")   # client plugins reach the worker

    On the client it sets tiergate's data converter (pydantic, and the payload codec when
    ``TIERGATE_CODEC_KEYS`` is set). On a worker it adds `AgentRunWorkflow` in tiergate's
    sandbox and every activity a run needs for the toolsets given and the MCP servers the
    agent configs name (the tool runner verifies
    each call against the server, through the worker's own client and task queue), with a
    thread pool for them unless the worker has one; it checks every agent config and policy
    against those tools first, so a bad one refuses the worker. Tracing is Temporal's
    ``OpenTelemetryPlugin``: add it beside this one when you want spans.
    """

    def __init__(
        self,
        toolsets: Sequence[Toolset] = (),
        *,
        agents_dir: Path | None = None,
        settings: Settings | None = None,
        toolkit: Toolkit | None = None,
    ) -> None:
        base = settings or Settings()
        self.settings = base.model_copy(update={"agents_dir": agents_dir}) if agents_dir else base
        self.toolkit = toolkit or Toolkit.of(*toolsets)
        super().__init__(
            "tiergate.TiergatePlugin",
            data_converter=data_converter(self.settings),
            workflows=[AgentRunWorkflow],
            workflow_runner=workflow_runner(),
            run_context=self._running,
        )

    @asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        async with self.toolkit.running():
            yield

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        # The MCP servers the agents name are connected once, by the first worker built.
        self.toolkit = self.toolkit.serving_mcp(self.settings.agents_dir)
        bundles = load_all_agents(self.settings.agents_dir, self.toolkit.tools.specs)
        check_providers(bundles, self.toolkit)
        config["activities"] = [
            *(config.get("activities") or []),
            *build_activities(config["client"], self.settings, self.toolkit, config["task_queue"]),
        ]
        if config.get("activity_executor") is None:
            config["activity_executor"] = ThreadPoolExecutor(max_workers=32)
        return config


async def run_worker(settings: Settings, toolkit: Toolkit) -> None:
    client = await connect(settings, attempts=0)
    await ensure_search_attributes(client, settings.namespace)
    await build_worker(client, settings, toolkit).run()
