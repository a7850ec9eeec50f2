"""The `tiergate` command, run as a user runs it: a real process against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from tests.conftest import Harness
from tiergate.cluster import free_port
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.worker import build_worker

TIERGATE = str(Path(sys.executable).parent / "tiergate")
SEED = Path(__file__).parent / "data" / "seed_agent_config.yaml"


async def tiergate(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        TIERGATE,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode()


class TestPolicyCommands:
    async def test_policy_show_prints_the_compiled_cedar(self) -> None:
        code, out = await tiergate("policy", "show", "support_refund_agent")
        assert code == 0
        assert '@id("refund_cap")' in out
        assert 'context.input.amount_usd.lessThanOrEqual(decimal("50.00"))' in out
        assert out.startswith("// policy version sha256:")

    async def test_policy_show_refuses_the_opa_engine_with_the_fix(self, tmp_path: Path) -> None:
        code, out = await tiergate("policy", "show", str(SEED))
        assert code == 2
        assert "agent.policy.engine" in out
        assert "engine: cedar" in out

    async def test_policy_show_compiles_the_seed_with_cedar(self, tmp_path: Path) -> None:
        seed = tmp_path / "seed.yaml"
        seed.write_text(SEED.read_text().replace('engine: "opa"', 'engine: "cedar"'))
        code, out = await tiergate("policy", "show", str(seed))
        assert code == 0
        assert 'forbid(principal, action == Action::"tiergate.emit", resource)' in out

    async def test_policy_schema(self) -> None:
        code, out = await tiergate("policy", "schema")
        assert code == 0
        assert 'action "payments.issue_refund"' in out


class TestRunCommands:
    async def test_start_wait_show_and_list(
        self, env: WorkflowEnvironment, harness: Harness
    ) -> None:
        settings = {
            "TIERGATE_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "TIERGATE_TASK_QUEUE": harness.task_queue,
            "TIERGATE_HOME": str(harness.home),
        }
        async with build_worker(
            env.client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
        ):
            code, out = await tiergate(
                "run",
                "start",
                "support_refund_agent",
                "--input",
                '{"ticket_id": "T-1001"}',
                "--wait",
                "--json",
                "--id",
                "cli-run-1",
                env=settings,
            )
            assert code == 0, out
            summary = json.loads(out)
            assert summary["outcome"] == "completed"

            code, out = await tiergate("runs", "show", "cli-run-1", "--json", env=settings)
            assert code == 0, out
            shown = json.loads(out)
            assert shown["outcome"] == "completed"
            assert [s["verdict"] for s in shown["steps"]][:4] == ["allow"] * 4
            assert shown["versions"]["policy_version"].startswith("sha256:")

            code, out = await tiergate("runs", "show", "cli-run-1", env=settings)
            assert code == 0
            assert "payments.issue_refund" in out
            assert "refunds" in out

            code, out = await tiergate("runs", "list", "--json", env=settings)
            assert code == 0
            assert "cli-run-1" in [row["run_id"] for row in json.loads(out)]

    async def test_bad_input_json_is_refused_before_starting(self) -> None:
        code, out = await tiergate("run", "start", "support_refund_agent", "--input", "{not json")
        assert code == 2
        assert "error" in out


async def test_demo_runs_every_scenario_and_exits_zero(tmp_path: Path) -> None:
    # With a collector that is not there: telemetry failures never fail a run.
    dead = f"http://127.0.0.1:{free_port()}"
    code, out = await tiergate(
        "demo",
        env={
            "TIERGATE_HOME": str(tmp_path),
            "OTEL_EXPORTER_OTLP_ENDPOINT": dead,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        },
    )
    assert code == 0, out
    assert "traces: otlp http/protobuf" in out
    logs = [
        json.loads(line) for line in (tmp_path / "demo" / "logs.jsonl").read_text().splitlines()
    ]
    failures = [e for e in logs if e["event"] == "telemetry_export_failed"]
    assert sorted(e["exporter"] for e in failures) == ["metrics/otlp", "traces/otlp"]
    assert not (tmp_path / "demo" / "spans.jsonl").exists()
    for outcome in ("completed", "escalated", "denied"):
        assert outcome in out
    assert "refund_hard_cap" in out
    assert "admin.export_customers: deny" in out
    assert "adaptive budgets: 2 ambiguous results" in out
    assert "approved by demo-lead" in out
    assert "approved by demo-privacy-1," in out
    assert "approval_expired" in out or "no decision before" in out
    assert "('ORD-5002', '400.00')" in out
    assert "Temporal Web UI: http://127.0.0.1:" in out


async def test_stock_temporal_cli_starts_a_run(env: WorkflowEnvironment, harness: Harness) -> None:
    """README: a run can be started with `temporal workflow start` and plain JSON."""
    temporal = str(Path(sys.executable).parent / "temporal")
    address = env.client.service_client.config.target_host
    async with build_worker(
        env.client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
    ):
        process = await asyncio.create_subprocess_exec(
            temporal,
            "workflow",
            "execute",
            "--address",
            address,
            "--type",
            "AgentRunWorkflow",
            "--task-queue",
            harness.task_queue,
            "--workflow-id",
            "stock-cli-1",
            "--output",
            "json",
            "--input",
            '{"agent": "support_refund_agent", "input": {"ticket_id": "T-1003"}}',
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, out
    summary = await env.client.get_workflow_handle("stock-cli-1").result()
    assert summary["outcome"] == "denied"


async def test_run_start_reads_input_from_a_file(
    env: WorkflowEnvironment, harness: Harness
) -> None:
    (harness.home / "input.json").write_text('{"ticket_id": "T-1003"}')
    settings = {
        "TIERGATE_TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
        "TIERGATE_TASK_QUEUE": harness.task_queue,
    }
    async with build_worker(
        env.client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
    ):
        code, out = await tiergate(
            "run",
            "start",
            "support_refund_agent",
            "--input",
            f"@{harness.home / 'input.json'}",
            "--wait",
            "--json",
            env=settings,
        )
    assert code == 0, out
    assert json.loads(out)["outcome"] == "denied"


async def _wait_for_line(stream: asyncio.StreamReader, needle: str, limit: float = 60) -> str:
    seen = ""
    while needle not in seen:
        line = await asyncio.wait_for(stream.readline(), limit)
        if not line:
            raise AssertionError(f"process ended before printing {needle!r}:\n{seen}")
        seen += line.decode()
    return seen


async def spawn_dev(
    env: dict[str, str], ports: tuple[int, int, int], *args: str, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    """`tiergate dev ARGS` on ``ports`` (frontend, UI, page), its output piped."""
    port, ui_port, web_port = ports
    return await asyncio.create_subprocess_exec(
        TIERGATE,
        "dev",
        *args,
        *("--port", str(port), "--ui-port", str(ui_port), "--web-port", str(web_port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
        cwd=cwd,
    )


async def test_dev_serves_runs_until_ctrl_c(tmp_path: Path) -> None:
    from tiergate.cluster import free_port

    port, ui_port, web_port = free_port(), free_port(), free_port()
    env = {"TIERGATE_HOME": str(tmp_path), "TIERGATE_TEMPORAL_ADDRESS": f"127.0.0.1:{port}"}
    process = await spawn_dev(env, (port, ui_port, web_port))
    assert process.stdout is not None
    try:
        started = await _wait_for_line(process.stdout, "Ctrl-C to stop")
        assert f"approvals page at http://localhost:{web_port}" in started
        async with httpx.AsyncClient() as web:
            signin = await web.get(f"http://127.0.0.1:{web_port}/signin")
            assert signin.status_code == 200
        code, out = await tiergate(
            "run",
            "start",
            "support_refund_agent",
            "--input",
            '{"ticket_id": "T-1001"}',
            "--wait",
            "--json",
            env=env,
        )
        assert code == 0, out
        assert json.loads(out)["outcome"] == "completed"
        assert (tmp_path / "temporal.sqlite").exists()
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0


async def test_demo_keep_leaves_the_server_up_until_ctrl_c(tmp_path: Path) -> None:
    process = await asyncio.create_subprocess_exec(
        TIERGATE,
        "demo",
        "--keep",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "TIERGATE_HOME": str(tmp_path)},
    )
    assert process.stdout is not None
    try:
        out = await _wait_for_line(process.stdout, "Ctrl-C to stop")
        assert "Temporal Web UI: http://127.0.0.1:" in out
        assert process.returncode is None
        # A person can approve the waiting refund from the page, with the printed link.
        link = re.search(r"(http://127\.0\.0\.1:\d+)(/signin/token/\S+)", out)
        assert link is not None, out
        async with httpx.AsyncClient(base_url=link.group(1)) as web:
            assert (await web.get(link.group(2))).status_code == 303
            queue = (await web.get("/")).text
            run_id = re.search(r'data-run="([^"]+)"', queue)
            assert run_id is not None, queue
            page = (await web.get(f"/approvals/{run_id.group(1)}")).text
            # The demo's approver is labeled demo: the page signs with its demo key.
            assert 'id="demo-key"' in page
            form = dict(re.findall(r'name="(csrf|digest|demo)" value="([^"]+)"', page))
            done = await web.post(
                f"/approvals/{run_id.group(1)}",
                data={**form, "decision": "approve", "justification": "checked by a person"},
            )
            assert "Approved: the run resumes" in done.text
        for _ in range(100):
            refunds = SupportStore(tmp_path / "demo" / "support.sqlite").rows("refunds")
            if len(refunds) == 2:
                break
            await asyncio.sleep(0.1)
        assert sorted(r["order_id"] for r in refunds) == ["ORD-5001", "ORD-5002"]
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)
    # With no OTEL_* set, spans land in a local JSONL file, flushed on the way out.
    spans = [json.loads(line) for line in (tmp_path / "demo" / "spans.jsonl").open()]
    runs = [s for s in spans if s["name"] == "tiergate.run"]
    assert len(runs) == 9  # the 8 scenarios and the refund approved from the page
    assert {s["attributes"]["tiergate.agent"] for s in runs} == {
        "support_refund_agent",
        "support_refund_agent_quick_sla",
    }
