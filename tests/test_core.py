"""The pure core on its own: no server, no Temporal. Every stop rule and every rewrite of a
decision is a plain call with its inputs, and what comes back is a value."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from tiergate.config import PACKAGED_AGENTS, compile_agent, parse_agent_yaml
from tiergate.core import (
    ActivityFailure,
    AgentBundle,
    Allowed,
    ControlCommand,
    Decision,
    Denied,
    Gate,
    Held,
    ModelResponse,
    Outcome,
    RunInput,
    RunState,
    Stop,
    TokenUsage,
    ToolCallProposal,
    ToolResult,
    Verdict,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.sensitive import pii_kinds

START = datetime(2026, 12, 1, tzinfo=UTC)


def bundle(**changes: Any) -> AgentBundle:
    """The demo's agent with ``changes`` to its config sections (budgets=..., approvals=...)."""
    path = PACKAGED_AGENTS / "support_refund_agent.yaml"
    base = compile_agent(parse_agent_yaml(path.read_text(), str(path)), path, SUPPORT_TOOLS.specs)
    config = base.config
    updates = {
        key: getattr(config, key).model_copy(update=value) if isinstance(value, dict) else value
        for key, value in changes.items()
    }
    return base.model_copy(update={"config": config.model_copy(update=updates)})


def state(b: AgentBundle | None = None, **run: Any) -> RunState:
    b = b or bundle()
    gate = Gate.of(b, detect=pii_kinds)
    return RunState(b, RunInput(agent=b.config.name, **run), gate, START)


def response(raw: Any, tokens: int = 10) -> ModelResponse:
    text = raw if isinstance(raw, str) else str(raw)
    return ModelResponse(
        raw=raw,
        raw_size=len(text),
        usage=TokenUsage(input_tokens=tokens, output_tokens=tokens),
        reported_model="demo-frontier@rules-1",
        transcript_head="h",
    )


def refund(amount: str = "20", order: str = "ORD-5001") -> ToolCallProposal:
    arguments = {"order_id": order, "amount_usd": amount, "reason_code": "late"}
    return ToolCallProposal(tool="payments.issue_refund", arguments=arguments, reason="t")


def ok(size: int = 10, kinds: list[str] | None = None) -> ToolResult:
    return ToolResult(ok=True, output_ref="r", output_size=size, pii_kinds=kinds or [])


def allowed(s: RunState, proposal: ToolCallProposal) -> Allowed:
    record = s.steps.open(START)
    decision = s.decide(record, proposal)
    assert isinstance(decision, Allowed), decision
    return decision


class TestPurity:
    def test_importing_the_core_loads_no_temporal_and_nothing_else_of_tiergate(self) -> None:
        """The core stands alone: importing it brings in neither temporalio nor any part of
        tiergate that touches files, network or clocks."""
        probe = (
            "import sys, tiergate.core;"
            "assert 'temporalio' not in sys.modules, 'temporalio';"
            "extra = sorted(m for m in sys.modules if m.startswith('tiergate.')"
            " and not m.startswith('tiergate.core') and m != 'tiergate.errors');"
            "assert not extra, extra"
        )
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    def test_the_core_source_names_no_clock_and_no_file(self) -> None:
        """No call to a clock or a file in the core's code: time is always an argument."""
        core = Path(__file__).parent.parent / "src" / "tiergate" / "core"
        forbidden = [
            r"datetime\.now\(",
            r"\btime\.time\(",
            r"(?<![\w.])(?<!def )open\(",
            r"\.read_text\(",
            "urandom",
        ]
        for path in core.glob("*.py"):
            text = path.read_text()
            for pattern in forbidden:
                assert not re.search(pattern, text), (path.name, pattern)


