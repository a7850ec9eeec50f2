"""Routing and the kill switch are decided inside the run, from the shared store.

Runs here are started by Temporal's own CLI (`temporal workflow start|execute`) with plain
JSON, never by tiergate's client, and rollouts and pauses are set by `tiergate` processes of
their own: the canary and the pause still apply, the version chosen, the reason and the
refusal are in each run's history, and the histories replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from tests.conftest import Harness
from tests.postgres import PostgresCluster
from tests.test_cli import TIERGATE, tiergate
from tests.test_rollout import AGENT, candidate_file
from tiergate.approvals import ApproverRegistry, dev_admin
from tiergate.config import PACKAGED_AGENTS
from tiergate.control import Controls, bucket
from tiergate.core import LOAD_AGENT_ACTIVITY, AgentBundle
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.forensics import replay_one
from tiergate.settings import Settings
from tiergate.worker import build_worker
from tiergate.workflows import VARIANT_ATTRIBUTE

TEMPORAL = str(Path(sys.executable).parent / "temporal")


async def temporal(env: WorkflowEnvironment, *args: str) -> tuple[int, str]:
    """The stock Temporal CLI against the test server."""
    address = env.client.service_client.config.target_host
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        *args,
        "--address",
        address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    return process.returncode or 0, out.decode()


async def stock_start(env: WorkflowEnvironment, queue: str, data: dict[str, Any]) -> str:
    workflow_id = f"stock-{uuid.uuid4().hex[:10]}"
    code, out = await temporal(
        env,
        "workflow",
        "start",
        "--type",
        "AgentRunWorkflow",
        "--task-queue",
        queue,
        "--workflow-id",
        workflow_id,
        "--input",
        json.dumps({"agent": AGENT, "input": data}),
    )
    assert code == 0, out
    return workflow_id


def cli_env(settings: Settings) -> dict[str, str]:
    """What a `tiergate` process on an operator's machine needs: Temporal and the store."""
    env = {
        "TIERGATE_TEMPORAL_ADDRESS": settings.temporal_address,
        "TIERGATE_HOME": str(settings.home),
        "TIERGATE_AGENTS_DIR": str(settings.agents_dir),
        "TIERGATE_OPERATOR": "oncall",
    }
    if settings.database_url is not None:
        env["TIERGATE_DATABASE_URL"] = settings.database_url.get_secret_value()
    if settings.content_url is not None:
        env["TIERGATE_CONTENT_URL"] = settings.content_url.get_secret_value()
    return env


async def tiergate_ok(settings: Settings, *args: str) -> str:
    code, out = await tiergate(*args, env=cli_env(settings))
    assert code == 0, out
    return out


def loaded_bundle(history: Any) -> AgentBundle:
    """The bundle the run's load activity returned, as its history keeps it."""
    scheduled = {
        e.event_id
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == LOAD_AGENT_ACTIVITY
    }
    for event in history.events:
        done = event.activity_task_completed_event_attributes
        if done.scheduled_event_id in scheduled and done.result.payloads:
            return AgentBundle.model_validate_json(done.result.payloads[0].data)
    raise AssertionError("no completed load activity in the history")


async def test_a_canary_and_a_pause_apply_to_runs_the_stock_cli_starts(
    harness: Harness,
) -> None:
    candidate_file(harness)
    address = harness.env.client.service_client.config.target_host
    settings = harness.settings.model_copy(update={"temporal_address": address})
    await tiergate_ok(
        settings, "rollout", "start", AGENT, "--candidate", "2.0.0", "--primary", "1.0.0",
        "--mode", "canary", "--share", "0.5", "--key", "customer_id",
    )  # fmt: skip
    # Customers on both sides of the 50% share (buckets are a pure function of the key).
    canary = next(f"C-{i}" for i in range(100) if bucket(AGENT, f"C-{i}") < 0.5)
    primary = next(f"C-{i}" for i in range(100) if bucket(AGENT, f"C-{i}") >= 0.5)
    client = harness.env.client
    async with harness.worker():
        ids = {
            who: await stock_start(
                harness.env, harness.task_queue, {"customer_id": who, "ticket_id": "T-1003"}
            )
            for who in (canary, primary)
        }
        summaries = {who: await client.get_workflow_handle(i).result() for who, i in ids.items()}
        # Paused from another process: the next stock-CLI run is refused in its history.
        await tiergate_ok(settings, "agent", "pause", AGENT, "--reason", "incident 7")
        paused = await stock_start(harness.env, harness.task_queue, {"ticket_id": "T-1003"})
        with pytest.raises(WorkflowFailureError) as failed:
            await client.get_workflow_handle(paused).result()
        await tiergate_ok(settings, "agent", "resume", AGENT)

    assert summaries[canary]["routing"]["variant"] == "canary"
    assert summaries[canary]["versions"]["agent_version"] == "2.0.0"
    assert f"customer_id={canary}" in summaries[canary]["routing"]["reason"]
    assert summaries[primary]["routing"]["variant"] == "primary"
    assert summaries[primary]["versions"]["agent_version"] == "1.0.0"
    for who, workflow_id in ids.items():
        handle = client.get_workflow_handle(workflow_id)
        described = await handle.describe()
        variant = "canary" if who == canary else "primary"
        assert described.typed_search_attributes.get(VARIANT_ATTRIBUTE) == variant
        history = await handle.fetch_history()
        routing = loaded_bundle(history).routing
        assert routing is not None
        assert routing.variant == variant  # the decision is in the history itself
        assert (await replay_one(history)).ok

    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "AgentPaused"
    assert "incident 7" in cause.cause.message
    refused = await client.get_workflow_handle(paused).fetch_history()
    assert (await replay_one(refused)).ok
    assert not any(  # refused before any model was asked
        e.activity_task_scheduled_event_attributes.activity_type.name.startswith("model")
        for e in refused.events
    )


