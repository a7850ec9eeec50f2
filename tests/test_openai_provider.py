"""The OpenAI-compatible provider against a real local chat-completions server."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import Harness
from tests.fake_openai import Reply, completion, serve, tool_call
from tiergate.activities._openai import parse_completion, to_messages
from tiergate.core import Outcome, RunSummary, TranscriptEntry
from tiergate.demo import SUPPORT_TOOLS


def openai(base_url: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "provider": "openai",
        "model": "gpt-test",
        "base_url": base_url,
        "api_key_env": "TIERGATE_TEST_KEY",
    }
    return {"frontier": spec | extra}


def declared(harness: Harness, agent: str, models: dict[str, Any]) -> dict[str, Any]:
    """Declare ``models`` in ``agent``'s config (where a provider's URL and key variable
    must come from, issue #20) and return the run's overrides: none."""
    path = harness.home / "agents" / f"{agent}.yaml"
    config = yaml.safe_load(path.read_text())
    config["agent"]["models"] = {**config["agent"].get("models", DEFAULT_MODELS), **models}
    path.write_text(yaml.safe_dump(config))
    return {}


async def run_declared(
    harness: Harness, agent: str, models: dict[str, Any], **input_: Any
) -> RunSummary:
    """One run of ``agent`` with ``models`` declared in its config (no run overrides)."""
    return await harness.run(agent, input=input_, model_overrides=declared(harness, agent, models))


DEFAULT_MODELS = {
    "small": {"provider": "demo", "model": "demo-small"},
    "frontier": {"provider": "demo", "model": "demo-frontier"},
}


def priced_agent(harness: Harness, **overrides: Any) -> str:
    return harness.add_agent(
        "llm", pricing={"gpt-test": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}, **overrides
    )


class TestProtocol:
    def test_tool_call_becomes_a_proposal(self) -> None:
        reply = tool_call(
            "payments__issue_refund",
            {"order_id": "ORD-1", "amount_usd": "5", "reason_code": "damaged", "reason": "asked"},
        )
        output = parse_completion(reply.body, list(SUPPORT_TOOLS.specs.values()))
        assert output.raw == {
            "kind": "tool_call",
            "tool": "payments.issue_refund",
            "arguments": {"order_id": "ORD-1", "amount_usd": "5", "reason_code": "damaged"},
            "reason": "asked",
        }
        assert (output.usage.input_tokens, output.usage.output_tokens) == (100, 20)
        assert output.model == "gpt-test-2026-01-01"

    def test_plain_content_is_a_final_answer_and_bad_arguments_stay_raw(self) -> None:
        assert parse_completion(completion({"content": "All done."}).body, []).raw == {
            "kind": "final_answer",
            "answer": "All done.",
        }
        assert (
            parse_completion(tool_call("crm__read_ticket", '{"ticket_id": "T-1"').body, []).raw
            == '{"ticket_id": "T-1"'
        )

    def test_tool_results_answer_the_call_before_them(self) -> None:
        entries = [
            TranscriptEntry(role="system", content="be good"),
            TranscriptEntry(role="user", content="{}"),
            TranscriptEntry(
                role="assistant",
                content='{"kind": "tool_call", "tool": "crm.read_ticket", "arguments": {"ticket_id": "T-1"}, "reason": "r"}',
            ),
            TranscriptEntry(role="tool", name="crm.read_ticket", content='{"id": "T-1"}'),
        ]
        messages = to_messages(entries)
        assert messages[2]["tool_calls"][0]["function"]["name"] == "crm__read_ticket"
        assert messages[3] == {
            "role": "tool",
            "tool_call_id": messages[2]["tool_calls"][0]["id"],
            "content": '{"id": "T-1"}',
        }