class TestDecisionCases:
    def test_a_decision_is_one_of_three_cases_by_its_verdict(self) -> None:
        adapter: TypeAdapter[Decision] = TypeAdapter(Decision)
        common = {"code": "c", "reason": "r", "tool": "t.x", "registered_tier": 0, "tier": 0}
        evidence = {"arguments": {}, "call_digest": "d" * 64}
        assert isinstance(
            adapter.validate_python({"verdict": "allow", **common, **evidence}), Allowed
        )
        held = adapter.validate_python({"verdict": "needs_dual_approval", **common, **evidence})
        assert isinstance(held, Held)
        assert held.required_approvals == 2
        assert isinstance(adapter.validate_python({"verdict": "deny", **common}), Denied)

    def test_an_allow_cannot_exist_without_the_call_it_allows(self) -> None:
        """An allow without arguments and digest is not a value the core can hold."""
        with pytest.raises(ValidationError):
            # arguments and digest left out on purpose: mypy flags it, and pydantic must refuse
            # it at run time too, since decisions also arrive deserialized from histories.
            Allowed(code="allowed", reason="r", tool="t.x", registered_tier=0, tier=0)  # type: ignore[call-arg]


class TestModelBudgets:
    def test_tokens_spent_stop_the_next_model_call(self) -> None:
        s = state(bundle(budgets={"max_total_tokens": 30}))
        s.charge_model("frontier", response("x", tokens=15), 1)
        stop = s.model_stop(START)
        assert stop is not None
        assert stop.outcome == Outcome.BUDGET_EXHAUSTED
        assert stop.budget_stop is not None
        assert stop.budget_stop.limit == "total_tokens"

    def test_wall_time_is_an_argument_and_waiting_for_people_does_not_count(self) -> None:
        s = state(bundle(budgets={"max_wall_time_seconds": 25}))
        assert s.model_stop(START + timedelta(seconds=24)) is None
        late = s.model_stop(START + timedelta(seconds=26))
        assert late is not None
        assert late.budget_stop is not None
        assert late.budget_stop.limit == "wall_time_seconds"
        s.waited_seconds = 10.0  # ten seconds were an approver's, not the agent's
        assert s.model_stop(START + timedelta(seconds=26)) is None

    def test_a_model_call_count_limit(self) -> None:
        s = state(bundle(budgets={"max_model_calls": 1}))
        s.charge_model("frontier", response("x"), 1)
        stop = s.model_stop(START)
        assert stop is not None
        assert stop.budget_stop is not None
        assert stop.budget_stop.limit == "model_calls"


class TestProposals:
    def test_invalid_output_is_fed_back_until_the_budget_of_invalid_proposals(self) -> None:
        s = state(bundle(budgets={"max_invalid_proposals": 2}))
        first = s.take_proposal(s.steps.open(START), response("not json"))
        assert first is None
        assert s.append[-1].role == "gate"
        second = s.take_proposal(s.steps.open(START), response("still not json"))
        assert isinstance(second, Stop)
        assert second.outcome == Outcome.FAILED
        assert "2 invalid proposals" in second.reason

    def test_a_final_answer_with_a_card_number_is_withheld(self) -> None:
        s = state()
        answer = {"kind": "final_answer", "answer": "card 4111 1111 1111 1111", "reason": "r"}
        stop = s.take_proposal(s.steps.open(START), response(answer))
        assert isinstance(stop, Stop)
        assert stop.outcome == Outcome.DENIED
        assert "pii_redaction" in s.alerts
        assert s.final_answer is None

    def test_escalation_by_the_model_ends_the_run(self) -> None:
        s = state()
        stop = s.take_proposal(s.steps.open(START), response({"kind": "escalate", "reason": "x"}))
        assert isinstance(stop, Stop)
        assert stop.outcome == Outcome.ESCALATED

    def test_drift_stops_before_the_answer_is_used_when_the_agent_says_so(self) -> None:
        s = state(bundle(on_model_drift="stop"))
        odd = response("x").model_copy(update={"reported_model": "someone-else"})
        call = s.charge_model("frontier", odd, 1)
        record = s.steps.open(START)
        stop = s.drift_stop(call, record)
        assert isinstance(stop, Stop)
        assert stop.outcome == Outcome.ESCALATED
        assert record.model_drift is not None
        assert "model_drift" in s.alerts


