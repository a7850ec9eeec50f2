"""The worker: hosts AgentRunWorkflow and its activities on a task queue.

Agent configs and policies are loaded and validated before the worker polls, so a policy
that does not parse or validate refuses the worker (naming file and line) instead of
failing runs later.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.service import TLSConfig
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
from tiergate.codec import data_converter
from tiergate.config import load_all_agents
from tiergate.controls import Controls
from tiergate.errors import ConfigError
from tiergate.identity import CredentialBroker
from tiergate.redaction import Redactor
from tiergate.settings import Settings
from tiergate.telemetry import plugins as telemetry_plugins
from tiergate.tools import SUPPORT_TOOLS
from tiergate.visibility import ensure_search_attributes
from tiergate.workflows import AgentRunWorkflow, workflow_runner

_log = structlog.get_logger("tiergate.worker")


def _tls(settings: Settings) -> TLSConfig | bool:
    if not settings.uses_tls:
        return False
    files = (settings.temporal_tls_ca, settings.temporal_tls_cert, settings.temporal_tls_key)
    if not any(files) and settings.temporal_tls_server_name is None:
        return True
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(
        server_root_ca_cert=ca,
        domain=settings.temporal_tls_server_name,
        client_cert=cert,
        client_private_key=key,
    )


async def connect(settings: Settings, attempts: int | None = None) -> Client:
    """A client for ``settings`` (TLS, API key, codec); retries with backoff, saying where.

    ``attempts`` 0 retries for ever (the worker); the default is ``settings.connect_attempts``.
    """
    attempts = settings.connect_attempts if attempts is None else attempts
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    delay = 0.5
    for attempt in itertools.count(1):
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.namespace,
                data_converter=data_converter(settings),
                plugins=telemetry_plugins(),
                tls=_tls(settings),
                api_key=api_key,
            )
        except RuntimeError as error:
            where = f"Temporal at {settings.temporal_address} (namespace {settings.namespace})"
            if attempts and attempt >= attempts:
                raise ConfigError(
                    f"cannot reach {where} after {attempt} attempts: {error}",
                    fix="check TIERGATE_TEMPORAL_ADDRESS, TLS and API-key settings "
                    "(`tiergate config show`)",
                ) from None
            _log.warning("temporal_unreachable", where=where, attempt=attempt, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


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
        AgentActivities(settings.agents_dir, SUPPORT_TOOLS, Controls(settings.home)).load,
        models.propose,
        models.classify,
        *ToolActivities(
            store, content, SUPPORT_TOOLS, CredentialBroker.from_home(settings.home)
        ).activities(),
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
        workflow_runner=workflow_runner(strict=settings.strict_sandbox),
        max_cached_workflows=settings.max_cached_workflows,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        activities=activities if activities is not None else build_activities(settings),
        activity_executor=ThreadPoolExecutor(max_workers=32),
        max_concurrent_activities=32,
        plugins=plugins,
    )


def edge_worker(
    client: Client,
    settings: Settings,
    task_queue: str,
    edges: list[Callable[..., Any]],
    *,
    content: ContentStore,
    approvals_home: Path,
    reviews_path: Path,
    max_workers: int = 8,
) -> Worker:
    """A private worker whose agent loading and tools are ``edges`` (evals, shadow re-runs):
    real models and approval activities, no notifications."""
    models = ModelActivities(content, SUPPORT_TOOLS, redactor=Redactor(settings.redaction))
    approvals = ApprovalActivities(approvals_home, None, ReviewStore(reviews_path))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[AgentRunWorkflow],
        workflow_runner=workflow_runner(strict=settings.strict_sandbox),
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        activities=[
            *edges,
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


async def run_worker(settings: Settings) -> None:
    client = await connect(settings, attempts=0)
    await ensure_search_attributes(client, settings.namespace)
    await build_worker(client, settings).run()
