"""Issue #22's misses: each one blocked by the output rule, in the gate and in a governed
run (the workflow's own gate, in Temporal's sandbox), and masked in the tool result's
preview, the logs and the spans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Captured, Harness, call, final, scripted
from tiergate.activities import content_store, read_exchanges
from tiergate.config import PACKAGED_AGENTS, load_agent
from tiergate.core import Gate, Outcome, ToolCallProposal
from tiergate.demo import SUPPORT_TOOLS
from tiergate.sensitive import DEFAULT_REDACTOR, pii_kinds, pii_kinds_v1

#: The misses listed in the issue: each was allowed by the first detector.
MISSES = [
    "4111.1111.1111.1111",
    "4111  1111  1111  1111",
    "4111\t1111\t1111\t1111",
    "4111\n1111\n1111\n1111",
    "4111/1111/1111/1111",
    "4111\u20091111\u20091111\u20091111",
    "x4111111111111111",
    "SSN 123-45-6789",
    "555-123-4567",
    "555.123.4567",
    "+44 20 7946 0958",
    "pat\uff20customers.example.com",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Authorization: Bearer abcdefghijklmnop1234",
    "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    'aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----",
]


def test_the_first_detector_missed_them_and_this_one_does_not() -> None:
    assert [m for m in MISSES if pii_kinds_v1(f"body {m} end")] == []
    assert [m for m in MISSES if not pii_kinds(f"body {m} end")] == []


@pytest.mark.parametrize("text", MISSES)
def test_the_output_rule_blocks_each_miss_in_an_email(text: str) -> None:
    bundle = load_agent("support_refund_agent", PACKAGED_AGENTS, SUPPORT_TOOLS.specs)
    gate = Gate.of(bundle, detect=pii_kinds)
    proposal = ToolCallProposal(
        tool="email.send",
        arguments={"to": "pat@customers.example.com", "subject": "s", "body": f"hi {text} bye"},
        reason="t",
    )
    decision = gate.decide(proposal, step=1)
    assert decision.code == "output_blocked", decision
    assert "pii_redaction" in decision.policy_ids
    masked = DEFAULT_REDACTOR.text(text)
    assert pii_kinds(masked) == []


async def test_a_governed_run_blocks_and_masks_them(harness: Harness, captured: Captured) -> None:
    h = harness
    agent = h.add_agent("a", budgets={"max_denials": len(MISSES) + 1})
    steps: list[Any] = [
        call("email.send", to="pat@customers.example.com", subject="s", body=f"hi {text} bye")
        for text in MISSES
    ]
    summary = await h.run(agent, input={}, model_overrides=scripted(*steps, final()))
    codes = [s.decision.code for s in summary.steps if s.decision is not None]
    assert codes == ["output_blocked"] * len(MISSES), codes
    assert summary.outcome == Outcome.COMPLETED
    assert h.store.rows("emails") == []
    # What a read returns is recorded masked: the preview in history, the logs, the spans.
    h.store.seed(
        demo=True,
        tickets=[("T-9", "C-1", "s", " / ".join(MISSES), "open")],
    )
    summary = await h.run(
        agent, input={}, model_overrides=scripted(call("crm.read_ticket", ticket_id="T-9"), final())
    )
    result = summary.steps[0].tool_result
    assert result is not None
    assert result.contains_pii
    assert pii_kinds(result.preview or "") == []
    logs = captured.log_text()
    spans = json.dumps([dict(s.attributes or {}) for s in captured.spans(summary.workflow_id)])
    stored = await stored_history(h, summary.workflow_id)
    assert b"T-9" in stored
    for text in MISSES:
        assert text not in logs
        assert text not in spans
        assert text not in (result.preview or "")
        assert json.dumps(text).strip('"').encode() not in stored  # as JSON escapes it
        assert text.encode() not in stored  # as UTF-8


@pytest.fixture
def pin_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The workers of the test mask a configured pattern (`TIERGATE_REDACTION`)."""
    monkeypatch.setenv("TIERGATE_REDACTION", json.dumps({"patterns": {"ticket_pin": r"PIN-\d{4}"}}))


async def stored_history(h: Harness, workflow_id: str) -> bytes:
    """Every payload of a run's history as the server stores it (JSON inside protobuf)."""
    history = await h.history(workflow_id)
    stored = b"".join(event.SerializeToString() for event in history.events)
    assert workflow_id.encode() in stored  # the bytes are readable: absence checks can fail
    return stored


@pytest.mark.usefixtures("pin_rule")
async def test_a_preview_in_history_uses_the_configured_patterns_with_no_builtin_kind(
    harness: Harness,
) -> None:
    h = harness
    agent = h.add_agent("a")
    h.store.seed(demo=True, tickets=[("T-9", "C-1", "s", "my PIN-1234, ssn 123456789", "open")])
    summary = await h.run(
        agent, input={}, model_overrides=scripted(call("crm.read_ticket", ticket_id="T-9"), final())
    )
    result = summary.steps[0].tool_result
    assert result is not None
    assert result.pii_kinds == ["ssn"]
    assert "PIN-1234" not in (result.preview or "")
    assert "[REDACTED:ticket_pin]" in (result.preview or "")
    assert "123456789" not in (result.preview or "")
    stored = await stored_history(h, summary.workflow_id)
    assert b"T-9" in stored
    assert b"PIN-1234" not in stored
    assert b"123456789" not in stored


@pytest.mark.usefixtures("pin_rule")
async def test_prompt_records_use_the_configured_patterns_and_every_kind(harness: Harness) -> None:
    h = harness
    agent = h.add_agent("records")
    note = "PIN-1234, SSN 123-45-6789, card 4111.1111.1111.1111, +44 20 7946 0958"
    summary = await h.run(agent, input={"note": note}, model_overrides=scripted(final()))
    (model_call,) = summary.model_calls
    assert model_call.record_ref
    (record,) = read_exchanges(content_store(h.settings), model_call.record_ref)
    sent = json.dumps(record["messages"])
    assert "4111" not in sent
    for mask in ("ticket_pin", "ssn", "card_number", "phone"):
        assert f"[REDACTED:{mask}]" in sent, sent
