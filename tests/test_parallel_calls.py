"""Several tool calls in one model answer (#25 item 3): each is a step of its own, gated,
budgeted, keyed and approved on its own; allowed reads run at once, everything else in the
proposed order; every result goes back to the model in one turn."""

from __future__ import annotations

import json
import shutil
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from tests.conftest import Harness, call, final, scripted
from tests.fake_anthropic import message as anthropic_message
from tests.fake_openai import Reply, completion, serve
from tests.test_approvals import answer
from tests.test_approvals import approvers as approvers  # a fixture
from tests.test_openai_provider import declared, openai, priced_agent
from tests.test_replay import replayer
from tests.test_what_if import DEMO_POLICIES
from tiergate.activities._anthropic import parse_message
from tiergate.activities._anthropic import to_messages as anthropic_messages
from tiergate.activities._openai import parse_completion, to_messages
from tiergate.core import (
    MULTIPLE_TOOL_CALLS,
    TOOL_CALLS,
    InvalidProposal,
    Outcome,
    ToolCallProposal,
    ToolCallsProposal,
    TranscriptEntry,
    Verdict,
    parse_proposal,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.forensics import build_timeline, ungated_tool_calls, what_if
from tiergate.forensics._reader import read_history
from tiergate.forensics._what_if import candidate_policies

FOUR_READS = [
    ("crm__read_ticket", {"ticket_id": "T-1001"}),
    ("orders__get_status", {"order_id": "ORD-5001"}),
    ("orders__get_status", {"order_id": "ORD-5002"}),
    ("crm__read_ticket", {"ticket_id": "T-1002"}),
]


def calls(*proposals: dict[str, Any]) -> dict[str, Any]:
    """A scripted answer with several tool calls."""
    return {"kind": TOOL_CALLS, "calls": list(proposals)}


def functions(pairs: list[tuple[str, dict[str, Any]]]) -> Reply:
    """A chat completion proposing these function calls in one answer."""
    return completion(
        {
            "content": None,
            "tool_calls": [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps({**args, "reason": "r"})},
                }
                for n, (name, args) in enumerate(pairs)
            ],
        }
    )


def tool_events(history: WorkflowHistory) -> list[tuple[str, int]]:
    """(scheduled|completed, scheduled event id) of the tool activities, in history order."""
    scheduled: dict[int, str] = {}
    out = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            if name.startswith("tool__"):
                scheduled[event.event_id] = name
                out.append(("scheduled", event.event_id))
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            first = event.activity_task_completed_event_attributes.scheduled_event_id
            if first in scheduled:
                out.append(("completed", first))
    return out


def all_at_once(events: list[tuple[str, int]]) -> bool:
    kinds = [kind for kind, _ in events]
    return kinds == sorted(kinds, reverse=True)  # every schedule before any completion


