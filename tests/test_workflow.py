"""AgentRunWorkflow end to end on the real dev server: outcomes, records, invariants."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.conftest import Harness, call, final, scripted
from tiergate.core import WORKFLOW_NAME, Outcome, Verdict
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.forensics import read_history, ungated_tool_calls
from tiergate.worker import build_worker

HISTORIES = Path(__file__).parent / "histories"


class TestDemoAgent:
    """The shipped support agent on the demo model reaches each demo outcome."""

    @pytest.mark.parametrize(
        ("ticket", "outcome"),
        [
            ("T-1001", Outcome.COMPLETED),
            ("T-1003", Outcome.DENIED),
            ("T-1004", Outcome.DENIED),
            ("T-1005", Outcome.ESCALATED),  # budgets.adaptive: two ambiguous statuses
            ("T-1007", Outcome.ESCALATED),
        ],
    )
    async def test_demo_ticket_outcome(
        self, harness: Harness, ticket: str, outcome: Outcome
    ) -> None:
        summary = await harness.run("support_refund_agent", input={"ticket_id": ticket})
        assert summary.outcome == outcome, summary.reason

    async def test_small_refund_is_applied_once_and_recorded(self, harness: Harness) -> None:
        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        refunds = harness.store.rows("refunds")
        assert [(r["order_id"], r["amount_usd"]) for r in refunds] == [("ORD-5001", "35.00")]
        refund_step = next(
            s for s in summary.steps if s.decision and s.decision.tool == "payments.issue_refund"
        )
        assert refund_step.decision is not None
        assert refund_step.decision.verdict == Verdict.ALLOW
        assert refund_step.decision.policy_ids == ["refunds"]
        assert refunds[0]["idempotency_key"] == refund_step.idempotency_key
        assert harness.store.rows("tickets")[0]["status"] == "resolved"

    async def test_router_classifies_once_and_is_charged(self, harness: Harness) -> None:
        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        assert summary.route == "general"
        assert summary.usage.model_calls == len(summary.steps) + 1
        assert summary.versions is not None
        assert summary.versions.reported_models["small"] == ["demo-small@rules-1"]


class TestInvariantNoToolWithoutAllow:
    """Invariant 1: every scheduled tool activity follows a recorded allow for that exact call."""

    async def test_history_shows_an_allow_before_every_tool_call(self, harness: Harness) -> None:
        summaries = [
            await harness.run("support_refund_agent", input={"ticket_id": t})
            for t in ("T-1001", "T-1003", "T-1005")
        ]
        for summary in summaries:
            history = await harness.history(summary.workflow_id)
            view = read_history(history)
            assert view.tool_calls, "these runs call tools"
            assert ungated_tool_calls(history) == []

    async def test_denied_and_held_calls_never_reach_a_tool(self, harness: Harness) -> None:
        for ticket in ("T-1003", "T-1004"):
            summary = await harness.run("support_refund_agent", input={"ticket_id": ticket})
            view = read_history(await harness.history(summary.workflow_id))
            held = [
                s.decision.tool
                for s in summary.steps
                if s.decision and s.decision.verdict != Verdict.ALLOW
            ]
            assert held
            assert not {c.tool for c in view.tool_calls} & set(held)
        assert harness.store.rows("refunds") == []

    async def test_the_checker_catches_a_call_without_an_allow(self, harness: Harness) -> None:
        """The history check itself must be able to fail: forge what the allow's record says."""
        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        history = await harness.history(summary.workflow_id)
        pinned = read_history(history).versions
        assert pinned is not None
        forged = pinned.policy_version.encode()
        for event in history.events:
            payloads = event.activity_task_scheduled_event_attributes.input.payloads
            if payloads and b"payments.issue_refund" in payloads[0].data:
                payloads[0].data = payloads[0].data.replace(forged, b"sha256:other-policy")
        problems = ungated_tool_calls(history)
        assert len(problems) == 1
        assert "payments.issue_refund step 3 ran under policy 'sha256:other-policy'" in problems[0]

    async def test_the_checker_catches_a_call_whose_event_shows_no_allow(
        self, harness: Harness
    ) -> None:
        """The allow rides in the tool's scheduled event: one that says something else fails."""
        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        history = await harness.history(summary.workflow_id)
        for event in history.events:
            payloads = event.activity_task_scheduled_event_attributes.input.payloads
            if payloads and b"payments.issue_refund" in payloads[0].data:
                payloads[0].data = payloads[0].data.replace(
                    b'"code":"allowed"', b'"code":"approval_required"'
                )
        problems = ungated_tool_calls(history)
        assert len(problems) == 1
        assert "payments.issue_refund step 3 ran without an allow" in problems[0]