class TestRuns:
    async def test_run_records_usage_and_the_reported_model(
        self, harness: Harness, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TIERGATE_TEST_KEY", "sk-test-key")
        agent = priced_agent(harness)
        replies = [
            tool_call("crm__read_ticket", {"ticket_id": "T-1001", "reason": "look"}),
            completion({"content": "Handled."}, prompt=300, out=10),
        ]
        with serve(replies) as fake:
            summary = await run_declared(harness, agent, openai(fake.base_url), ticket_id="T-1001")
        assert summary.outcome == Outcome.COMPLETED
        assert summary.final_answer == "Handled."
        assert summary.usage.input_tokens == 400
        assert summary.versions is not None
        assert summary.versions.reported_models == {"frontier": ["gpt-test-2026-01-01"]}
        assert summary.versions.requested_models["frontier"] == "gpt-test"
        assert summary.cost_usd == pytest.approx((400 * 1.0 + 30 * 2.0) / 1e6)
        assert fake.requests[0]["auth"] == "Bearer sk-test-key"
        second = fake.requests[1]["body"]["messages"]
        assert second[-1]["role"] == "tool"
        assert "T-1001" in second[-1]["content"]

    async def test_429_with_retry_after_is_retried_and_charged(self, harness: Harness) -> None:
        agent = priced_agent(harness)
        replies = [
            Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "0"}),
            completion({"content": "ok"}),
        ]
        with serve(replies) as fake:
            summary = await run_declared(harness, agent, openai(fake.base_url))
        assert summary.outcome == Outcome.COMPLETED
        assert summary.usage.retries == 1
        assert len(fake.requests) == 2

    async def test_persistent_5xx_stops_on_the_retry_budget(self, harness: Harness) -> None:
        agent = priced_agent(harness, budgets={"max_retries": 2})
        with serve([Reply(status=503, body={"error": "down"})]) as fake:
            summary = await run_declared(harness, agent, openai(fake.base_url))
        assert summary.outcome == Outcome.BUDGET_EXHAUSTED
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "retries"
        assert len(fake.requests) == 3

    async def test_truncated_body_is_a_recorded_invalid_proposal(self, harness: Harness) -> None:
        agent = priced_agent(harness, budgets={"max_invalid_proposals": 1})
        with serve([Reply(raw='{"choices": [{"message": {"content": "trunc')]) as fake:
            summary = await run_declared(harness, agent, openai(fake.base_url))
        assert summary.outcome == Outcome.FAILED
        invalid = summary.steps[0].invalid
        assert invalid is not None
        assert invalid.code == "not_json"

    async def test_client_error_fails_without_retrying(self, harness: Harness) -> None:
        agent = priced_agent(harness)
        with serve([Reply(status=400, body={"error": "bad model"})]) as fake:
            summary = await run_declared(harness, agent, openai(fake.base_url))
        assert summary.outcome == Outcome.FAILED
        assert "HTTP 400" in summary.reason
        assert len(fake.requests) == 1

    async def test_slow_provider_stops_on_wall_time(self, harness: Harness) -> None:
        agent = priced_agent(harness, budgets={"max_wall_time_seconds": 1})
        with serve([Reply(delay=2.5, body={})]) as fake:
            summary = await run_declared(harness, agent, openai(fake.base_url, timeout_seconds=10))
        assert summary.outcome == Outcome.BUDGET_EXHAUSTED
        assert summary.budget_stop is not None
        assert summary.budget_stop.limit == "wall_time_seconds"


def test_offered_schemas_drop_titles_but_not_a_field_named_title() -> None:
    from tiergate.activities._openai import schema_with_reason
    from tiergate.core import ToolSpec

    spec = ToolSpec(
        name="docs.create",
        tier=1,
        kind="write",
        arguments={
            "title": "CreateArgs",
            "type": "object",
            "properties": {
                "title": {"title": "Title", "type": "string"},
                "tags": {
                    "title": "Tags",
                    "type": "array",
                    "items": {"title": "Tag", "type": "string"},
                },
            },
            "required": ["title"],
        },
    )
    schema = schema_with_reason(spec)
    assert "title" not in schema
    assert schema["properties"]["title"] == {"type": "string"}  # the field stays, untitled
    assert schema["properties"]["tags"] == {"type": "array", "items": {"type": "string"}}
    assert schema["required"] == ["title", "reason"]
    assert spec.arguments["title"] == "CreateArgs"  # the spec itself is not changed
    assert schema_with_reason(spec) is schema  # built once per spec