def one_by_one(events: list[tuple[str, int]]) -> bool:
    return [kind for kind, _ in events] == ["scheduled", "completed"] * (len(events) // 2)


class TestProtocol:
    def test_several_function_calls_are_one_answer(self) -> None:
        output = parse_completion(
            functions(FOUR_READS[:2]).body, list(SUPPORT_TOOLS.specs.values())
        )
        assert output.raw == {
            "kind": TOOL_CALLS,
            "calls": [
                {
                    "kind": "tool_call",
                    "tool": "crm.read_ticket",
                    "arguments": {"ticket_id": "T-1001"},
                    "reason": "r",
                },
                {
                    "kind": "tool_call",
                    "tool": "orders.get_status",
                    "arguments": {"order_id": "ORD-5001"},
                    "reason": "r",
                },
            ],
        }

    def test_a_flood_is_counted_not_listed(self) -> None:
        flood = [("crm__read_ticket", {"ticket_id": f"T-{n}"}) for n in range(1000)]
        raw = parse_completion(functions(flood).body, []).raw
        assert isinstance(raw, dict)
        assert (raw["kind"], raw["count"]) == (MULTIPLE_TOOL_CALLS, 1000)
        assert "calls" not in raw

    def test_every_call_is_answered_by_id_in_order(self) -> None:
        batch = calls(
            call("crm.read_ticket", ticket_id="T-1"), call("orders.get_status", order_id="O")
        )
        entries = [
            TranscriptEntry(role="system", content="s"),
            TranscriptEntry(role="user", content="{}"),
            TranscriptEntry(role="assistant", content=json.dumps(batch)),
            TranscriptEntry(role="tool", name="crm.read_ticket", content="ticket"),
            TranscriptEntry(role="gate", content="denied orders.get_status: no"),
        ]
        messages = to_messages(entries)
        ids = [c["id"] for c in messages[2]["tool_calls"]]
        assert [c["function"]["name"] for c in messages[2]["tool_calls"]] == [
            "crm__read_ticket",
            "orders__get_status",
        ]
        assert len(set(ids)) == 2
        assert messages[3:] == [
            {"role": "tool", "tool_call_id": ids[0], "content": "ticket"},
            {"role": "tool", "tool_call_id": ids[1], "content": "denied orders.get_status: no"},
        ]
        _, anthropic = anthropic_messages(entries)
        uses = [b["id"] for b in anthropic[1]["content"]]
        assert [b["tool_use_id"] for b in anthropic[2]["content"]] == uses
        assert [b["content"] for b in anthropic[2]["content"]] == [
            "ticket",
            "denied orders.get_status: no",
        ]

    def test_one_note_refusing_the_answer_answers_every_call(self) -> None:
        batch = calls(
            call("crm.read_ticket", ticket_id="T-1"), call("crm.read_ticket", ticket_id="T-2")
        )
        note = "invalid proposal (schema): ..."
        entries = [
            TranscriptEntry(role="assistant", content=json.dumps(batch)),
            TranscriptEntry(role="gate", content=note),
            TranscriptEntry(role="user", content="next"),
        ]
        messages = to_messages(entries)
        ids = [c["id"] for c in messages[0]["tool_calls"]]
        assert messages[1:3] == [{"role": "tool", "tool_call_id": i, "content": note} for i in ids]
        assert messages[3] == {"role": "user", "content": "next"}

    def test_anthropic_tool_uses_are_one_answer(self) -> None:
        body = anthropic_message(
            {
                "type": "tool_use",
                "id": "a",
                "name": "crm__read_ticket",
                "input": {"ticket_id": "T-1"},
            },
            {
                "type": "tool_use",
                "id": "b",
                "name": "crm__read_ticket",
                "input": {"ticket_id": "T-2"},
            },
        ).body
        raw = parse_message(body, list(SUPPORT_TOOLS.specs.values())).raw
        assert isinstance(raw, dict)
        assert raw["kind"] == TOOL_CALLS
        assert [c["arguments"]["ticket_id"] for c in raw["calls"]] == ["T-1", "T-2"]


class TestParsing:
    def parse(self, raw: Any, max_calls: int = 8) -> Any:
        return parse_proposal(raw, len(json.dumps(raw)), 32_000, max_calls=max_calls)

    def test_an_answer_within_the_agents_limit_is_its_calls(self) -> None:
        parsed = self.parse(calls(call("a.b", x=1), call("a.c", y=2)))
        assert isinstance(parsed, ToolCallsProposal)
        assert [c.tool for c in parsed.calls] == ["a.b", "a.c"]

    def test_an_answer_of_one_call_is_that_call(self) -> None:
        assert isinstance(self.parse(calls(call("a.b"))), ToolCallProposal)

    def test_more_calls_than_the_agent_takes_are_refused_whole(self) -> None:
        parsed = self.parse(calls(*[call("a.b", n=n) for n in range(3)]), max_calls=2)
        assert isinstance(parsed, InvalidProposal)
        assert parsed.code == MULTIPLE_TOOL_CALLS
        assert "3 tool calls in one answer" in parsed.message
        assert "tools.max_parallel_calls" in parsed.message

    def test_one_bad_call_makes_the_whole_answer_invalid(self) -> None:
        parsed = self.parse(calls(call("a.b"), {"kind": "tool_call", "arguments": {}}))
        assert isinstance(parsed, InvalidProposal)
        assert parsed.code == "schema"
        assert "calls.1.tool" in parsed.message
        mixed = self.parse(calls(call("a.b"), final()))
        assert isinstance(mixed, InvalidProposal)


class TestRuns:
    async def test_four_reads_take_two_model_calls_and_run_at_once(self, harness: Harness) -> None:
        agent = priced_agent(harness)
        replies = [functions(FOUR_READS), completion({"content": "All four read."})]
        with serve(replies) as fake:
            summary = await harness.run(
                agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
            )
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        assert summary.usage.model_calls == 2
        assert summary.usage.tool_calls == 4
        assert "parallel_tool_calls" not in fake.requests[0]["body"]
        reads = summary.steps[:4]
        assert [s.step for s in reads] == [1, 2, 3, 4]
        assert all(s.tool_result is not None and s.tool_result.ok for s in reads)
        assert all(s.decision is not None and s.decision.verdict == Verdict.ALLOW for s in reads)
        assert len({s.idempotency_key for s in reads}) == 4
        assert [s.batch.index if s.batch else None for s in reads] == [0, 1, 2, 3]
        assert {s.batch.turn if s.batch else None for s in reads} == {1}
        assert reads[0].usage.total > 0  # the answer's model call is its first step's
        assert all(s.usage.total == 0 and s.cost_usd == 0 for s in reads[1:])
        sent = fake.requests[1]["body"]["messages"]
        asked = next(m for m in sent if m.get("tool_calls"))
        answers = [m for m in sent if m["role"] == "tool"]
        assert [m["tool_call_id"] for m in answers] == [c["id"] for c in asked["tool_calls"]]
        assert "T-1001" in answers[0]["content"]
        assert "ORD-5002" in answers[2]["content"]
        history = await harness.history(summary.workflow_id)
        assert all_at_once(tool_events(history))
        assert ungated_tool_calls(history) == []
        await replayer().replay_workflow(history)  # concurrent reads replay to the same commands
        timeline = build_timeline(history)
        assert [s.turn for s in timeline.steps[:4]] == [None, 1, 1, 1]
        candidate = harness.home / "candidate"
        candidate.mkdir()
        shutil.copy(DEMO_POLICIES / "support.cedar", candidate)
        report = what_if([read_history(history)], candidate_policies(candidate))
        assert (report.decisions, report.flips, report.unreproduced) == (4, [], [])

    async def test_one_call_per_answer_when_the_agent_takes_one(self, harness: Harness) -> None:
        agent = priced_agent(
            harness,
            tools={"allowlist": ["crm.read_ticket", "orders.get_status"], "max_parallel_calls": 1},
        )
        replies = [functions([pair]) for pair in FOUR_READS] + [completion({"content": "done"})]
        with serve(replies) as fake:
            summary = await harness.run(
                agent, input={}, model_overrides=declared(harness, agent, openai(fake.base_url))
            )
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        assert summary.usage.model_calls == 5  # the same task, one call per answer
        assert all(r["body"]["parallel_tool_calls"] is False for r in fake.requests)

    async def test_writes_run_in_order_after_the_reads_before_them(self, harness: Harness) -> None:
        agent = harness.add_agent("a")
        answer_ = calls(
            call("crm.read_ticket", ticket_id="T-1001"),
            call("orders.get_status", order_id="ORD-5001"),
            call("crm.update_ticket", ticket_id="T-1001", status="pending", reply="on it"),
            call("crm.read_ticket", ticket_id="T-1002"),
            call("crm.update_ticket", ticket_id="T-1002", status="pending", reply="looking"),
        )
        summary = await harness.run(agent, input={}, model_overrides=scripted(answer_, final()))
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        assert [s.decision.tool for s in summary.steps[:5] if s.decision] == [
            "crm.read_ticket",
            "orders.get_status",
            "crm.update_ticket",
            "crm.read_ticket",
            "crm.update_ticket",
        ]
        events = tool_events(await harness.history(summary.workflow_id))
        kinds = [kind for kind, _ in events]
        # the two reads at once, then the write alone, then the read, then the write
        assert (
            kinds
            == ["scheduled", "scheduled", "completed", "completed"]
            + [
                "scheduled",
                "completed",
            ]
            * 3
        )
        assert summary.usage.model_calls == 2

    async def test_a_held_call_is_approved_on_its_own(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        refund = call(
            "payments.issue_refund",
            order_id="ORD-5002",
            amount_usd="400",
            reason_code="not_delivered",
        )
        answer_ = calls(call("orders.get_status", order_id="ORD-5002"), refund)
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(answer_, final()))
            pending = await h.pending(handle)
            assert (pending.step, pending.tool) == (2, "payments.issue_refund")
            assert h.store.rows("refunds") == []
            await answer(h, handle.id, "lead")
            summary = await handle.result()
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        held = summary.steps[1]
        assert held.approval is not None
        assert held.approval.status == "approved"
        assert held.batch is not None
        assert (held.batch.turn, held.batch.index) == (1, 1)
        assert summary.steps[0].approval is None
        assert len(h.store.rows("refunds")) == 1
        assert ungated_tool_calls(await h.history(handle.id)) == []

    async def test_an_answer_larger_than_the_budget_left_runs_none(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_tool_calls": 3})
        answer_ = calls(*[call("crm.read_ticket", ticket_id=f"T-100{n}") for n in range(1, 5)])
        summary = await harness.run(agent, input={}, model_overrides=scripted(answer_, final()))
        assert summary.outcome == Outcome.BUDGET_EXHAUSTED
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "tool_calls"
        assert "none of its calls ran" in summary.reason
        assert summary.usage.tool_calls == 0
        assert tool_events(await harness.history(summary.workflow_id)) == []

    async def test_a_stop_part_way_says_what_did_not_run(self, harness: Harness) -> None:
        agent = harness.add_agent("a")  # max_denials 1
        answer_ = calls(
            call("crm.read_ticket", ticket_id="T-1001"),
            call("payments.issue_refund", order_id="ORD-5001", amount_usd="5", reason_code="nope"),
            call("crm.read_ticket", ticket_id="T-1002"),
            call("crm.read_ticket", ticket_id="T-1003"),
        )
        summary = await harness.run(agent, input={}, model_overrides=scripted(answer_, final()))
        assert summary.outcome == Outcome.DENIED
        assert "2 more calls of the same answer did not run" in summary.reason
        assert [s.step for s in summary.steps] == [1, 2]
        assert summary.steps[0].tool_result is not None  # the read before it ran first
        assert summary.steps[1].tool_result is None
        assert summary.steps[0].batch is not None
        assert summary.steps[0].batch.size == 4

    async def test_the_same_call_twice_does_not_run_at_once(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_identical_tool_calls": 1})
        same = call("crm.read_ticket", ticket_id="T-1001")
        summary = await harness.run(
            agent, input={}, model_overrides=scripted(calls(same, same), final())
        )
        assert summary.outcome == Outcome.BUDGET_EXHAUSTED
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "identical_tool_calls"
        assert summary.usage.tool_calls == 1

    async def test_reads_run_one_by_one_when_a_policy_reads_the_session(
        self, harness: Harness
    ) -> None:
        (harness.home / "agents").mkdir(exist_ok=True)
        (harness.home / "agents" / "session.cedar").write_text(
            '@id("two_lookups")\n'
            'forbid(principal, action == Action::"orders.get_status", resource)\n'
            'when { context.session.calls["orders.get_status"] >= 2 };\n'
        )
        agent = harness.add_agent(
            "a",
            policy={"engine": "cedar", "files": ["support.cedar", "session.cedar"]},
            budgets={"max_denials": 3},
        )
        answer_ = calls(*[call("orders.get_status", order_id=f"ORD-500{n}") for n in (1, 2, 3)])
        summary = await harness.run(agent, input={}, model_overrides=scripted(answer_, final()))
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        verdicts = [s.decision.verdict if s.decision else None for s in summary.steps[:3]]
        assert verdicts == [Verdict.ALLOW, Verdict.ALLOW, Verdict.DENY]
        assert summary.steps[2].decision is not None
        assert summary.steps[2].decision.policy_ids == ["two_lookups"]
        events = tool_events(await harness.history(summary.workflow_id))
        assert len(events) == 4
        assert one_by_one(events)

    async def test_a_flood_of_calls_runs_none(self, harness: Harness) -> None:
        agent = harness.add_agent("a", budgets={"max_invalid_proposals": 1})
        flood = calls(*[call("crm.read_ticket", ticket_id="T-1001")] * 9)  # default limit 8
        summary = await harness.run(agent, input={}, model_overrides=scripted(flood))
        assert summary.outcome == Outcome.FAILED
        invalid = summary.steps[0].invalid
        assert invalid is not None
        assert invalid.code == MULTIPLE_TOOL_CALLS
        assert tool_events(await harness.history(summary.workflow_id)) == []


@pytest.mark.parametrize("size", [2, 5])
async def test_scripted_answers_count_answers_not_steps(harness: Harness, size: int) -> None:
    """A script lists answers: after an answer of ``size`` calls, the next entry answers."""
    agent = harness.add_agent("a")
    reads = [call("crm.read_ticket", ticket_id=f"T-100{n}") for n in range(1, size + 1)]
    summary = await harness.run(
        agent, input={}, model_overrides=scripted(calls(*reads), final("after the reads"))
    )
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    assert summary.final_answer == "after the reads"
    assert len(summary.steps) == size + 1
