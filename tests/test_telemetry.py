"""Traces, step logs, metrics and redaction of real runs on the dev server.

Spans, metrics and log lines are captured in memory behind the same redaction layer and
exporter wrapper production uses (see conftest.Captured).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan

from tests.conftest import Captured, Harness, call, final, scripted
from tiergate.activities import content_store, read_exchanges
from tiergate.approvals.client import decide
from tiergate.core import REQUIRED_LOG_FIELDS, ApprovalDecision, Outcome, RunSummary

CARD_FORMS = ("4111 1111 1111 1111", "4111111111111111", "4111-1111-1111-1111")
COMMON = (
    "tiergate.run_id",
    "tiergate.agent",
    "tiergate.agent_version",
    "tiergate.prompt_version",
    "tiergate.policy_version",
    "tiergate.cost_usd",
)


class Tree:
    """The spans of one run, navigable by parent."""

    def __init__(self, spans: list[ReadableSpan]) -> None:
        self.spans = sorted(spans, key=lambda s: s.start_time or 0)
        self.by_id = {s.context.span_id: s for s in self.spans if s.context}

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, f"{len(found)} spans named {name}"
        return found[0]

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        assert span.context is not None
        return [s for s in self.spans if s.parent and s.parent.span_id == span.context.span_id]

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return self.by_id.get(span.parent.span_id) if span.parent else None


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_span_tree_and_attributes_of_a_real_run(harness: Harness, captured: Captured) -> None:
    summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
    assert summary.outcome == Outcome.COMPLETED
    assert summary.versions is not None
    tree = Tree(captured.spans(summary.workflow_id))

    run = tree.one("tiergate.run")
    parent = tree.parent(run)
    assert parent is not None
    assert parent.name == "RunWorkflow:AgentRunWorkflow"
    assert attrs(run)["tiergate.outcome"] == "completed"
    assert attrs(run)["tiergate.cost_usd"] == summary.cost_usd
    assert attrs(run)["tiergate.usage.tool_calls"] == summary.usage.tool_calls

    under_run = Counter(s.name for s in tree.children(run))
    assert under_run == {
        "StartActivity:agent__load": 1,
        "chat demo-small": 1,
        "tiergate.step": len(summary.steps),
    }
    route = tree.one("chat demo-small")
    route_call = summary.model_calls[0]
    assert route_call.purpose == "route"
    assert attrs(route)["gen_ai.usage.input_tokens"] == route_call.input_tokens
    assert attrs(route)["tiergate.cost_usd"] == route_call.cost_usd

    steps = tree.named("tiergate.step")
    assert [attrs(s)["tiergate.step"] for s in steps] == [r.step for r in summary.steps]
    for span, record in zip(steps, summary.steps, strict=True):
        kids = {s.name: s for s in tree.children(span)}
        chat = kids["chat demo-frontier"]
        assert attrs(chat)["gen_ai.operation.name"] == "chat"
        assert attrs(chat)["gen_ai.provider.name"] == "tiergate.demo"
        assert attrs(chat)["gen_ai.request.model"] == "demo-frontier"
        assert attrs(chat)["gen_ai.response.model"] == record.model
        assert attrs(chat)["gen_ai.usage.input_tokens"] == record.usage.input_tokens
        assert attrs(chat)["gen_ai.usage.output_tokens"] == record.usage.output_tokens
        assert attrs(chat)["tiergate.cost_usd"] == record.cost_usd
        assert attrs(span)["tiergate.cost_usd"] == record.cost_usd
        if record.decision is None:
            assert set(kids) == {"chat demo-frontier"}
            continue
        decision = record.decision
        gate, tool = kids["tiergate.gate"], kids[f"execute_tool {decision.tool}"]
        assert attrs(gate)["tiergate.decision"] == decision.verdict.value
        assert list(attrs(gate)["tiergate.policy_ids"]) == decision.policy_ids
        assert attrs(tool)["gen_ai.tool.name"] == decision.tool
        assert attrs(tool)["tiergate.tier"] == decision.tier
        assert attrs(tool)["tiergate.decision"] == "allow"
        assert list(attrs(tool)["tiergate.policy_ids"]) == decision.policy_ids
        assert attrs(tool)["tiergate.policy_version"] == summary.versions.policy_version
        assert attrs(tool)["tiergate.idempotency_key"] == record.idempotency_key
        assert attrs(tool)["tiergate.tool.ok"] is True
        # Temporal's own spans continue the trace into the activity worker.
        (start,) = tree.children(tool)
        assert start.name == f"StartActivity:tool__{decision.tool}"
        assert [s.name for s in tree.children(start)] == [f"RunActivity:tool__{decision.tool}"]

    costs = [attrs(s)["tiergate.cost_usd"] for s in steps] + [route_call.cost_usd]
    assert sum(costs) == pytest.approx(summary.cost_usd)
    versions = summary.versions
    for span in tree.spans:
        if not span.name.startswith(("tiergate.", "chat ", "execute_tool ")):
            continue
        a = attrs(span)
        assert all(key in a for key in COMMON), (span.name, sorted(a))
        assert a["tiergate.run_id"] == summary.workflow_id
        assert a["tiergate.agent"] == "support_refund_agent"
        assert a["tiergate.prompt_version"] == versions.prompt_version
        assert a["tiergate.policy_version"] == versions.policy_version
        assert a["tiergate.agent_version"] == versions.agent_version
    assert len({s.context.trace_id for s in tree.spans if s.context}) == 1


async def test_approval_wait_has_its_own_span(harness: Harness, captured: Captured) -> None:
    harness.registry.add("lead", ["support_lead"], demo_key=True)
    agent = harness.add_agent("approving")
    refund = call(
        "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="damaged"
    )
    async with harness.worker():
        handle = await harness.start(agent, model_overrides=scripted(refund, final()))
        await harness.pending(handle)
        await decide(
            harness.env.client, harness.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok"
        )
        summary = await handle.result()
    tree = Tree(captured.spans(summary.workflow_id))
    wait = tree.one("tiergate.approval_wait")
    step = tree.parent(wait)
    assert step is not None
    assert step.name == "tiergate.step"
    a = attrs(wait)
    assert (a["tiergate.tier"], a["tiergate.approvals.required"]) == (3, 1)
    assert a["tiergate.approval.status"] == "approved"
    assert list(a["tiergate.approval.approved_by"]) == ["lead"]
    assert list(a["tiergate.policy_ids"]) == ["refund_cap"]
    tool = tree.one("execute_tool payments.issue_refund")
    assert (wait.end_time or 0) <= (tool.start_time or 0)
    assert attrs(tool)["tiergate.approval.approved_by"] == ("lead",)
    (event,) = [e for e in wait.events if e.name == "approval"]
    assert (event.attributes or {})["tiergate.approver"] == "lead"
    assert (event.attributes or {})["tiergate.approval.verified"] is True
    (logged,) = [e for e in step_events(captured, summary.workflow_id) if e["approvals"]]
    assert logged["approvals"][0]["approver"] == "lead"
    assert logged["approvals"][0]["verification"] == record_verification(summary)
    record = summary.steps[0]
    assert record.approval is not None
    assert a["tiergate.approval.waited_seconds"] == record.approval.waited_seconds
    assert summary.approval_wait_seconds == pytest.approx(record.approval.waited_seconds, abs=1e-3)


def record_verification(summary: RunSummary) -> str:
    approval = summary.steps[0].approval
    assert approval is not None
    return approval.approvals[0].verification


def step_events(captured: Captured, run_id: str) -> list[dict[str, Any]]:
    return [e for e in captured.logs() if e.get("event") == "step" and e.get("run_id") == run_id]


async def test_step_events_carry_the_fields_and_the_span_ids(
    harness: Harness, captured: Captured
) -> None:
    summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
    assert summary.versions is not None
    events = step_events(captured, summary.workflow_id)
    assert [e["step"] for e in events] == [r.step for r in summary.steps]
    tree = Tree(captured.spans(summary.workflow_id))
    spans = tree.named("tiergate.step")
    for event, record, span in zip(events, summary.steps, spans, strict=True):
        assert set(REQUIRED_LOG_FIELDS) <= set(event)
        assert event["level"] == "info"
        assert event["agent"] == "support_refund_agent"
        assert event["prompt_version"] == summary.versions.prompt_version
        assert event["policy_version"] == summary.versions.policy_version
        assert event["model"] == record.model
        assert event["cost_usd"] == record.cost_usd
        assert event["tool_name"] == (record.decision.tool if record.decision else None)
        assert event["decision"] == (
            record.decision.verdict.value if record.decision else "final_answer"
        )
        assert span.context is not None
        assert event["trace_id"] == format(span.context.trace_id, "032x")
        assert event["span_id"] == format(span.context.span_id, "016x")
    finished = [
        e
        for e in captured.logs()
        if e.get("event") == "run_finished" and e.get("run_id") == summary.workflow_id
    ]
    assert len(finished) == 1
    assert finished[0]["cost_usd"] == summary.cost_usd
    assert finished[0]["tool_calls"] == summary.usage.tool_calls


async def test_configured_log_fields_are_added(harness: Harness, captured: Captured) -> None:
    agent = harness.add_agent(
        "fields",
        observability={"log_fields": ["run_id", "tier", "policy_ids", "step_seconds"]},
    )
    read = call("crm.read_ticket", ticket_id="T-1001")
    summary = await harness.run(agent, model_overrides=scripted(read, final()))
    first = step_events(captured, summary.workflow_id)[0]
    assert first["tier"] == 0
    assert first["policy_ids"] == summary.steps[0].decision.policy_ids  # type: ignore[union-attr]
    assert first["step_seconds"] == summary.steps[0].work_seconds
    assert "idempotency_key" not in first


async def test_a_card_number_never_reaches_a_log_line_or_a_span(
    harness: Harness, captured: Captured
) -> None:
    # The model repeats the card in its reason and in the arguments of a call; the events
    # carry both (log_fields), so only the redaction layer stands between them and the sinks.
    agent = harness.add_agent(
        "leaky",
        observability={"log_fields": ["run_id", "reason", "arguments", "observation"]},
    )
    note = call(
        "crm.update_ticket",
        ticket_id="T-1007",
        status="pending",
        reply="we saw card 4111 1111 1111 1111, mail pat@example.com",
    )
    note["reason"] = "customer gave card 4111-1111-1111-1111"
    leaky = await harness.run(agent, model_overrides=scripted(note, final()))
    # The gate blocks the call (its arguments carry PII); the proposal is still recorded.
    assert leaky.steps[0].decision is not None
    assert leaky.steps[0].decision.code == "output_blocked"
    demo = await harness.run("support_refund_agent", input={"ticket_id": "T-1007"})
    assert "card_number" in demo.steps[0].output_checks[0].pii_kinds

    for summary in (leaky, demo):
        exported = "\n".join(s.to_json() for s in captured.spans(summary.workflow_id))
        assert exported
        assert not any(card in exported for card in CARD_FORMS)
    leaky_spans = "\n".join(s.to_json() for s in captured.spans(leaky.workflow_id))
    assert "[REDACTED:card_number]" in leaky_spans
    assert "[REDACTED:email]" in leaky_spans
    logs = [e for e in captured.logs() if e.get("run_id") in (leaky.workflow_id, demo.workflow_id)]
    assert logs
    text = json.dumps(logs)
    assert not any(card in text for card in CARD_FORMS)
    assert "[REDACTED:card_number]" in text
    assert not any(card in captured.log_text() for card in CARD_FORMS)


def points(captured: Captured, name: str, agent: str) -> list[Any]:
    data = captured.metrics()
    assert data is not None
    found: list[Any] = []
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                found.extend(
                    p
                    for p in metric.data.data_points
                    if (p.attributes or {}).get("tiergate.agent", agent) == agent
                )
    return found


def total(found: list[Any], **labels: Any) -> float:
    matching = [
        p for p in found if all((p.attributes or {}).get(k) == v for k, v in labels.items())
    ]
    out = 0.0
    for p in matching:
        out += p.sum if isinstance(p, HistogramDataPoint) else p.value
    return out


async def test_metrics_count_outcomes_cost_denials_and_budget_stops(
    harness: Harness, captured: Captured
) -> None:
    agent = harness.add_agent(f"metrics{harness.task_queue[3:11]}")
    read = call("crm.read_ticket", ticket_id="T-1001")
    runs: list[RunSummary] = [
        await harness.run(agent, model_overrides=scripted(read, final())),
        await harness.run(agent, model_overrides=scripted(call("shell.exec", cmd="ls"))),
        await harness.run(agent, model_overrides=scripted(read, read, read, final())),
    ]
    assert [r.outcome for r in runs] == [
        Outcome.COMPLETED,
        Outcome.DENIED,
        Outcome.BUDGET_EXHAUSTED,
    ]
    outcomes = points(captured, "tiergate.runs", agent)
    assert total(outcomes, **{"tiergate.outcome": "completed"}) == 1
    assert total(outcomes, **{"tiergate.outcome": "denied"}) == 1
    assert total(outcomes, **{"tiergate.outcome": "budget_exhausted"}) == 1
    cost = points(captured, "tiergate.run.cost", agent)
    assert total(cost, **{"tiergate.outcome": "completed"}) == pytest.approx(runs[0].cost_usd)
    calls = points(captured, "tiergate.run.tool_calls", agent)
    assert total(calls) == sum(r.usage.tool_calls for r in runs)
    denials = points(captured, "tiergate.policy.denials", agent)
    assert total(denials, **{"tiergate.decision.code": "unknown_tool"}) == 1
    stops = points(captured, "tiergate.budget.stops", agent)
    assert total(stops, limit="identical_tool_calls") == 1
    steps = points(captured, "tiergate.step.duration", agent)
    assert sum(p.count for p in steps) == sum(len(r.steps) for r in runs)
    tokens = [
        p
        for p in points(captured, "gen_ai.client.token.usage", agent)
        if (p.attributes or {}).get("gen_ai.request.model") == "demo-frontier"
    ]
    # Token usage has no agent label (GenAI conventions); it covers at least these runs.
    assert total(tokens, **{"gen_ai.token.type": "input"}) >= sum(
        r.usage.input_tokens for r in runs
    )
    assert all(isinstance(p, NumberDataPoint) for p in outcomes)


async def test_prompt_response_records_are_redacted_and_chained(harness: Harness) -> None:
    agent = harness.add_agent("records")
    read = call("crm.read_ticket", ticket_id="T-1001")
    answer = final("refund sent to card 4111 1111 1111 1111")
    summary = await harness.run(
        agent,
        input={"ticket_id": "T-1001", "note": "my card is 4111-1111-1111-1111, pat@example.com"},
        model_overrides=scripted(read, answer),
    )
    calls = summary.model_calls
    assert [c.purpose for c in calls] == ["propose"] * len(summary.steps)
    assert all(c.record_ref for c in calls)
    content = content_store(harness.settings)
    records = read_exchanges(content, calls[-1].record_ref)
    assert [r["step"] for r in records] == [c.step for c in calls]
    assert [r["usage"]["input_tokens"] for r in records] == [c.input_tokens for c in calls]
    first = json.dumps(records[0]["messages"])
    assert "[REDACTED:card_number]" in first
    assert "[REDACTED:email]" in first
    assert "[REDACTED:card_number]" in records[-1]["response"]
    assert not any(card in json.dumps(records) for card in CARD_FORMS)


async def test_each_call_of_an_answer_with_several_is_a_step_of_the_run(
    harness: Harness, captured: Captured
) -> None:
    """Three reads in one answer: three step spans under the run (not the later two under
    the first), each with its own tool span, and the first holding the model call."""
    agent = harness.add_agent("a")
    reads = [call("crm.read_ticket", ticket_id=f"T-100{n}") for n in (1, 2, 3)]
    answer = {"kind": "tool_calls", "calls": reads}
    summary = await harness.run(agent, input={}, model_overrides=scripted(answer, final()))
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    tree = Tree(captured.spans(summary.workflow_id))
    run = tree.one("tiergate.run")
    steps = [s for s in tree.children(run) if s.name == "tiergate.step"]
    assert sorted(attrs(s)["tiergate.step"] for s in steps) == [1, 2, 3, 4]
    batched = [s for s in steps if attrs(s)["tiergate.step"] in (1, 2, 3)]
    assert {attrs(s)["tiergate.step.turn"] for s in batched} == {1}
    assert {attrs(s)["tiergate.step.calls_in_answer"] for s in batched} == {3}
    for step in batched:
        names = [c.name for c in tree.children(step)]
        assert names.count("execute_tool crm.read_ticket") == 1, names
    first = next(s for s in batched if attrs(s)["tiergate.step"] == 1)
    assert any(c.name.startswith("chat ") for c in tree.children(first))