async def test_several_versions_and_no_rollout_is_refused_in_the_run(harness: Harness) -> None:
    candidate_file(harness)
    async with harness.worker():
        workflow_id = await stock_start(harness.env, harness.task_queue, {"ticket_id": "T-1003"})
        with pytest.raises(WorkflowFailureError) as failed:
            await harness.env.client.get_workflow_handle(workflow_id).result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "RolloutError"
    assert "several versions (2.0.0, 1.0.0) and no rollout" in cause.cause.message


async def test_two_worker_homes_share_one_postgres_store(
    env: WorkflowEnvironment, tmp_path: Path, postgres: PostgresCluster
) -> None:
    """Two worker hosts with homes of their own (one in this process, one a `tiergate
    worker` process) and an operator's laptop share only Temporal and one PostgreSQL
    store: the laptop's pause refuses new runs on each worker, its resume lets them run."""
    queue = f"tq-{uuid.uuid4()}"
    with postgres.fresh() as url:
        address = env.client.service_client.config.target_host
        here, there, laptop = (
            host(tmp_path / name, url, queue, address, admin=tmp_path / "laptop")
            for name in ("host-a", "host-b", "laptop")
        )
        fleet_admin(laptop)
        await tiergate_ok(laptop, "agent", "pause", AGENT, "--reason", "fleet-wide")
        async with build_worker(env.client, here, SUPPORT_TOOLKIT):
            await refused_paused(env, queue)
        async with worker_process(there):
            await refused_paused(env, queue)
            await tiergate_ok(laptop, "agent", "resume", AGENT)
            async with build_worker(env.client, here, SUPPORT_TOOLKIT):
                done = [await stock_start(env, queue, {"ticket_id": "T-1003"}) for _ in range(4)]
                for workflow_id in done:
                    summary = await env.client.get_workflow_handle(workflow_id).result()
                    assert summary["outcome"] == "denied"
        events = Controls(laptop.database()).events()
        assert [(e.action, e.by) for e in events] == [("pause", "oncall"), ("resume", "oncall")]


def fleet_admin(settings: Settings) -> None:
    """``settings``' home holds the fleet's administrator key: it registers operator
    ``oncall`` in the shared registry, with a demo key kept in that home."""
    ApproverRegistry.of(settings, "operators").add("oncall", ["operator"], demo_key=True)


async def refused_paused(env: WorkflowEnvironment, queue: str) -> None:
    workflow_id = await stock_start(env, queue, {"ticket_id": "T-1003"})
    with pytest.raises(WorkflowFailureError) as failed:
        await env.client.get_workflow_handle(workflow_id).result()
    cause = failed.value.cause
    assert isinstance(cause, ActivityError)
    assert isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "AgentPaused"
    assert "fleet-wide" in cause.cause.message


@asynccontextmanager
async def worker_process(settings: Settings) -> AsyncIterator[None]:
    """`tiergate worker` in a process of its own, configured only by its environment."""
    environment = {
        **os.environ,
        **cli_env(settings),
        "TIERGATE_TASK_QUEUE": settings.task_queue,
        "TIERGATE_OFFLINE_MODEL_OVERRIDES": "true",
        "TIERGATE_REGISTRY_ADMINS": json.dumps(settings.registry_admins),
        "TIERGATE_TELEMETRY": "false",
    }
    process = await asyncio.create_subprocess_exec(
        TIERGATE, "worker", env=environment, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


def host(home: Path, database_url: str, queue: str, address: str, admin: Path) -> Settings:
    """A host's settings: a home of its own (agents, demo store), the store shared, trusting
    the fleet's one administrator (whose key is in ``admin``: `fleet_admin`)."""
    (home / "agents").mkdir(parents=True)
    shutil.copy(PACKAGED_AGENTS / f"{AGENT}.yaml", home / "agents" / f"{AGENT}.yaml")
    SupportStore(home / "support.sqlite").seed_demo()
    return Settings(
        temporal_address=address,
        home=home,
        agents_dir=home / "agents",
        registry_admins=[dev_admin(admin)],
        offline_model_overrides=True,
        database_url=database_url,
        task_queue=queue,
    )
