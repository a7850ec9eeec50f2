"""The README's quickstart, as a new user runs it: examples/quickstart on `tiergate dev`.

A team's own toolset (`--toolset tools:acme`), agent and Cedar files (`--agents .`); a run
started by a backend with the plain Temporal SDK; a refund held for a person, approved from
the CLI; the run's timeline.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from tests.test_cli import _wait_for_line, spawn_dev, tiergate
from tiergate.cluster import free_port
from tiergate.core import Outcome, RunSummary

EXAMPLE = Path(__file__).parent.parent / "examples" / "quickstart"


async def python(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, **env},
        cwd=cwd,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode()


async def test_the_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "quickstart"
    shutil.copytree(EXAMPLE, folder)
    port, ui_port, web_port = free_port(), free_port(), free_port()
    env = {
        "TIERGATE_HOME": str(tmp_path / "home"),
        "TIERGATE_TEMPORAL_ADDRESS": f"127.0.0.1:{port}",
    }
    ports = (port, ui_port, web_port)
    dev = await spawn_dev(env, ports, "--toolset", "tools:acme", "--agents", ".", cwd=folder)
    assert dev.stdout is not None
    try:
        await _wait_for_line(dev.stdout, "Ctrl-C to stop")
        code, out = await tiergate(
            "approvers", "add", "lead", "--role", "billing_lead", "--demo-key", env=env, cwd=folder
        )
        assert code == 0, out
        code, out = await python("start_run.py", "INV-1", "400", env=env, cwd=folder)
        assert code == 0, out
        run_id = out.strip().splitlines()[-1]
        for _ in range(300):
            code, listed = await tiergate("approvals", "list", env=env, cwd=folder)
            if run_id in listed:
                break
            await asyncio.sleep(0.1)
        assert run_id in listed, listed
        assert "acme.refund" in listed
        code, out = await tiergate(
            "approvals",
            "approve",
            run_id,
            "--as",
            "lead",
            "--justification",
            "customer called",
            env=env,
            cwd=folder,
        )
        assert code == 0, out
        client = await Client.connect(
            env["TIERGATE_TEMPORAL_ADDRESS"], data_converter=pydantic_data_converter
        )
        summary = await client.get_workflow_handle(run_id, result_type=RunSummary).result()
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        decisions = [s.decision.code for s in summary.steps if s.decision]
        assert decisions == ["allowed", "approved"]
        refund = summary.steps[1]
        assert refund.tool_result is not None
        assert refund.tool_result.ok
        assert '"amount_usd": "400.00"' in refund.tool_result.preview
        code, timeline = await tiergate("runs", "show", run_id, env=env, cwd=folder)
        assert code == 0, timeline
        assert "acme.refund" in timeline
        assert re.search(r"approved.*lead|lead.*approved", timeline, re.DOTALL), timeline
        # A refund over the hard cap is denied by the team's own policy.
        code, out = await python("start_run.py", "INV-1", "5000", env=env, cwd=folder)
        assert code == 0, out
        denied = await client.get_workflow_handle(
            out.strip().splitlines()[-1], result_type=RunSummary
        ).result()
        assert [s.decision.code for s in denied.steps if s.decision][-1] == "policy_forbid"
    finally:
        dev.send_signal(signal.SIGINT)
        await asyncio.wait_for(dev.wait(), 30)