class TestDecisionRewrites:
    def test_a_disabled_tool_is_denied_with_the_calls_evidence_kept(self) -> None:
        s = state()
        s.switch.apply(ControlCommand(action="disable_tool", tool="payments.issue_refund"), START)
        record = s.steps.open(START)
        decision = s.decide(record, refund())
        assert isinstance(decision, Denied)
        assert decision.code == "tool_disabled"
        assert decision.policy_ids == []
        assert decision.call_digest is not None
        assert record.decision == decision

    def test_an_approved_call_is_denied_if_its_tool_was_disabled_during_the_wait(self) -> None:
        s = state()
        record = s.steps.open(START)
        approved = allowed(s, refund())
        assert s.approved(record, approved) is approved
        s.switch.apply(ControlCommand(action="disable_tool", tool="payments.issue_refund"), START)
        late = s.approved(record, approved)
        assert isinstance(late, Denied)
        assert (late.code, late.call_digest) == ("tool_disabled", approved.call_digest)
        assert record.decision == late

    def test_pause_resume_and_enable_are_recorded_in_order(self) -> None:
        s = state()
        for action in ("pause", "resume", "disable_tool", "enable_tool"):
            s.switch.apply(ControlCommand(action=action, tool="email.send", by="op"), START)
        assert not s.switch.paused
        assert s.switch.disabled == set()
        assert [c["action"] for c in s.switch.memo()["events"]] == [
            "pause",
            "resume",
            "disable_tool",
            "enable_tool",
        ]

    def test_a_cap_that_refused_the_call_makes_it_a_denial_named_after_the_cap(self) -> None:
        s = state(bundle(budgets={"max_denials": 5}))
        decision = allowed(s, refund())
        record = s.steps.records[-1]
        limited = ToolResult(ok=False, code="rate_limited", cap="refunds_per_day", error="full")
        assert s.acted(record, decision, limited) is None
        assert isinstance(record.decision, Denied)
        assert record.decision.code == "rate_limited"
        assert record.decision.policy_ids == ["refunds_per_day"]
        assert s.ledger.denials == 1

    def test_the_first_denial_ends_the_run_by_default(self) -> None:
        s = state()
        record = s.steps.open(START)
        decision = s.decide(record, ToolCallProposal(tool="admin.export", arguments={}))
        assert isinstance(decision, Denied)
        stop = s.denied(record, decision)
        assert isinstance(stop, Stop)
        assert stop.outcome == Outcome.DENIED
        assert stop.reason.startswith("unknown_tool")

    def test_a_deny_by_people_escalates_or_feeds_back_as_configured(self) -> None:
        for on_deny, outcome in (("escalate", Outcome.ESCALATED), ("continue", None)):
            s = state(bundle(approvals={"on_deny": on_deny}))
            record = s.steps.open(START)
            held = s.decide(record, refund("400"))
            assert isinstance(held, Held)
            denied = Denied(code="approval_denied", reason="no", tool=held.tool)
            stop = s.refused_by_people(record, denied)
            assert (stop.outcome if stop else None) == outcome


