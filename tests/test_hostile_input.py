"""Hostile input at the gate (issue #10, item 7): look-alike tool names, look-alike and
decorated email domains, path- and SQL-like arguments. Each is stopped by the schema or the
policy with a reason that names what was wrong; none reaches a tool."""

from __future__ import annotations

from typing import Any

import pytest

from tiergate.config import load_agent
from tiergate.core import Decision, Gate, ToolCallProposal, Verdict
from tiergate.demo import SUPPORT_TOOLS
from tiergate.policies import build_bundle, cedar_schema
from tiergate.sensitive import pii_kinds

REFUND_ARGS = {"order_id": "ORD-5001", "amount_usd": "10", "reason_code": "damaged"}


@pytest.fixture(scope="module")
def gate() -> Gate:
    bundle = load_agent("support_refund_agent", None, SUPPORT_TOOLS.specs)
    return Gate.of(bundle, detect=pii_kinds)


def decide(gate: Gate, tool: str, **arguments: Any) -> Decision:
    return gate.decide(ToolCallProposal(tool=tool, arguments=arguments), step=1)


@pytest.mark.parametrize(
    "name",
    [
        "pаyments.issue_refund",  # Cyrillic а
        "payments.issue_refund\u200b",  # zero-width space
        "Payments.Issue_Refund",
        "PAYMENTS.ISSUE_REFUND",
        "payments.issue_refund.",
        " payments.issue_refund",
        "payments/issue_refund",
        "payments.issue_refund;users.delete_data",
    ],
)
def test_a_tool_name_that_only_looks_right_is_unknown(gate: Gate, name: str) -> None:
    decision = decide(gate, name, **REFUND_ARGS)
    assert (decision.verdict, decision.code) == (Verdict.DENY, "unknown_tool")
    assert repr(name) in decision.reason
    assert decision.call_digest is None


@pytest.mark.parametrize(
    ("tool", "arguments", "field"),
    [
        ("crm.read_ticket", {"ticket_id": "../../etc/passwd"}, "ticket_id"),
        ("crm.read_ticket", {"ticket_id": "T-1'; DROP TABLE tickets;--"}, "ticket_id"),
        ("crm.read_ticket", {"ticket_id": "T-1\nT-2"}, "ticket_id"),
        ("orders.get_status", {"order_id": "ORD-5001 OR 1=1"}, "order_id"),
        ("orders.get_status", {"order_id": "ORD-５００１"}, "order_id"),  # full-width digits
        ("payments.issue_refund", {**REFUND_ARGS, "amount_usd": "1e9"}, "amount_usd"),
        ("payments.issue_refund", {**REFUND_ARGS, "amount_usd": "-5"}, "amount_usd"),
        ("payments.issue_refund", {**REFUND_ARGS, "amount_usd": "NaN"}, "amount_usd"),
    ],
)
def test_path_sql_and_number_tricks_fail_the_schema(
    gate: Gate, tool: str, arguments: dict[str, Any], field: str
) -> None:
    decision = decide(gate, tool, **arguments)
    assert (decision.verdict, decision.code) == (Verdict.DENY, "invalid_arguments")
    assert decision.reason.startswith(f"{field}:")
    assert decision.arguments is None


def test_the_allowlisted_domain_itself_is_allowed(gate: Gate) -> None:
    decision = decide(gate, "email.send", to="a@customers.example.com", subject="s", body="b")
    assert decision.verdict == Verdict.ALLOW


@pytest.mark.parametrize(
    "to",
    [
        "a@CUSTOMERS.example.com",  # mixed case: not the allowlisted spelling
        "a@customers.example.com.",  # trailing dot
        "a@customers.example.com.evil.io",  # allowlisted name as a subdomain of another
        "a@evilcustomers.example.com",  # allowlisted name as a suffix
        "a@x.customers.example.com",  # a subdomain the allowlist does not name
    ],
)
def test_a_domain_that_is_not_exactly_allowlisted_is_forbidden(gate: Gate, to: str) -> None:
    decision = decide(gate, "email.send", to=to, subject="s", body="b")
    assert (decision.verdict, decision.code) == (Verdict.DENY, "policy_forbid")
    assert decision.policy_ids == ["email_destination_allowlist"]
    assert decision.alerts == ["email_destination"]


@pytest.mark.parametrize(
    "to",
    [
        "a@customers.exаmple.com",  # Cyrillic а in the domain
        "a@evil.io@customers.example.com",  # two @
        "a@customers.example.com\nbcc@evil.io",  # header injection
    ],
)
def test_look_alike_and_injected_addresses_fail_the_schema(gate: Gate, to: str) -> None:
    decision = decide(gate, "email.send", to=to, subject="s", body="b")
    assert (decision.verdict, decision.code) == (Verdict.DENY, "invalid_arguments")
    assert decision.reason.startswith("to:")


@pytest.mark.parametrize(
    "amount", ["NaN", "Infinity", "-Infinity", "9" * 40, "1e40", 1e308, "1e-30", [], {"a": 1}]
)
def test_numbers_no_schema_can_hold_are_invalid_arguments_not_crashes(amount: object) -> None:
    """A hostile model's amount never raises out of the gate: it is a typed deny."""
    from tiergate.core import Denied, ToolSpec

    spec = ToolSpec.model_validate(
        {
            "name": "t.pay",
            "tier": 0,
            "kind": "write",
            "arguments": {
                "type": "object",
                "properties": {"x": {"type": "number", "multipleOf": 0.01}},
                "required": ["x"],
            },
        }
    )
    policy = build_bundle(
        [("p", '@id("p")\npermit(principal, action, resource);')], cedar_schema([spec])
    )
    gate = Gate("a", ["t.pay"], policy, {"t.pay": spec}, detect=pii_kinds)
    decision = gate.decide(ToolCallProposal(tool="t.pay", arguments={"x": amount}), 1)
    assert isinstance(decision, Denied)
    assert decision.code == "invalid_arguments"
