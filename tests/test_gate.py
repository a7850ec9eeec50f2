"""The gate, in process: allowlist, schema, Cedar, tiers and output rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ALL_TOOLS
from tiergate.config import PACKAGED_AGENTS, compile_agent, parse_agent_yaml
from tiergate.core import Gate, ToolCallProposal, Verdict
from tiergate.demo import SUPPORT_TOOLS
from tiergate.policies import build_bundle, cedar_schema
from tiergate.sensitive import pii_kinds


@pytest.fixture(scope="module")
def gate() -> Gate:
    path = PACKAGED_AGENTS / "support_refund_agent.yaml"
    bundle = compile_agent(parse_agent_yaml(path.read_text(), str(path)), path, SUPPORT_TOOLS.specs)
    return Gate.of(bundle, detect=pii_kinds)


def decide(gate: Gate, tool: str, **arguments: Any) -> Any:
    return gate.decide(ToolCallProposal(tool=tool, arguments=arguments), step=1)


def refund(gate: Gate, amount: str) -> Any:
    return decide(
        gate, "payments.issue_refund", order_id="ORD-1", amount_usd=amount, reason_code="damaged"
    )


class TestVerdicts:
    def test_read_only_tool_is_allowed_at_tier_zero(self, gate: Gate) -> None:
        decision = decide(gate, "crm.read_ticket", ticket_id="T-1")
        assert decision.verdict == Verdict.ALLOW
        assert decision.tier == 0
        assert decision.policy_ids == ["read_only_lookups"]

    @pytest.mark.parametrize("amount", ["0.01", "49.99", "50", "50.00"])
    def test_refund_within_the_cap_is_allowed(self, gate: Gate, amount: str) -> None:
        decision = refund(gate, amount)
        assert decision.verdict == Verdict.ALLOW
        assert decision.tier == 2

    @pytest.mark.parametrize("amount", ["50.01", "400", "1000.00"])
    def test_refund_over_the_cap_needs_one_approval(self, gate: Gate, amount: str) -> None:
        decision = refund(gate, amount)
        assert decision.verdict == Verdict.NEEDS_APPROVAL
        assert decision.tier == 3
        assert decision.tier_policy_ids == ["refund_cap"]

    def test_forbid_is_final_even_when_a_permit_asks_for_approval(self, gate: Gate) -> None:
        decision = refund(gate, "1000.01")
        assert decision.verdict == Verdict.DENY
        assert decision.code == "policy_forbid"
        assert decision.policy_ids == ["refund_hard_cap"]

    def test_tier_four_tool_needs_dual_approval(self, gate: Gate) -> None:
        decision = decide(gate, "users.delete_data", user_id="U-1", justification="asked")
        assert decision.verdict == Verdict.NEEDS_DUAL_APPROVAL
        assert decision.tier == 4

    def test_email_outside_the_destination_allowlist_is_denied_with_an_alert(
        self, gate: Gate
    ) -> None:
        decision = decide(gate, "email.send", to="a@evil.example.net", subject="s", body="b")
        assert decision.verdict == Verdict.DENY
        assert decision.alerts == ["email_destination"]
        allowed = decide(gate, "email.send", to="a@customers.example.com", subject="s", body="b")
        assert allowed.verdict == Verdict.ALLOW

    def test_decision_names_the_exact_call(self, gate: Gate) -> None:
        a, b = refund(gate, "10"), refund(gate, "10.00")
        assert a.call_digest == b.call_digest
        assert a.arguments == {"order_id": "ORD-1", "amount_usd": "10.00", "reason_code": "damaged"}
        assert refund(gate, "11").call_digest != a.call_digest
        assert a.policy_version == gate.policy.version


class TestFailClosed:
    def test_unknown_tool(self, gate: Gate) -> None:
        assert decide(gate, "nope.tool").code == "unknown_tool"

    def test_extra_argument(self, gate: Gate) -> None:
        decision = decide(gate, "crm.read_ticket", ticket_id="T-1", admin=True)
        assert decision.code == "invalid_arguments"
        assert "admin" in decision.reason

    def test_tool_outside_the_allowlist(self) -> None:
        bundle = build_bundle(
            [("p", '@id("all") permit(principal, action, resource);')],
            cedar_schema(SUPPORT_TOOLS.specs.values()),
        )
        narrow = Gate("a", ["crm.read_ticket"], bundle, SUPPORT_TOOLS.specs, detect=pii_kinds)
        decision = narrow.decide(ToolCallProposal(tool="users.delete_data", arguments={}), 1)
        assert decision.code == "not_in_allowlist"

    def test_no_permit_is_a_deny(self) -> None:
        bundle = build_bundle(
            [
                (
                    "p",
                    '@id("reads") permit(principal, action == Action::"crm.read_ticket", resource);',
                )
            ],
            cedar_schema(SUPPORT_TOOLS.specs.values()),
        )
        narrow = Gate("a", ALL_TOOLS, bundle, SUPPORT_TOOLS.specs, detect=pii_kinds)
        decision = narrow.decide(
            ToolCallProposal(tool="orders.get_status", arguments={"order_id": "ORD-1"}), 1
        )
        assert decision.verdict == Verdict.DENY
        assert decision.code == "no_permit"

    def test_annotation_never_lowers_the_registered_tier(self) -> None:
        text = '@id("all") @approval("human") permit(principal, action, resource);'
        bundle = build_bundle([("p", text)], cedar_schema(SUPPORT_TOOLS.specs.values()))
        decision = Gate("a", ALL_TOOLS, bundle, SUPPORT_TOOLS.specs, detect=pii_kinds).decide(
            ToolCallProposal(
                tool="users.delete_data", arguments={"user_id": "U-1", "justification": "j"}
            ),
            1,
        )
        assert decision.tier == 4
        assert decision.verdict == Verdict.NEEDS_DUAL_APPROVAL


class TestOutputRules:
    def test_clean_text_passes(self, gate: Gate) -> None:
        assert gate.check_output("agent.final_answer", "answer", "Refunded $35.").allowed

    @pytest.mark.parametrize(
        "text", ["mail pat@example.com", "card 4111-1111-1111-1111", "key sk-abcdefghijklmnopqrstu"]
    )
    def test_pii_is_blocked_with_the_rule_id(self, gate: Gate, text: str) -> None:
        check = gate.check_output("agent.final_answer", "answer", text)
        assert not check.allowed
        assert check.policy_ids == ["pii_redaction"]
        assert check.alerts == ["pii_redaction"]

    def test_reply_with_pii_denies_the_ticket_update(self, gate: Gate) -> None:
        decision = decide(
            gate,
            "crm.update_ticket",
            ticket_id="T-1",
            status="resolved",
            reply="call +1 415 555 0100",
        )
        assert decision.code == "output_blocked"


def test_seed_config_with_cedar_engine_gates_calls() -> None:
    text = (Path(__file__).parent / "data" / "seed_agent_config.yaml").read_text()
    cedar = text.replace('engine: "opa"', 'engine: "cedar"')
    # As written it names no policy file: it loads, and nothing is permitted (no default
    # borrows another domain's policies).
    config = parse_agent_yaml(cedar, "seed")
    bundle = compile_agent(config, PACKAGED_AGENTS / "seed.yaml", SUPPORT_TOOLS.specs)
    closed = Gate(
        config.name, config.tools.allowlist, bundle.policy, SUPPORT_TOOLS.specs, detect=pii_kinds
    )
    assert refund(closed, "20").verdict == Verdict.DENY
    assert bundle.approver_policy.text.strip() == ""
    # Naming the demo's policy, it gates as the article says.
    config = parse_agent_yaml(
        cedar.replace('engine: "cedar"', 'engine: "cedar"\n    files: ["support.cedar"]'), "seed"
    )
    bundle = compile_agent(config, PACKAGED_AGENTS / "seed.yaml", SUPPORT_TOOLS.specs)
    gate = Gate(
        config.name, config.tools.allowlist, bundle.policy, SUPPORT_TOOLS.specs, detect=pii_kinds
    )
    assert refund(gate, "20").verdict == Verdict.ALLOW
    assert refund(gate, "60").verdict == Verdict.NEEDS_APPROVAL
    assert (
        decide(gate, "email.send", to="a@customers.example.com", subject="s", body="b").code
        == "not_in_allowlist"
    )
