"""Issue #24, item 2: ambiguous results shrink a run's budgets, and past a threshold the run
stops and escalates instead of trying harder (`budgets.adaptive`)."""

from __future__ import annotations

import uuid
from typing import Any

import yaml

from tests.conftest import OFFLINE, Captured, Harness, call, final, scripted
from tests.test_cli import tiergate
from tests.test_telemetry import points, total
from tiergate import Toolkit, Toolset
from tiergate.core import (
    WORKFLOW_NAME,
    AdaptiveBudgets,
    BudgetLedger,
    Budgets,
    Outcome,
    RunSummary,
    ToolResult,
    ToolSpec,
)
from tiergate.core._adaptive import adjust, ambiguity
from tiergate.demo import SUPPORT_TOOLS
from tiergate.forensics import build_timeline, read_history, replay_one, what_if
from tiergate.tools import Ambiguous
from tiergate.worker import build_worker

STATUS: ToolSpec = SUPPORT_TOOLS.specs["orders.get_status"]
REFUND: ToolSpec = SUPPORT_TOOLS.specs["payments.issue_refund"]


def answer(ref: str = "sha256:a", **fields: Any) -> ToolResult:
    return ToolResult(ok=True, output_ref=ref, **fields)


def test_what_makes_a_result_ambiguous() -> None:
    seen: list[str] = []
    said, key = ambiguity(
        "orders.get_status", STATUS, "d1", answer(ambiguous="status is unknown"), None, seen
    )
    assert said == "orders.get_status: status is unknown"
    seen.append(key)
    again, _ = ambiguity("orders.get_status", STATUS, "d1", answer(), None, seen)
    assert again == "orders.get_status gave the same answer to the same call again"
    other, _ = ambiguity("orders.get_status", STATUS, "d1", answer("sha256:b"), None, seen)
    assert other is None  # a changed answer is news
    _, wkey = ambiguity("payments.issue_refund", REFUND, "d2", answer(), None, [])
    assert ambiguity("payments.issue_refund", REFUND, "d2", answer(), None, [wkey])[0] is None
    withheld, _ = ambiguity("crm.read_ticket", None, "d3", answer(), ["pii_redaction"], [])
    assert withheld == "the output of crm.read_ticket was withheld by pii_redaction"
    failed = ToolResult(ok=False, error="order ORD-9 does not exist")
    first, ekey = ambiguity("orders.get_status", STATUS, "d4", failed, None, [])
    assert first is None
    repeat, _ = ambiguity("orders.get_status", STATUS, "d5", failed, None, [ekey])
    assert (
        repeat == "orders.get_status failed with the same error again: order ORD-9 does not exist"
    )


def test_every_n_ambiguous_results_shrink_what_is_left_and_m_escalate() -> None:
    adaptive = AdaptiveBudgets(
        shrink_after=2, tool_calls_factor=0.5, model_calls_factor=0.25, escalate_after=5
    )
    budgets = Budgets(max_tool_calls=10, max_model_calls=20, adaptive=adaptive)
    ledger = BudgetLedger(tool_calls=2, model_calls=4)
    assert adjust(adaptive, budgets, ledger, "x") is None  # 1: nothing yet
    shrink = adjust(adaptive, budgets, ledger, "x")  # 2: left 8 tool calls -> 4, 16 -> 4
    assert shrink is not None
    assert (shrink.kind, shrink.tool_calls_limit, shrink.model_calls_limit) == ("shrink", 6, 8)
    assert "tool calls left 8 -> 4, model calls left 16 -> 4" in shrink.reason
    ledger.tool_calls = 6
    stop = ledger.check_tool_call(budgets, 0.0, "digest")
    assert stop is not None
    assert stop.shrunk
    assert "shrunk from 10 after 2 ambiguous results" in stop.message
    assert adjust(adaptive, budgets, ledger, "x") is None  # 3
    again = adjust(adaptive, budgets, ledger, "x")  # 4: shrinks the shrunk limits
    assert again is not None
    assert again.tool_calls_limit == 6  # nothing was left to halve
    escalate = adjust(adaptive, budgets, ledger, "the last one")  # 5
    assert escalate is not None
    assert escalate.kind == "escalate"
    assert escalate.reason == "5 ambiguous results (escalate_after=5); last: the last one"