class TestFailVisibly:
    """Bad data or a bug in workflow code fails the run for all to see; it does not retry a
    workflow task for ever while the run looks alive."""

    async def test_a_forged_carry_fails_the_run_and_runs_nothing(self, harness: Harness) -> None:
        """A namespace client can start the workflow with a second argument of its own."""
        async with harness.worker():
            handle = await harness.env.client.start_workflow(
                WORKFLOW_NAME,
                args=[
                    harness.input("support_refund_agent", input={"ticket_id": "T-1001"}),
                    {"segment": 2, "previous_run_ids": ["x"], "bundle": {"config": "nope"}},
                ],
                id=f"test-{uuid.uuid4()}",
                task_queue=harness.task_queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), timeout=30)
        assert "validation error" in str(failed.value.cause).lower()
        assert read_history(await handle.fetch_history()).tool_calls == []
        assert harness.store.rows("refunds") == []

    async def test_a_well_formed_carry_from_a_client_is_refused(self, harness: Harness) -> None:
        """A carry that validates (a real run's bundle, a fresh ledger) is still refused when
        the run was not continued from the run it names: otherwise a client could bring a
        bundle with policies of its own choosing."""
        done = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        view = read_history(await harness.history(done.workflow_id))
        carry = {
            "segment": 2,
            "previous_run_ids": [done.run_id],
            "started_at": "2026-12-01T00:00:00+00:00",
            "bundle": view.pinned_bundle().model_dump(mode="json"),
            "ledger": {},
            "steps_done": 0,
            "irreversible_done": 0,
        }
        refunds = len(harness.store.rows("refunds"))
        async with harness.worker():
            handle = await harness.env.client.start_workflow(
                WORKFLOW_NAME,
                args=[harness.input("support_refund_agent", input={"ticket_id": "T-1002"}), carry],
                id=f"test-{uuid.uuid4()}",
                task_queue=harness.task_queue,
            )
            with pytest.raises(WorkflowFailureError) as failed:
                await asyncio.wait_for(handle.result(), timeout=30)
        assert "not continued from the run the carry names" in str(failed.value.cause)
        assert read_history(await handle.fetch_history()).tool_calls == []
        assert len(harness.store.rows("refunds")) == refunds


