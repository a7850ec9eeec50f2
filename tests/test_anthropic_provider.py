"""Issue #21, item 4: Anthropic's Messages API as a provider, against a real local server.

Tool use and tool results, stop reasons, usage with prompt-cache tokens and the cost they
make, 429/529 with retry-after through Temporal's retries, refusals, malformed answers.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness
from tests.fake_anthropic import message, text, tool_use
from tests.fake_openai import Reply, serve
from tests.test_openai_provider import run_declared
from tiergate.activities._anthropic import parse_message, to_messages
from tiergate.core import (
    MAX_TOOL_CALLS_PER_ANSWER,
    MULTIPLE_TOOL_CALLS,
    TOOL_CALLS,
    Outcome,
    Price,
    TokenUsage,
    TranscriptEntry,
    model_cost,
)
from tiergate.demo import SUPPORT_TOOLS

CACHED = {
    "input_tokens": 50,
    "output_tokens": 20,
    "cache_read_input_tokens": 1000,
    "cache_creation_input_tokens": 200,
}
PRICES = {
    "input_per_mtok": 3.0,
    "output_per_mtok": 15.0,
    "cache_read_per_mtok": 0.3,
    "cache_write_per_mtok": 3.75,
}


def anthropic(base_url: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "provider": "anthropic",
        "model": "claude-test",
        "base_url": base_url,
        "api_key_env": "TIERGATE_TEST_ANTHROPIC_KEY",
    }
    return {"frontier": spec | extra}


def priced_agent(harness: Harness, **overrides: Any) -> str:
    return harness.add_agent("claude", pricing={"claude-test": PRICES}, **overrides)


class TestProtocol:
    def test_tool_use_becomes_a_proposal_and_usage_keeps_the_cache_apart(self) -> None:
        reply = message(
            text("Let me refund that."),
            tool_use(
                "payments__issue_refund",
                {
                    "order_id": "ORD-1",
                    "amount_usd": "5",
                    "reason_code": "damaged",
                    "reason": "asked",
                },
            ),
            stop_reason="tool_use",
            usage=CACHED,
        )
        output = parse_message(reply.body, list(SUPPORT_TOOLS.specs.values()))
        assert output.raw == {
            "kind": "tool_call",
            "tool": "payments.issue_refund",
            "arguments": {"order_id": "ORD-1", "amount_usd": "5", "reason_code": "damaged"},
            "reason": "asked",
        }
        assert output.usage == TokenUsage(
            input_tokens=50, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=200
        )
        assert output.model == "claude-test-2026-01-01"

    def test_stop_reasons_and_malformed_answers(self) -> None:
        assert parse_message(message(text("All done.")).body, []).raw == {
            "kind": "final_answer",
            "answer": "All done.",
        }
        # Cut off by max_tokens: raw text for the workflow to judge, never a finished action.
        cut = message(text('{"half'), stop_reason="max_tokens")
        assert parse_message(cut.body, []).raw == '{"half'
        two = message(tool_use("a__b", {}), tool_use("c__d", {}, "toolu_2"), stop_reason="tool_use")
        raw = parse_message(two.body, []).raw
        assert isinstance(raw, dict)
        assert raw["kind"] == TOOL_CALLS
        assert [c["tool"] for c in raw["calls"]] == ["a.b", "c.d"]
        flood = [
            tool_use("a__b", {"n": n}, f"toolu_{n}") for n in range(MAX_TOOL_CALLS_PER_ANSWER + 1)
        ]
        raw = parse_message(message(*flood, stop_reason="tool_use").body, []).raw
        assert isinstance(raw, dict)
        assert (raw["kind"], raw["count"]) == (MULTIPLE_TOOL_CALLS, MAX_TOOL_CALLS_PER_ANSWER + 1)
        assert isinstance(parse_message({"content": "nope", "usage": "x"}, []).raw, str)

    def test_cached_tokens_cost_their_own_prices(self) -> None:
        usage = TokenUsage(
            input_tokens=50, output_tokens=20, cache_read_tokens=1000, cache_write_tokens=200
        )
        expected = (50 * 3.0 + 20 * 15.0 + 1000 * 0.3 + 200 * 3.75) / 1e6
        assert model_cost(usage, Price.model_validate(PRICES)) == pytest.approx(expected)
        # Without cache prices the input price applies (a budget that overestimates).
        plain = Price(input_per_mtok=3.0, output_per_mtok=15.0)
        assert model_cost(usage, plain) == pytest.approx((1250 * 3.0 + 20 * 15.0) / 1e6)
        assert usage.total == 1270

    def test_tool_results_answer_the_tool_use_and_roles_alternate(self) -> None:
        entries = [
            TranscriptEntry(role="system", content="be good"),
            TranscriptEntry(role="user", content="{}"),
            TranscriptEntry(role="user", content="more"),
            TranscriptEntry(
                role="assistant",
                content='{"kind": "tool_call", "tool": "crm.read_ticket", "arguments": {"ticket_id": "T-1"}, "reason": "r"}',
            ),
            TranscriptEntry(role="tool", name="crm.read_ticket", content='{"id": "T-1"}'),
        ]
        system, messages = to_messages(entries)
        assert system == "be good"
        assert [m["role"] for m in messages] == ["user", "assistant", "user"]
        assert len(messages[0]["content"]) == 2  # two user entries, one message
        use = messages[1]["content"][0]
        assert (use["type"], use["name"], use["input"]["ticket_id"]) == (
            "tool_use",
            "crm__read_ticket",
            "T-1",
        )
        assert messages[2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": use["id"],
            "content": '{"id": "T-1"}',
        }


class TestRuns:
    async def test_a_run_reports_tokens_cached_tokens_and_cost(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TIERGATE_TEST_ANTHROPIC_KEY", "sk-ant-test")
        agent = priced_agent(harness)
        replies = [
            message(
                tool_use("crm__read_ticket", {"ticket_id": "T-1001", "reason": "look"}),
                stop_reason="tool_use",
                usage=CACHED,
            ),
            message(text("Handled."), usage={**CACHED, "cache_creation_input_tokens": 0}),
        ]
        with serve(replies) as fake:
            summary = await run_declared(
                harness, agent, anthropic(fake.base_url), ticket_id="T-1001"
            )
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        assert summary.final_answer == "Handled."
        usage = summary.usage
        assert (usage.input_tokens, usage.output_tokens) == (100, 40)
        assert (usage.cache_read_tokens, usage.cache_write_tokens) == (2000, 200)
        assert usage.total_tokens == 2340
        expected = (100 * 3.0 + 40 * 15.0 + 2000 * 0.3 + 200 * 3.75) / 1e6
        assert summary.cost_usd == pytest.approx(expected)
        assert summary.versions is not None
        assert summary.versions.reported_models == {"frontier": ["claude-test-2026-01-01"]}
        first = fake.requests[0]
        assert first["path"] == "/v1/messages"
        assert first["headers"]["x-api-key"] == "sk-ant-test"
        assert first["headers"]["anthropic-version"] == "2023-06-01"
        # The agent takes several calls per answer (tools.max_parallel_calls, default 8).
        assert first["body"]["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": False}
        assert "system" in first["body"]
        second = fake.requests[1]["body"]["messages"]
        assert second[-1]["role"] == "user"
        assert second[-1]["content"][0]["type"] == "tool_result"
        assert "T-1001" in second[-1]["content"][0]["content"]

    async def test_two_tool_uses_in_one_message_are_two_steps_answered_in_one_turn(
        self, harness: Harness
    ) -> None:
        agent = priced_agent(harness)
        replies = [
            message(
                tool_use("crm__read_ticket", {"ticket_id": "T-1001", "reason": "a"}, "toolu_a"),
                tool_use("orders__get_status", {"order_id": "ORD-5001", "reason": "b"}, "toolu_b"),
                stop_reason="tool_use",
            ),
            message(text("Both read.")),
        ]
        with serve(replies) as fake:
            summary = await run_declared(harness, agent, anthropic(fake.base_url))
        assert summary.outcome == Outcome.COMPLETED, summary.reason
        assert summary.usage.model_calls == 2
        assert [s.decision.tool for s in summary.steps if s.decision] == [
            "crm.read_ticket",
            "orders.get_status",
        ]
        second = fake.requests[1]["body"]["messages"]
        uses = [b["id"] for b in second[-2]["content"] if b["type"] == "tool_use"]
        results = second[-1]["content"]
        assert [b["tool_use_id"] for b in results] == uses  # one user turn answers both
        assert "T-1001" in results[0]["content"]
        assert "ORD-5001" in results[1]["content"]

    @pytest.mark.parametrize("status", [429, 529])
    async def test_rate_limits_and_overload_are_retried(
        self, harness: Harness, status: int
    ) -> None:
        agent = priced_agent(harness)
        replies = [
            Reply(status=status, body={"type": "error"}, headers={"retry-after": "0"}),
            message(text("ok")),
        ]
        with serve(replies) as fake:
            summary = await run_declared(harness, agent, anthropic(fake.base_url))
        assert summary.outcome == Outcome.COMPLETED
        assert summary.usage.retries == 1
        assert len(fake.requests) == 2

    async def test_a_refusal_fails_without_retrying_and_garbage_is_invalid(
        self, harness: Harness
    ) -> None:
        agent = priced_agent(harness, budgets={"max_invalid_proposals": 1})
        with serve([Reply(status=400, body={"type": "error", "error": "bad"})]) as fake:
            summary = await run_declared(harness, agent, anthropic(fake.base_url))
        assert summary.outcome == Outcome.FAILED
        assert "HTTP 400" in summary.reason
        assert len(fake.requests) == 1
        with serve([Reply(raw='{"content": [{"type": "text", "text": "trunc')]) as fake:
            summary = await run_declared(harness, agent, anthropic(fake.base_url))
        assert summary.outcome == Outcome.FAILED
        invalid = summary.steps[0].invalid
        assert invalid is not None
        assert invalid.code == "not_json"