async def test_the_demos_ambiguous_status_shrinks_the_budget_then_escalates(
    harness: Harness, captured: Captured
) -> None:
    """T-1005: the order's status stays `pending_carrier_update`. The first answer halves
    what is left; the second stops the run, escalated, with the reason in its timeline."""
    h = harness
    summary = await h.run("support_refund_agent", input={"ticket_id": "T-1005"})
    assert summary.outcome == Outcome.ESCALATED
    assert summary.adaptive_stop
    assert summary.reason == (
        "adaptive budgets: 2 ambiguous results (escalate_after=2); "
        "last: orders.get_status: status is pending_carrier_update"
    )
    adjusted = [(s.step, s.adjustment.kind) for s in summary.steps if s.adjustment]
    assert adjusted == [(2, "shrink"), (3, "escalate")]
    shrink = summary.steps[1].adjustment
    assert shrink is not None
    assert (shrink.tool_calls_limit, shrink.ambiguous) == (6, 1)
    assert summary.usage.tool_calls == 3  # never the third identical check

    history = await h.history(summary.workflow_id)
    assert (await replay_one(history)).ok
    timeline = build_timeline(history)
    steps = {s.step: s for s in timeline.steps}
    assert steps[2].ambiguous == "orders.get_status: status is pending_carrier_update"
    assert steps[2].adjustment is not None
    assert steps[2].adjustment.startswith(
        "1 ambiguous result (shrink_after=1): tool calls left 8 -> 4"
    )
    assert steps[3].adjustment is not None
    assert steps[3].adjustment.startswith("2 ambiguous results (escalate_after=2)")

    events = [
        e
        for span in captured.spans(summary.workflow_id)
        for e in span.events
        if e.name == "tiergate.budget.adjusted"
    ]
    assert [(e.attributes or {}).get("tiergate.adjustment") for e in events] == [
        "shrink",
        "escalate",
    ]
    adjustments = points(captured, "tiergate.budget.adjustments", "support_refund_agent")
    assert total(adjustments, **{"tiergate.adjustment": "shrink"}) >= 1
    assert total(adjustments, **{"tiergate.adjustment": "escalate"}) >= 1

    env = {
        "TIERGATE_TEMPORAL_ADDRESS": h.env.client.service_client.config.target_host,
        "TIERGATE_HOME": str(h.home),
    }
    code, out = await tiergate("runs", "show", summary.workflow_id, env=env)
    assert code == 0, out
    assert "budgets.adaptive" in out


def adaptive_agent(h: Harness, **adaptive: Any) -> str:
    name = f"adaptive{uuid.uuid4().hex[:6]}"
    budgets = {"max_denials": 3, "max_tool_calls": 12, "adaptive": adaptive}
    return h.add_agent(name, budgets=budgets)


async def test_a_low_confidence_proposal_escalates_before_the_gate(harness: Harness) -> None:
    h = harness
    agent = adaptive_agent(h, min_confidence=0.6)
    unsure = {
        **call("payments.issue_refund", order_id="ORD-5001", amount_usd="5", reason_code="late"),
        "confidence": 0.3,
    }
    summary = await h.run(
        agent,
        input={},
        model_overrides=scripted(call("crm.read_ticket", ticket_id="T-1001"), unsure),
    )
    assert summary.outcome == Outcome.ESCALATED
    assert (
        summary.reason == "adaptive budgets: the model's confidence 0.3 is below min_confidence 0.6"
    )
    assert summary.steps[-1].decision is None  # never gated, never run
    assert h.store.rows("refunds") == []
    # Offline what-if re-decides what the gate decided: the read, not the unsure refund.
    report = what_if([read_history(await h.history(summary.workflow_id))], lambda b: b.policy)
    assert (report.decisions, report.flips, report.unreproduced) == (1, [], [])
    sure = {**call("crm.read_ticket", ticket_id="T-1001"), "confidence": 0.9}
    done = await h.run(agent, input={}, model_overrides=scripted(sure, final()))
    assert done.outcome == Outcome.COMPLETED


