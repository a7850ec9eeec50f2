"""One run served by two worker hosts that share only Temporal and PostgreSQL (and, for
content, either that database or an S3-compatible bucket).

Host A (in this process) runs the run's first steps and holds it at a $400 refund's
approval, then stops. Host B (a `tiergate worker` process with a home of its own) takes the
run over after the approval: its model activity reads the transcript host A wrote from the
shared content store (the database, or S3: moto's server as the stand-in), its tool runner verifies the approval and acts once. Nothing in the
two homes is shared: each has its own agents folder, demo store and a copy of the
administrator-endorsed registry.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from tests.conftest import agent_config, call, final, scripted
from tests.postgres import PostgresCluster
from tests.s3 import S3Server
from tests.test_routing_in_run import host, worker_process
from tiergate.approvals import ApproverRegistry
from tiergate.approvals.client import decide, pending_of
from tiergate.core import WORKFLOW_NAME, ApprovalDecision, RunInput, RunSummary
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.errors import NotWaitingError
from tiergate.worker import build_worker

READ = call("crm.read_ticket", ticket_id="T-1002")
REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)


@pytest.mark.parametrize("content", ["database", "s3"])
async def test_one_run_is_served_end_to_end_by_two_worker_homes(
    env: WorkflowEnvironment,
    tmp_path: Path,
    postgres: PostgresCluster,
    content: str,
    request: pytest.FixtureRequest,
) -> None:
    s3: S3Server | None = request.getfixturevalue("s3") if content == "s3" else None
    bucket = s3.bucket() if s3 is not None else ""
    content_url = f"s3://{bucket}/runs" if s3 is not None else "database"
    queue = f"tq-{uuid.uuid4()}"
    address = env.client.service_client.config.target_host
    with postgres.fresh() as url:
        # One administrator for the fleet (host A's); the registry is in the shared store.
        a, b = (
            host(tmp_path / name, url, queue, address, admin=tmp_path / "host-a").model_copy(
                update={"content_url": SecretStr(content_url)}
            )
            for name in ("host-a", "host-b")
        )
        ApproverRegistry.of(a).add("lead", ["support_lead"], demo_key=True)
        for settings in (a, b):
            assert settings.agents_dir is not None
            (settings.agents_dir / "fleet.yaml").write_text(yaml.safe_dump(agent_config("fleet")))

        workflow_id = f"fleet-{uuid.uuid4().hex[:8]}"
        run = RunInput(
            agent="fleet",
            requester="svc",
            model_overrides=scripted(READ, REFUND_400, final("refunded")),
        )
        async with build_worker(env.client, a, SUPPORT_TOOLKIT):
            handle = await env.client.start_workflow(
                WORKFLOW_NAME,
                run.model_dump(),
                id=workflow_id,
                task_queue=queue,
                result_type=RunSummary,
            )
            pending = None
            async with asyncio.timeout(60):
                while pending is None:
                    try:
                        pending = await pending_of(env.client, workflow_id)
                    except NotWaitingError:
                        await asyncio.sleep(0.05)
        assert pending.tool == "payments.issue_refund"
        # Host A is gone; host B serves the rest of the run.
        async with worker_process(b):
            await decide(
                env.client,
                ApproverRegistry.of(a),
                workflow_id,
                "lead",
                ApprovalDecision.APPROVE,
                "customer is right",
            )
            async with asyncio.timeout(120):
                summary = await handle.result()
        history = await handle.fetch_history()

    assert summary.outcome.value == "completed", summary.reason
    assert summary.final_answer == "refunded"
    # The refund acted once, on the host that ran it, and not on the host that stopped.
    refunds_b = SupportStore(b.support_store).rows("refunds")
    assert [(r["order_id"], r["amount_usd"]) for r in refunds_b] == [("ORD-5002", "400.00")]
    assert SupportStore(a.support_store).rows("refunds") == []
    identities = {
        e.activity_task_started_event_attributes.identity
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    }
    assert len(identities) == 2  # each host's worker ran some of the run's activities
    # The transcript and results went to the shared content store, not to either home.
    for settings in (a, b):
        assert not list((settings.home / "content").rglob("*"))
    if s3 is not None:
        stored = s3.objects(bucket)
        assert stored
        assert all(key.startswith("runs/") for key in stored)
