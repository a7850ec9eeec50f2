"""Incident forensics: the timeline live and offline, exported histories, bad input."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory

from tests.conftest import Harness, call, final, scripted
from tests.test_cli import tiergate
from tiergate.approvals.client import decide
from tiergate.cluster import temporal_cli
from tiergate.core import ApprovalDecision
from tiergate.errors import HistoryError
from tiergate.forensics import build_timeline, load_history_file

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
HISTORIES = Path(__file__).parent / "histories"


def cli_env(h: Harness) -> dict[str, str]:
    return {
        "TIERGATE_TEMPORAL_ADDRESS": h.env.client.service_client.config.target_host,
        "TIERGATE_HOME": str(h.home),
    }


async def shown(h: Harness, *args: str) -> dict[str, Any]:
    code, out = await tiergate("runs", "show", *args, "--json", env=cli_env(h))
    assert code == 0, out
    return dict(json.loads(out))


async def approved_run(h: Harness) -> str:
    h.registry.add("lead", ["support_lead"], demo_key=True)
    agent = h.add_agent("forensic")
    read = call("crm.read_ticket", ticket_id="T-1002")
    async with h.worker():
        handle = await h.start(
            agent,
            input={"ticket_id": "T-1002", "contact": "pat@example.com"},
            requester="svc",
            model_overrides=scripted(read, REFUND_400, final("refunded")),
        )
        await h.pending(handle)
        await decide(h.env.client, h.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok")
        await handle.result()
    return handle.id


async def test_exported_history_shows_the_same_timeline_offline(
    harness: Harness, tmp_path: Path
) -> None:
    run_id = await approved_run(harness)
    live = await shown(harness, run_id)
    assert live["outcome"] == "completed"
    assert live["complete"] is True
    refund = live["steps"][1]
    assert (refund["tool"], refund["verdict"], refund["code"]) == (
        "payments.issue_refund",
        "allow",
        "approved",
    )
    assert refund["policy_ids"]
    assert refund["policy_version"] == live["versions"]["policy_version"]
    assert refund["approval_status"] == "approved"
    (approval,) = refund["approvals"]
    assert (approval["approver"], approval["verified"], approval["via"]) == ("lead", True, "cli")
    assert approval["key_id"]
    assert refund["tool_input"]["amount_usd"] == "400.00"
    assert refund["tool_ok"] is True
    assert refund["cost_usd"] > 0
    assert refund["latency_seconds"] is not None
    assert live["input"]["contact"] == "[REDACTED:email]"

    exported = tmp_path / "run.json"
    code, out = await tiergate("runs", "export", run_id, "-o", str(exported), env=cli_env(harness))
    assert code == 0, out
    offline = await shown(harness, "--history", str(exported))
    assert offline == live

    # The Temporal CLI's own export reads the same.
    address = cli_env(harness)["TIERGATE_TEMPORAL_ADDRESS"]
    process = await asyncio.create_subprocess_exec(
        temporal_cli(),
        "workflow",
        "show",
        "--workflow-id",
        run_id,
        "--address",
        address,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
    )
    out_bytes, _ = await process.communicate()
    assert process.returncode == 0
    from_cli = tmp_path / "from-temporal-cli.json"
    from_cli.write_bytes(out_bytes)
    assert await shown(harness, "--history", str(from_cli)) == live

    code, text = await tiergate("runs", "show", "--history", str(exported), env=cli_env(harness))
    assert code == 0, text
    assert "approved by lead" in text
    assert "payments.issue_refund" in text


async def test_a_waiting_run_is_rebuilt_from_its_events(harness: Harness) -> None:
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    agent = harness.add_agent("waiting")
    read = call("crm.read_ticket", ticket_id="T-1002")
    async with harness.worker():
        handle = await harness.start(agent, model_overrides=scripted(read, REFUND_400, final()))
        await harness.pending(handle)
        timeline = await shown(harness, handle.id)
        await handle.terminate("test over")
    assert (timeline["status"], timeline["complete"]) == ("running", False)
    first, held = timeline["steps"]
    assert first["tool_output"].startswith("{")
    assert first["cost_usd"] > 0
    assert (held["tool"], held["verdict"], held["tier"]) == (
        "payments.issue_refund",
        "needs_approval",
        3,
    )
    assert held["reason"] == "test"
    assert held["tool_input"] is None


def test_recorded_histories_load_with_their_workflow_ids() -> None:
    history = load_history_file(HISTORIES / "demo-T-1001-recorded.json")
    assert history.workflow_id == "demo-T-1001-recorded"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON at line 1"),
        ('{"events": []}', "the history has no events"),
        ("[1, 2]", "expected Temporal history JSON"),
    ],
)
def test_bad_history_files_are_clear_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(HistoryError, match=message):
        load_history_file(path)


def test_truncated_and_foreign_histories_are_refused(tmp_path: Path) -> None:
    text = (HISTORIES / "demo-T-1001-recorded.json").read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    with pytest.raises(HistoryError, match="corrupt or truncated"):
        load_history_file(cut)
    data = json.loads(text)
    data["events"] = data["events"][3:]
    headless = tmp_path / "headless.json"
    headless.write_text(json.dumps(data))
    with pytest.raises(HistoryError, match="truncated at the start"):
        load_history_file(headless)
    data = json.loads(text)
    started = data["events"][0]["workflowExecutionStartedEventAttributes"]
    started["workflowType"]["name"] = "PaymentsWorkflow"
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps(data))
    with pytest.raises(HistoryError, match="workflow type 'PaymentsWorkflow', not a tiergate run"):
        load_history_file(foreign)


async def test_cli_bad_input_exits_nonzero_without_a_traceback(
    harness: Harness, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{truncated")
    for args in (
        ("runs", "show", "--history", str(bad)),
        ("runs", "show", "no-such-run"),
        ("runs", "export", "no-such-run"),
        ("runs", "show"),
    ):
        code, out = await tiergate(*args, env=cli_env(harness))
        assert code == 2, (args, out)
        assert "error" in out
        assert "Traceback" not in out
    code, out = await tiergate("runs", "show", "no-such-run", env=cli_env(harness))
    assert "no run with id 'no-such-run'" in out


async def test_a_run_in_flight_reads_as_its_summary_does(harness: Harness) -> None:
    """Cut a finished run's history before its end: the steps rebuilt from the events alone
    (record format 3: no marks before tool calls) say what the summary says."""
    run_id = await approved_run(harness)
    history = await harness.history(run_id)
    finished = build_timeline(history)
    cut = WorkflowHistory(history.workflow_id, history.events[:-3])
    in_flight = build_timeline(cut)
    assert (finished.complete, in_flight.complete) == (True, False)
    fields = ("tool", "verdict", "policy_ids", "policy_version", "tier", "idempotency_key")
    for done, live in zip(finished.steps, in_flight.steps, strict=True):
        assert [getattr(live, f) for f in fields] == [getattr(done, f) for f in fields]
        assert live.cost_usd == pytest.approx(done.cost_usd)
        assert live.cost_usd > 0
        assert (live.tool_ok, live.approval_status) == (done.tool_ok, done.approval_status)
    assert in_flight.cost_usd == pytest.approx(finished.cost_usd)