async def test_a_shrunk_budget_runs_out_and_the_same_error_counts(harness: Harness) -> None:
    h = harness
    agent = adaptive_agent(h, shrink_after=1, tool_calls_factor=0.25, escalate_after=None)
    reads = [call("crm.read_ticket", ticket_id=f"T-100{n}") for n in range(1, 9)]
    summary = await h.run(
        agent,
        input={},
        model_overrides=scripted(
            call("orders.get_status", order_id="ORD-9999"),  # fails
            call("orders.get_status", order_id="ORD-9998"),  # fails, with another error
            call("orders.get_status", order_id="ORD-9999"),  # the same error again: ambiguous
            *reads,
        ),
    )
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED, summary.reason
    assert summary.adaptive_stop
    assert summary.budget_stop is not None
    assert summary.budget_stop.shrunk
    assert "shrunk from 12 after 1 ambiguous result" in summary.reason
    ambiguous = [(s.step, s.ambiguous) for s in summary.steps if s.ambiguous]
    assert ambiguous == [
        (3, "orders.get_status failed with the same error again: order ORD-9999 does not exist")
    ]
    # 3 calls made, 9 left, a quarter of them: 2 more reads, then the shrunk budget is spent.
    assert summary.usage.tool_calls == 5


carrier = Toolset("carrier")


@carrier.tool(tier=0)
def track(parcel: str) -> dict[str, Any]:
    """Where a parcel is."""
    if parcel.startswith("LOST"):
        raise Ambiguous(
            "the carrier has no scan since dispatch", {"parcel": parcel, "last_scan": None}
        )
    return {"parcel": parcel, "last_scan": "depot"}


@carrier.tool(tier=1, kind="write")
def reroute(parcel: str) -> dict[str, Any]:
    """Send a parcel elsewhere."""
    raise Ambiguous("the depot may or may not have rerouted it")


async def test_a_team_tool_raises_ambiguous_and_its_output_still_reaches_the_model(
    harness: Harness,
) -> None:
    h = harness
    folder = h.home / "agents"
    folder.mkdir(exist_ok=True)
    (folder / "carrier.cedar").write_text(
        '@id("track") permit(principal, action == Action::"carrier.track", resource);\n'
        '@id("reroute") permit(principal, action == Action::"carrier.reroute", resource);\n'
        '@id("out") permit(principal, action == Action::"tiergate.emit", resource);\n'
    )
    agent = {
        "name": "tracker",
        "version": "1",
        "model_tier": {"executor": "frontier"},
        "models": OFFLINE,
        "tools": {"allowlist": ["carrier.track", "carrier.reroute"]},
        "policy": {"engine": "cedar", "files": ["carrier.cedar"]},
        "budgets": {"adaptive": {"shrink_after": 1, "escalate_after": 2}},
    }
    (folder / "tracker.yaml").write_text(yaml.safe_dump({"agent": agent}))
    track_call = {"kind": "tool_call", "tool": "carrier.track", "reason": "t"}
    outputs = scripted(
        {**track_call, "tool": "carrier.reroute", "arguments": {"parcel": "P-9"}},
        {**track_call, "arguments": {"parcel": "P-1"}},
        {**track_call, "arguments": {"parcel": "LOST-2"}},
        {**track_call, "arguments": {"parcel": "LOST-3"}},
        final(),
    )
    async with build_worker(h.env.client, h.settings, Toolkit.of(carrier), task_queue=h.task_queue):
        summary: RunSummary = await h.env.client.execute_workflow(
            WORKFLOW_NAME,
            h.input("tracker", input={}, model_overrides=outputs),
            id=f"tracker-{uuid.uuid4()}",
            task_queue=h.task_queue,
            result_type=RunSummary,
        )
    assert summary.outcome == Outcome.ESCALATED
    results = [s.tool_result for s in summary.steps if s.tool_result]
    # A write cannot be unsure whether it took effect: refused, as a backend refuses.
    rerouted = results.pop(0)
    assert not rerouted.ok
    assert rerouted.error == (
        "carrier.reroute is a write and answered ambiguously: "
        "the depot may or may not have rerouted it"
    )
    assert [r.ambiguous for r in results] == [
        None,
        "the carrier has no scan since dispatch",
        "the carrier has no scan since dispatch",
    ]
    assert all(r.ok for r in results)
    assert '"last_scan": null' in results[1].preview
    assert [s.adjustment.kind for s in summary.steps if s.adjustment] == ["shrink", "escalate"]
