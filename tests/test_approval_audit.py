"""The approval audit of a finished run verifies from its exported history alone."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from temporalio.client import WorkflowHistory

from tests.conftest import Harness, call, final, scripted
from tiergate.approvals.client import decide
from tiergate.core import ApprovalDecision
from tiergate.forensics import audit_approvals, ungated_tool_calls

DELETE = call("users.delete_data", user_id="U-77", justification="customer asked")


async def finished_dual_run(h: Harness) -> str:
    h.registry.add("p1", ["privacy_officer"], demo_key=True)
    h.registry.add("p2", ["privacy_officer"], demo_key=True)
    agent = h.add_agent("a")
    async with h.worker():
        handle = await h.start(agent, input={}, model_overrides=scripted(DELETE, final()))
        await h.pending(handle)
        await decide(
            h.env.client, h.registry, handle.id, "p1", ApprovalDecision.APPROVE, "identity checked"
        )
        await decide(
            h.env.client, h.registry, handle.id, "p2", ApprovalDecision.APPROVE, "second look"
        )
        await handle.result()
    return handle.id


async def test_exported_history_alone_verifies_every_approval(
    harness: Harness, tmp_path: object
) -> None:
    run_id = await finished_dual_run(harness)
    exported = (await harness.history(run_id)).to_json()
    # Nothing else survives: no registry, no keys, no worker.
    harness.registry.clear()
    audit = audit_approvals(WorkflowHistory.from_json(run_id, exported))
    assert audit.ok, audit.findings
    subjects = [f.subject for f in audit.findings]
    assert subjects == ["approve by p1", "approve by p2", "users.delete_data (tier 4)"]
    assert "2 of 2 verified approvals" in audit.findings[-1].detail


async def test_a_tampered_signature_fails_the_audit(harness: Harness) -> None:
    run_id = await finished_dual_run(harness)
    data = json.loads((await harness.history(run_id)).to_json())
    first = next(e for e in data["events"] if "workflowExecutionUpdateAcceptedEventAttributes" in e)
    payload = first["workflowExecutionUpdateAcceptedEventAttributes"]["acceptedRequest"]["input"][
        "args"
    ]["payloads"][0]
    body = json.loads(base64.b64decode(payload["data"]))
    body["justification"] = "rewritten after the fact"
    payload["data"] = base64.b64encode(json.dumps(body).encode()).decode()
    audit = audit_approvals(WorkflowHistory.from_json(run_id, json.dumps(data)))
    assert not audit.ok
    assert "signature does not verify" in audit.findings[0].detail
    assert "1 of 2 verified approvals" in audit.findings[-1].detail


async def test_recorded_demo_histories_audit_clean() -> None:
    for path in sorted((Path(__file__).parent / "histories").glob("demo-T-100[26]-*.json")):
        audit = audit_approvals(WorkflowHistory.from_json(path.stem, path.read_text()))
        assert audit.ok, (path.name, audit.findings)
        assert any("verified approvals" in f.detail for f in audit.findings)


async def test_invariant_check_needs_both_approvals_of_a_tier_four_call(harness: Harness) -> None:
    run_id = await finished_dual_run(harness)
    history = await harness.history(run_id)
    assert ungated_tool_calls(history) == []
    # The allow's record is the scheduled tool event (record format 3): make it claim p1 twice.
    for event in history.events:
        payloads = event.activity_task_scheduled_event_attributes.input.payloads
        if payloads and b'"p2"' in payloads[0].data:
            payloads[0].data = payloads[0].data.replace(b'"p2"', b'"p1"')
    problems = ungated_tool_calls(history)
    assert len(problems) == 1
    assert "users.delete_data (tier 4) ran with 1 approvals" in problems[0]
