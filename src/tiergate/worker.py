"""The worker: hosts AgentRunWorkflow and its activities on a task queue.

Agent configs and policies are loaded and validated before the worker polls, so a policy
that does not parse or validate refuses the worker (naming file and line) instead of
failing runs later.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from tiergate.activities import (
    AgentActivities,
    ApprovalActivities,
    ContentStore,
    ModelActivities,
    ReviewStore,
    SupportStore,
    ToolActivities,
)
from tiergate.config import load_all_agents
from tiergate.redaction import Redactor
from tiergate.settings import Settings
from tiergate.telemetry import plugins as telemetry_plugins
from tiergate.tools import SUPPORT_TOOLS
from tiergate.visibility import ensure_search_attributes
from tiergate.workflows import AgentRunWorkflow, workflow_runner


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        plugins=telemetry_plugins(),
    )


def build_activities(settings: Settings) -> list[Callable[..., Any]]:
    content = ContentStore(settings.content_dir)
    store = SupportStore(settings.support_store)
    models = ModelActivities(content, SUPPORT_TOOLS, redactor=Redactor(settings.redaction))
    approvals = ApprovalActivities(
        settings.home, settings.notify_url, ReviewStore(settings.reviews_path)
    )
    return [
        approvals.snapshot,
        approvals.status,
        approvals.notify_overdue,
        approvals.enqueue_review,
        AgentActivities(settings.agents_dir, SUPPORT_TOOLS).load,
        models.propose,
        models.classify,
        *ToolActivities(store, content, SUPPORT_TOOLS).activities(),
    ]


def build_worker(
    client: Client,
    settings: Settings,
    *,
    task_queue: str | None = None,
    activities: list[Callable[..., Any]] | None = None,
) -> Worker:
    """A worker for ``settings``; checks every agent config and policy first."""
    load_all_agents(settings.agents_dir, SUPPORT_TOOLS)
    # Temporal's OpenTelemetry plugin, unless the client already brings it.
    on_client = {type(p) for p in client.config()["plugins"]}
    plugins = [p for p in telemetry_plugins() if type(p) not in on_client]
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[AgentRunWorkflow],
        workflow_runner=workflow_runner(),
        activities=activities if activities is not None else build_activities(settings),
        activity_executor=ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        plugins=plugins,
    )


async def run_worker(settings: Settings) -> None:
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    await build_worker(client, settings).run()