class TestToolBudgets:
    def test_the_same_call_again_is_a_loop(self) -> None:
        s = state(bundle(budgets={"max_identical_tool_calls": 1}))
        read = ToolCallProposal(tool="crm.read_ticket", arguments={"ticket_id": "T-1"})
        first = allowed(s, read)
        assert s.tool_stop(first, START) is None
        s.acted(s.steps.records[-1], first, ok())
        again = allowed(s, read)
        stop = s.tool_stop(again, START)
        assert stop is not None
        assert stop.budget_stop is not None
        assert stop.budget_stop.limit == "identical_tool_calls"

    def test_irreversible_actions_are_capped_per_run(self) -> None:
        s = state(bundle(budgets={"max_irreversible_actions": 1}))
        first = allowed(s, refund("10", "ORD-5001"))
        assert s.tool_stop(first, START) is None
        s.acted(s.steps.records[-1], first, ok())
        second = allowed(s, refund("10", "ORD-5002"))
        stop = s.tool_stop(second, START)
        assert stop is not None
        assert stop.budget_stop is not None
        assert stop.budget_stop.limit == "irreversible_actions"

    def test_reads_are_not_irreversible(self) -> None:
        s = state(bundle(budgets={"max_irreversible_actions": 0}))
        read = allowed(
            s, ToolCallProposal(tool="orders.get_status", arguments={"order_id": "ORD-1"})
        )
        assert s.tool_stop(read, START) is None

    def test_a_result_the_output_rules_block_is_withheld_from_the_model(self) -> None:
        s = state()
        decision = allowed(
            s, ToolCallProposal(tool="crm.read_ticket", arguments={"ticket_id": "T-1"})
        )
        record = s.steps.records[-1]
        assert s.acted(record, decision, ok(kinds=["card_number"])) is None
        assert record.observation is not None
        assert "withheld" in record.observation
        assert "pii_redaction" in s.alerts
        assert s.append[-1].role == "gate"

    def test_an_ok_result_is_fed_back_by_reference_and_needs_no_mark(self) -> None:
        s = state()
        decision = allowed(
            s, ToolCallProposal(tool="crm.read_ticket", arguments={"ticket_id": "T-1"})
        )
        s.steps.take_marks()
        s.acted(s.steps.records[-1], decision, ok())
        assert s.append[-1].ref == "r"
        assert s.steps.take_marks() == []


class TestFailures:
    def test_attempts_exhausted_is_the_retry_budget_charged(self) -> None:
        s = state()
        failure = ActivityFailure(cause="down", attempts=3, attempts_exhausted=True)
        stop = s.failed("model__propose", failure, START)
        assert stop.outcome == Outcome.BUDGET_EXHAUSTED
        assert stop.budget_stop is not None
        assert stop.budget_stop.limit == "retries"
        assert s.ledger.retries == 2

    def test_a_timeout_past_the_wall_time_is_that_budget_else_a_failure(self) -> None:
        s = state(bundle(budgets={"max_wall_time_seconds": 5}))
        timeout = ActivityFailure(cause="slow", timed_out=True)
        past = s.failed("tool__x", timeout, START + timedelta(seconds=6))
        assert past.budget_stop is not None
        assert past.budget_stop.limit == "wall_time_seconds"
        within = s.failed("tool__x", timeout, START + timedelta(seconds=1))
        assert within.outcome == Outcome.FAILED

    def test_a_failed_write_without_keys_escalates_to_a_person(self) -> None:
        stop = Stop.unknown_effect("tool__billing.change_plan", "lost")
        assert stop.outcome == Outcome.ESCALATED
        assert "check whether the effect happened" in stop.reason


class TestCarry:
    def test_the_next_segment_continues_every_count_and_the_kill_switch(self) -> None:
        s = state()
        decision = allowed(s, refund())
        s.acted(s.steps.records[-1], decision, ok())
        s.switch.apply(ControlCommand(action="disable_tool", tool="email.send"), START)
        carry = s.carry("run-1")
        nxt = state()
        nxt.resume(carry)
        assert nxt.ledger == s.ledger
        assert nxt.steps.done == 1
        assert nxt.steps.irreversible_done(nxt.bundle.tools) == 1
        assert "email.send" in nxt.switch.disabled
        assert nxt.previous_run_ids == ["run-1"]
        assert nxt.steps.open(START).step == 2


def test_a_price_is_needed_for_every_model_the_run_uses() -> None:
    from tiergate.core import ModelSpec
    from tiergate.errors import RunInputError

    offline = bundle().model_copy(update={"offline_model_overrides": True})
    with pytest.raises(RunInputError, match="has no price"):
        state(offline, model_overrides={"frontier": ModelSpec(provider="demo", model="unpriced")})


def test_the_verdict_names_the_case() -> None:
    s = state()
    held = s.decide(s.steps.open(START), refund("400"))
    assert held.verdict == Verdict.NEEDS_APPROVAL