class TestRetries:
    async def test_every_scheduled_activity_refuses_to_retry_what_no_retry_fixes(
        self, harness: Harness
    ) -> None:
        """The non-retryable set is declared once and every activity's policy carries it."""
        from temporalio.api.enums.v1 import EventType

        from tiergate.errors import NON_RETRYABLE_ERRORS

        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        history = await harness.history(summary.workflow_id)
        scheduled = [
            e.activity_task_scheduled_event_attributes
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert {a.activity_type.name for a in scheduled} >= {"agent__load", "model__propose"}
        for attrs in scheduled:
            listed = set(attrs.retry_policy.non_retryable_error_types)
            assert listed == set(NON_RETRYABLE_ERRORS), attrs.activity_type.name


class TestBadModelOutput:
    """Malformed model output is a recorded invalid proposal; no tool runs on it."""

    @pytest.mark.parametrize(
        ("output", "code"),
        [
            ("this is not json", "not_json"),
            (
                {"kind": "tool_call", "tool": "crm.read_ticket", "arguments": {}, "extra": 1},
                "schema",
            ),
            ({"kind": "launch_rockets"}, "schema"),
            ({"kind": "final_answer", "answer": "x" * 40_000}, "too_large"),
        ],
    )
    async def test_invalid_output_is_recorded(
        self, harness: Harness, output: object, code: str
    ) -> None:
        agent = harness.add_agent("a", budgets={"max_invalid_proposals": 1})
        summary = await harness.run(agent, input={}, model_overrides=scripted(output))
        assert summary.outcome == Outcome.FAILED
        assert summary.steps[0].invalid is not None
        assert summary.steps[0].invalid.code == code
        assert summary.usage.tool_calls == 0

    async def test_arguments_failing_the_schema_are_denied(self, harness: Harness) -> None:
        agent = harness.add_agent("a")
        bad = call(
            "payments.issue_refund", order_id="ORD-5001", amount_usd="-5", reason_code="damaged"
        )
        summary = await harness.run(agent, input={}, model_overrides=scripted(bad))
        decision = summary.steps[0].decision
        assert decision is not None
        assert decision.code == "invalid_arguments"
        assert "amount_usd" in decision.reason
        assert summary.outcome == Outcome.DENIED
        assert harness.store.rows("refunds") == []

    async def test_unknown_and_unlisted_tools_are_denied(self, harness: Harness) -> None:
        agent = harness.add_agent(
            "a", tools={"allowlist": ["crm.read_ticket"]}, budgets={"max_denials": 3}
        )
        summary = await harness.run(
            agent,
            input={},
            model_overrides=scripted(
                call("shell.exec", cmd="rm -rf /"),
                call(
                    "payments.issue_refund",
                    order_id="ORD-5001",
                    amount_usd="5",
                    reason_code="damaged",
                ),
                final(),
            ),
        )
        codes = [s.decision.code for s in summary.steps if s.decision]
        assert codes == ["unknown_tool", "not_in_allowlist"]
        assert summary.outcome == Outcome.COMPLETED
        assert summary.usage.tool_calls == 0

    async def test_a_denial_is_fed_back_when_the_budget_allows(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_denials": 2})
        summary = await harness.run(
            agent,
            input={},
            model_overrides=scripted(
                call("email.send", to="x@evil.example.net", subject="s", body="b"),
                call("crm.read_ticket", ticket_id="T-1001"),
                final(),
            ),
        )
        assert summary.outcome == Outcome.COMPLETED
        first = summary.steps[0]
        assert first.decision is not None
        assert first.decision.policy_ids == ["email_destination_allowlist"]
        assert summary.alerts == ["email_destination"]
        assert (first.observation or "").startswith("denied email.send")


class TestBudgets:
    """Invariant 4: each limit stops the run, recording which limit and by how much."""

    async def test_tokens(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_total_tokens": 1000})
        big = {
            "output": call("crm.read_ticket", ticket_id="T-1001"),
            "usage": {"input_tokens": 1500},
        }
        summary = await harness.run(agent, input={}, model_overrides=scripted(big, final()))
        assert summary.outcome == Outcome.BUDGET_EXHAUSTED
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "total_tokens"
        assert summary.budget_stop.over_by >= 500

    async def test_model_calls(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_model_calls": 2})
        steps = [call("crm.read_ticket", ticket_id=f"T-100{i}") for i in range(1, 5)]
        summary = await harness.run(agent, input={}, model_overrides=scripted(*steps))
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "model_calls"
        assert summary.usage.model_calls == 2

    async def test_tool_calls(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_tool_calls": 1})
        steps = [
            call("crm.read_ticket", ticket_id="T-1001"),
            call("orders.get_status", order_id="ORD-5001"),
        ]
        summary = await harness.run(agent, input={}, model_overrides=scripted(*steps))
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "tool_calls"
        assert summary.usage.tool_calls == 1
        view = read_history(await harness.history(summary.workflow_id))
        assert [c.tool for c in view.tool_calls] == ["crm.read_ticket"]

    async def test_cost(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_cost_usd": 0.01})
        pricey = {
            "output": call("crm.read_ticket", ticket_id="T-1001"),
            "usage": {"output_tokens": 1000},
        }
        summary = await harness.run(agent, input={}, model_overrides=scripted(pricey, final()))
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "cost_usd"
        assert summary.cost_usd == pytest.approx(0.015)

    async def test_repeated_identical_calls_are_a_loop(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_identical_tool_calls": 2})
        same = call("orders.get_status", order_id="ORD-5005")
        summary = await harness.run(
            agent, input={}, model_overrides=scripted(same, same, same, final())
        )
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "identical_tool_calls"
        assert summary.usage.tool_calls == 2

    async def test_exhausted_budget_never_tries_harder(self, harness: Harness) -> None:
        """After a stop, no further model or tool call is made."""
        agent = harness.add_agent("a", budgets={"max_tool_calls": 1})
        steps = [
            call("crm.read_ticket", ticket_id="T-1001"),
            call("orders.get_status", order_id="ORD-5001"),
            final(),
        ]
        summary = await harness.run(agent, input={}, model_overrides=scripted(*steps))
        assert summary.usage.model_calls == 2
        assert summary.outcome == Outcome.BUDGET_EXHAUSTED


class TestVersions:
    """Invariant 6: every run records what produced it."""

    async def test_summary_and_history_carry_versions(self, harness: Harness) -> None:
        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1001"})
        versions = summary.versions
        assert versions is not None
        assert versions.agent == "support_refund_agent"
        assert versions.agent_version == "1.0.0"
        assert versions.prompt_version == "support-v1"
        assert versions.policy_version.startswith("sha256:")
        assert versions.config_hash.startswith("sha256:")
        assert versions.tool_schemas_hash.startswith("sha256:")
        assert versions.code_version.startswith("tiergate ")
        assert versions.reported_models["frontier"] == ["demo-frontier@rules-1"]
        assert all(
            s.decision.policy_version == versions.policy_version
            for s in summary.steps
            if s.decision
        )
        view = read_history(await harness.history(summary.workflow_id))
        assert view.versions is not None
        assert view.versions.policy_version == versions.policy_version


class TestFailClosed:
    """Invariant 7: bad input stops with a typed reason and the history keeps it."""

    async def test_run_input_failing_its_schema_fails_the_run(self, harness: Harness) -> None:
        from tiergate.worker import build_worker

        workflow_id = f"bad-{uuid.uuid4()}"
        async with build_worker(
            harness.env.client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
        ):
            with pytest.raises(WorkflowFailureError) as failure:
                await harness.env.client.execute_workflow(
                    WORKFLOW_NAME, {"agnet": "typo"}, id=workflow_id, task_queue=harness.task_queue
                )
        cause = failure.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == "RunInputError"
        assert "agent" in cause.message
        view = read_history(await harness.history(workflow_id))
        assert view.input == {"agnet": "typo"}
        assert view.status == "failed"

    async def test_unknown_agent_fails_with_config_error(self, harness: Harness) -> None:
        with pytest.raises(WorkflowFailureError) as failure:
            await harness.run("no_such_agent", input={})
        activity_error = failure.value.cause
        assert activity_error is not None
        assert "no agent config named 'no_such_agent'" in str(activity_error.__cause__)

    async def test_tool_backend_error_is_recorded_and_applies_nothing(
        self, harness: Harness
    ) -> None:
        agent = harness.add_agent("a")
        refund = call(
            "payments.issue_refund", order_id="ORD-9999", amount_usd="5", reason_code="other"
        )
        summary = await harness.run(agent, input={}, model_overrides=scripted(refund, final()))
        result = summary.steps[0].tool_result
        assert result is not None
        assert not result.ok
        assert "ORD-9999 does not exist" in (result.error or "")
        assert harness.store.rows("refunds") == []
        assert summary.outcome == Outcome.COMPLETED

    async def test_unpriced_model_fails_closed(self, harness: Harness) -> None:
        agent = harness.add_agent("a")
        with pytest.raises(WorkflowFailureError) as failure:
            await harness.run(agent, input={}, model_overrides=scripted(final(), model="mystery-9"))
        assert "no price" in str(failure.value.cause)

    async def test_pii_in_a_tool_result_never_reaches_the_model(self, harness: Harness) -> None:
        summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1007"})
        first = summary.steps[0]
        assert first.tool_result is not None
        assert first.tool_result.contains_pii
        assert "4111" not in first.tool_result.preview
        assert first.output_checks[0].allowed is False
        assert summary.alerts == ["pii_redaction"]

    async def test_pii_in_an_email_body_is_blocked_before_sending(self, harness: Harness) -> None:
        agent = harness.add_agent("a")
        email = call(
            "email.send",
            to="pat@customers.example.com",
            subject="hi",
            body="card 4111 1111 1111 1111",
        )
        summary = await harness.run(agent, input={}, model_overrides=scripted(email))
        decision = summary.steps[0].decision
        assert decision is not None
        assert decision.code == "output_blocked"
        assert decision.policy_ids == ["pii_redaction"]
        assert harness.store.rows("emails") == []


async def test_refund_amount_is_canonical(harness: Harness) -> None:
    """Equal amounts spelled differently are the same call (same digest)."""
    agent = harness.add_agent("a", budgets={"max_identical_tool_calls": 1})
    summary = await harness.run(
        agent,
        input={},
        model_overrides=scripted(
            call(
                "payments.issue_refund", order_id="ORD-5001", amount_usd="10", reason_code="damaged"
            ),
            call(
                "payments.issue_refund",
                order_id="ORD-5001",
                amount_usd="10.00",
                reason_code="damaged",
            ),
        ),
    )
    assert summary.budget_stop is not None
    assert summary.budget_stop.limit == "identical_tool_calls"
    assert [Decimal(r["amount_usd"]) for r in harness.store.rows("refunds")] == [Decimal("10.00")]


async def test_model_input_does_not_grow_with_the_conversation(harness: Harness) -> None:
    """DESIGN: the transcript lives in the content store; each model call carries a hash."""
    agent = harness.add_agent("a", budgets={"max_tool_calls": 20, "max_model_calls": 20})
    reads = [call("crm.read_ticket", ticket_id=f"T-100{i}") for i in range(1, 8)]
    summary = await harness.run(agent, input={}, model_overrides=scripted(*reads, final()))
    assert summary.outcome == Outcome.COMPLETED
    history = await harness.history(summary.workflow_id)
    sizes = [
        e.activity_task_scheduled_event_attributes.input.ByteSize()
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "model__propose"
    ]
    assert len(sizes) == 8
    later = sizes[1:]
    assert max(later) - min(later) < 64, sizes


async def test_status_query_reports_the_final_state(harness: Harness) -> None:
    summary = await harness.run("support_refund_agent", input={"ticket_id": "T-1007"})
    from tiergate.core import RunStatus

    async with build_worker(
        harness.env.client, harness.settings, SUPPORT_TOOLKIT, task_queue=harness.task_queue
    ):
        status = await harness.env.client.get_workflow_handle(summary.workflow_id).query(
            "status", result_type=RunStatus
        )
    assert status.state == "finished"
    assert status.outcome == Outcome.ESCALATED
    assert status.step == len(summary.steps)
    assert status.usage == summary.usage
    assert status.pending_action is None


async def test_scripted_model_reads_its_script_from_a_file(harness: Harness) -> None:
    (harness.home / "agents" / "scripts").mkdir(parents=True)
    (harness.home / "agents" / "scripts" / "lookup.yaml").write_text(
        "- {kind: tool_call, tool: orders.get_status, arguments: {order_id: ORD-5004}, reason: check}\n"
        "- {kind: final_answer, answer: in transit}\n"
    )
    agent = harness.add_agent(
        "filed",
        models={
            "frontier": {
                "provider": "scripted",
                "model": "demo-frontier",
                "script": "scripts/lookup.yaml",
            }
        },
    )
    summary = await harness.run(agent, input={})
    assert summary.final_answer == "in transit"
    assert summary.steps[0].tool_result is not None
    assert "in_transit" in summary.steps[0].tool_result.preview
