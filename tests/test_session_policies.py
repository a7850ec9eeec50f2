"""Issue #24, item 1: Cedar decisions see what the run has done so far.

The example policies (`tests/policies/session_examples.cedar`) are enforced on real runs,
decided by pure code from the run's own records, and replay to the same decisions.
"""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.worker import Worker

from tests.conftest import Harness, agent_config, call, final, scripted
from tests.test_enforcement import continued_with
from tests.test_long_runs import SHORT
from tiergate.activities._session_history import HistorySessions
from tiergate.config import load_agent
from tiergate.core import (
    WORKFLOW_NAME,
    Gate,
    Outcome,
    RunInput,
    RunSoFar,
    RunState,
    RunSummary,
    Session,
    ToolCallProposal,
    ToolResult,
    tool_activity_name,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.errors import ToolRegistrationError
from tiergate.forensics import replay_one
from tiergate.policies import build_bundle, cedar_schema
from tiergate.sensitive import pii_kinds
from tiergate.tools import Toolset

EXAMPLES = Path(__file__).parent / "policies" / "session_examples.cedar"
SPECS = SUPPORT_TOOLS.specs


def session_agent(h: Harness) -> str:
    """An agent under the support policies plus the session examples (no refund cap rule,
    so only the session decides whether a refund needs a person)."""
    shutil.copy(EXAMPLES, h.home / "agents" / "session_examples.cedar")
    config = agent_config("sessions")["agent"]
    config["policy"] = {
        "engine": "cedar",
        "files": ["support.cedar", "session_examples.cedar"],
        "rules": [],
    }
    # A refused call is fed back to the model and the run goes on (the default stops it).
    config["budgets"] = {"max_denials": 5}
    return h.add_agent("sessions", **{k: v for k, v in config.items() if k != "name"})


def codes(summary: RunSummary) -> list[tuple[str | None, str, list[str]]]:
    return [
        (s.decision.tool, s.decision.code, s.decision.policy_ids)
        for s in summary.steps
        if s.decision is not None
    ]


async def test_no_refund_without_a_status_check_of_the_same_order(harness: Harness) -> None:
    h = harness
    (h.home / "agents").mkdir(exist_ok=True)
    agent = session_agent(h)
    refund = call(
        "payments.issue_refund", order_id="ORD-5001", amount_usd="20", reason_code="damaged"
    )
    summary = await h.run(
        agent,
        input={},
        model_overrides=scripted(
            refund,
            call("orders.get_status", order_id="ORD-5005"),  # another order: still refused
            refund,
            call("orders.get_status", order_id="ORD-5001"),
            refund,
            final("refunded"),
        ),
    )
    decided = codes(summary)
    assert [(tool, code) for tool, code, _ in decided] == [
        ("payments.issue_refund", "policy_forbid"),
        ("orders.get_status", "allowed"),
        ("payments.issue_refund", "policy_forbid"),
        ("orders.get_status", "allowed"),
        ("payments.issue_refund", "allowed"),
    ]
    assert decided[0][2] == ["status_before_refund"]
    assert [(r["order_id"], r["amount_usd"]) for r in h.store.rows("refunds")] == [
        ("ORD-5001", "20.00")
    ]
    history = await h.history(summary.workflow_id)
    assert (await replay_one(history)).ok
    # What the tool runner rebuilds from the server's history, step by step.
    sessions = HistorySessions(h.env.client, h.task_queue)
    tools = SPECS

    async def seen_before(step: int) -> list[str]:
        session = await sessions.before(summary.workflow_id, summary.run_id, step, tools)
        return session.seen.get("orders.get_status", {}).get("order_id", [])

    assert await seen_before(3) == ["ORD-5005"]
    assert await seen_before(5) == ["ORD-5001", "ORD-5005"]
    done = await sessions.before(summary.workflow_id, summary.run_id, 99, tools)
    assert done.sums == {"payments.issue_refund": {"amount_usd": "20.00"}}


async def test_at_most_300_refunded_per_run_without_a_person(harness: Harness) -> None:
    h = harness
    (h.home / "agents").mkdir(exist_ok=True)
    agent = session_agent(h)
    model = scripted(
        call("orders.get_status", order_id="ORD-5002"),
        call("orders.get_status", order_id="ORD-5003"),
        call("payments.issue_refund", order_id="ORD-5002", amount_usd="200", reason_code="late"),
        call("payments.issue_refund", order_id="ORD-5003", amount_usd="150", reason_code="late"),
        final("two refunds"),
    )
    async with h.worker():
        handle = await h.start(agent, input={}, model_overrides=model)
        pending = await h.pending(handle)
        # The second refund alone is $150; with the $200 before it the run passes $300.
        assert (pending.tool, pending.tier) == ("payments.issue_refund", 3)
        assert pending.arguments["amount_usd"] == "150.00"
        await handle.terminate("test over")
    assert [r["amount_usd"] for r in h.store.rows("refunds")] == ["200.00"]
    assert (await replay_one(await h.history(handle.id))).ok


async def test_no_second_email_to_the_same_address(harness: Harness) -> None:
    h = harness
    (h.home / "agents").mkdir(exist_ok=True)
    agent = session_agent(h)

    def email(to: str, subject: str) -> dict[str, object]:
        return call("email.send", to=to, subject=subject, body="Your refund is on its way.")

    summary = await h.run(
        agent,
        input={},
        model_overrides=scripted(
            email("pat@customers.example.com", "Refund"),
            email("pat@customers.example.com", "Refund, again"),
            email("sam@customers.example.com", "Refund"),
            final("emailed"),
        ),
    )
    decided = codes(summary)
    assert [code for _, code, _ in decided] == ["allowed", "policy_forbid", "allowed"]
    assert decided[1][2] == ["one_email_per_address"]
    assert [e["to_addr"] for e in h.store.rows("emails")] == [
        "pat@customers.example.com",
        "sam@customers.example.com",
    ]
    assert (await replay_one(await h.history(summary.workflow_id))).ok


def test_the_gate_reads_counts_sums_and_the_clock_from_the_session() -> None:
    """Pure: the context the gate builds, and a policy on counts, denials and time."""
    policy = """
    @id("reads") permit(principal, action == Action::"orders.get_status", resource)
    when { context.session.calls["orders.get_status"] < 2 && context.session.denials < 1
           && context.session.seconds < 600 };
    """
    bundle = build_bundle([("p", policy)], cedar_schema(SPECS.values()))
    gate = Gate("sessions", ["orders.get_status"], bundle, SPECS, detect=pii_kinds)
    read = ToolCallProposal(tool="orders.get_status", arguments={"order_id": "ORD-5001"})
    session = Session()
    assert gate.decide(read, 1, RunSoFar(session)).code == "allowed"
    session.took_effect(SPECS["orders.get_status"], {"order_id": "ORD-5001"})
    assert gate.decide(read, 2, RunSoFar(session)).code == "allowed"
    session.took_effect(SPECS["orders.get_status"], {"order_id": "ORD-5001"})
    assert session.calls["orders.get_status"] == 2
    assert session.seen["orders.get_status"]["order_id"] == ["ORD-5001"]
    assert gate.decide(read, 3, RunSoFar(session)).code == "no_permit"
    fresh = Session()
    assert gate.decide(read, 1, RunSoFar(fresh, denials=1)).code == "no_permit"
    assert gate.decide(read, 1, RunSoFar(fresh, seconds=601)).code == "no_permit"


def test_sums_add_up_across_calls_and_the_schema_describes_the_session() -> None:
    refund = SPECS["payments.issue_refund"]
    session = Session()
    for amount in ("200.00", "99.50"):
        session.took_effect(refund, {"order_id": "ORD-5002", "amount_usd": amount})
    context = session.context(
        SPECS, refund, {"amount_usd": "0.50"}, denials=0, invalid_proposals=0, seconds=0
    )
    assert session.sums == {"payments.issue_refund": {"amount_usd": "299.50"}}
    assert context["sums_after"]["payments.issue_refund"]["amount_usd"] == {
        "__extn": {"fn": "decimal", "arg": "300.00"}
    }
    assert set(context["calls"]) == set(SPECS)  # every tool present, zero or not
    schema = cedar_schema(SPECS.values())
    assert '"session": Session' in schema
    assert '"payments.issue_refund": { "amount_usd": __cedar::decimal }' in schema


def test_session_fields_must_be_fields_of_the_right_kind() -> None:
    shop = Toolset("shop")
    with pytest.raises(ToolRegistrationError, match="session_keys"):

        @shop.tool(tier=0, session_keys=("quantity",))
        def count(quantity: int) -> dict[str, int]:
            return {"quantity": quantity}

    with pytest.raises(ToolRegistrationError, match="session_sums"):

        @shop.tool(tier=0, session_sums=("sku",))
        def look(sku: str) -> dict[str, str]:
            return {"sku": sku}


async def long_session_run(h: Harness) -> RunSummary:
    """A run under the session examples that continues as new: a status check of ORD-5001,
    eight reads, a refund of ORD-5005 (never checked) and one of ORD-5001."""
    (h.home / "agents").mkdir(exist_ok=True)
    agent = session_agent(h)
    reads = [call("crm.read_ticket", ticket_id=f"T-100{n}") for n in range(1, 9)]
    return await h.run(
        agent,
        input={},
        continue_as_new_after_events=SHORT,
        model_overrides=scripted(
            call("orders.get_status", order_id="ORD-5001"),
            *reads,
            call("payments.issue_refund", order_id="ORD-5005", amount_usd="20", reason_code="late"),
            call(
                "payments.issue_refund", order_id="ORD-5001", amount_usd="20", reason_code="damaged"
            ),
            final("refunded"),
        ),
    )


async def test_the_session_crosses_continue_as_new_and_the_runner_reads_every_segment(
    harness: Harness,
) -> None:
    """A status check in the first segment lets the refund of a later segment through, at
    the gate (from the carry) and at the tool runner (from the earlier segment's own
    history); an order checked nowhere is still refused."""
    h = harness
    summary = await long_session_run(h)
    assert summary.previous_run_ids  # the run continued as new on the way
    assert summary.outcome.value == "completed", summary.reason
    refunds = [
        s.decision
        for s in summary.steps
        if s.decision and s.decision.tool == "payments.issue_refund"
    ]
    assert [(d.code, d.policy_ids) for d in refunds] == [
        ("policy_forbid", ["status_before_refund"]),
        ("allowed", ["refunds"]),
    ]
    assert [r["order_id"] for r in h.store.rows("refunds")] == ["ORD-5001"]


async def test_a_session_carried_by_a_foreign_workflow_counts_for_nothing(
    harness: Harness,
) -> None:
    """A namespace client's workflow continues as new into `AgentRunWorkflow` with the
    real bundle and a carry whose session claims a status check of ORD-5002. The run's own
    gate believes its carry and allows the refund; the tool runner rebuilds the session
    from the histories, finds the earlier segment is not a tiergate run, and refuses."""
    h = harness
    (h.home / "agents").mkdir(exist_ok=True)
    agent = session_agent(h)
    real = load_agent(agent, h.settings.agents_dir, SPECS).model_copy(
        update={"offline_model_overrides": True}  # as the harness's workers run
    )
    refund = call("payments.issue_refund", order_id="ORD-5002", amount_usd="20", reason_code="late")
    run_input = RunInput(agent=agent, model_overrides=scripted(refund, final()))
    state = RunState(real, run_input, Gate.of(real, detect=pii_kinds), datetime.now(UTC))
    state.session.took_effect(SPECS["orders.get_status"], {"order_id": "ORD-5002"})
    carry = state.carry("placeholder").model_dump(mode="json")
    summary = await continued_with(h, carry, run_input)
    assert summary.outcome == Outcome.FAILED, summary.reason
    assert "refused by the runner (session)" in summary.reason
    assert "'MalloryContinuesWorkflow' execution" in summary.reason
    assert h.store.rows("refunds") == []


@activity.defn(name=tool_activity_name("orders.get_status"))
def impostor_status(call: dict[str, Any]) -> dict[str, Any]:
    """A "tool" an impostor's own worker answers: no runner verified it."""
    return ToolResult(ok=True, preview="delivered").model_dump(mode="json")


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class ImpostorRun:
    """Named like tiergate's workflow, on a queue of its own: it "checks" an order through
    its own activity worker, then continues as new into tiergate's queue."""

    @workflow.run
    async def run(self, raw_input: dict[str, Any], carry: dict[str, Any], queue: str) -> None:
        claim = {
            "run_id": workflow.info().workflow_id,
            "step": 1,
            "tool": "orders.get_status",
            "arguments": {"order_id": "ORD-5002"},
            "call_digest": "d",
            "idempotency_key": "k",
            "policy_version": "v",
        }
        await workflow.execute_activity(
            tool_activity_name("orders.get_status"),
            claim,
            start_to_close_timeout=timedelta(seconds=10),
        )
        carry["previous_run_ids"] = [workflow.info().run_id]
        workflow.continue_as_new(args=[raw_input, carry], task_queue=queue)


async def test_a_workflow_named_like_tiergate_s_on_another_queue_adds_nothing(
    harness: Harness,
) -> None:
    """Its "status check" completed ok in its own history, and it continued into a real run:
    the runner, reading the earlier segment, finds it ran off tiergate's queue and refuses."""
    h = harness
    (h.home / "agents").mkdir(exist_ok=True)
    agent = session_agent(h)
    real = load_agent(agent, h.settings.agents_dir, SPECS).model_copy(
        update={"offline_model_overrides": True}
    )
    refund = call("payments.issue_refund", order_id="ORD-5002", amount_usd="20", reason_code="late")
    run_input = RunInput(agent=agent, model_overrides=scripted(refund, final()))
    state = RunState(real, run_input, Gate.of(real, detect=pii_kinds), datetime.now(UTC))
    state.session.took_effect(SPECS["orders.get_status"], {"order_id": "ORD-5002"})
    queue = f"impostor-{uuid.uuid4().hex[:8]}"
    workflow_id = f"impostor-{uuid.uuid4()}"
    async with (
        h.worker(),
        Worker(
            h.env.client,
            task_queue=queue,
            workflows=[ImpostorRun],
            activities=[impostor_status],
            activity_executor=ThreadPoolExecutor(2),
        ),
    ):
        await h.env.client.start_workflow(
            ImpostorRun.run,
            args=[
                run_input.model_dump(mode="json"),
                state.carry("placeholder").model_dump(mode="json"),
                h.task_queue,
            ],
            id=workflow_id,
            task_queue=queue,
        )
        summary = await h.env.client.get_workflow_handle(
            workflow_id, result_type=RunSummary
        ).result()
    assert summary.outcome == Outcome.FAILED, summary.reason
    assert "refused by the runner (session)" in summary.reason
    assert f"ran on task queue {queue!r}" in summary.reason
    assert h.store.rows("refunds") == []
