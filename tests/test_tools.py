"""Tool registration fails closed: no tier, no schema, no registration. Specs are pinnable
data, and the gate's canonical arguments equal the tool's own model's."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from tiergate.core import ToolKind, ToolSpec
from tiergate.demo import SUPPORT_TOOLS
from tiergate.errors import ToolRegistrationError
from tiergate.tools import Tool, ToolRegistry


class Args(BaseModel):
    x: int


class Nested(BaseModel):
    inner: Args


@pytest.mark.parametrize("tier", [None, -1, 5, True, "3"])
def test_tool_without_a_valid_tier_is_refused(tier: object) -> None:
    with pytest.raises(ToolRegistrationError, match="risk tier"):
        # Wrong types on purpose: registration must refuse them at run time, not only in mypy.
        Tool.of("t.x", tier, ToolKind.READ, Args)  # type: ignore[arg-type]


def test_tool_without_a_schema_is_refused() -> None:
    with pytest.raises(ToolRegistrationError, match="schema"):
        # A plain dict is no schema: refused at run time, whatever the caller's type checker says.
        Tool.of("t.x", 1, ToolKind.READ, dict)  # type: ignore[arg-type]


def test_emits_must_name_argument_fields() -> None:
    with pytest.raises(ToolRegistrationError, match="emits unknown"):
        Tool.of("t.x", 1, ToolKind.WRITE, Args, emits=("body",))


def test_duplicate_names_are_refused() -> None:
    tool = Tool.of("t.x", 1, ToolKind.READ, Args)
    with pytest.raises(ToolRegistrationError, match="twice"):
        ToolRegistry.of([tool, tool])


def test_arguments_cedar_cannot_hold_are_refused_at_registration() -> None:
    """A nested object has no Cedar equivalent: refused when registered, not at a call."""
    with pytest.raises(ToolRegistrationError, match="no Cedar equivalent"):
        Tool.of("t.x", 1, ToolKind.READ, Nested)


def test_a_spec_is_data_that_survives_a_round_trip() -> None:
    """What a run pins: the spec as JSON, read back equal, validating calls the same way."""
    spec = SUPPORT_TOOLS.specs["payments.issue_refund"]
    again = ToolSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    call = {"order_id": "ORD-1", "amount_usd": 35, "reason_code": "late"}
    assert again.canonical_arguments(call) == spec.canonical_arguments(call)


def test_a_spec_refuses_a_bad_tier_as_data_too() -> None:
    """Specs read from a history or written by hand meet the same checks as registration."""
    with pytest.raises(ToolRegistrationError, match="risk tier"):
        ToolSpec.model_validate(
            {"name": "t.x", "tier": 9, "kind": "read", "arguments": {"type": "object"}}
        )


def test_support_tools_have_the_designed_tiers() -> None:
    tiers = {tool.name: tool.spec.tier for tool in SUPPORT_TOOLS}
    assert tiers == {
        "crm.read_ticket": 0,
        "crm.update_ticket": 1,
        "orders.get_status": 0,
        "payments.issue_refund": 2,
        "email.send": 1,
        "users.delete_data": 4,
        "billing.change_plan": 3,
    }


def test_only_the_billing_vendor_lacks_idempotency_keys() -> None:
    writes = {
        s.name: s.honors_idempotency_key for s in SUPPORT_TOOLS.specs.values() if s.kind == "write"
    }
    assert [name for name, honors in writes.items() if not honors] == ["billing.change_plan"]


def test_equal_amounts_are_one_canonical_call() -> None:
    """25, 25.0 and "25.00" are one refund: one spelling, so one digest (`multipleOf`)."""
    spec = SUPPORT_TOOLS.specs["payments.issue_refund"]
    spellings: list[Any] = [25, 25.0, "25", "25.00", Decimal("25.0")]
    canon = {
        str(spec.canonical_arguments({"order_id": "ORD-1", "amount_usd": a, "reason_code": "late"}))
        for a in spellings
    }
    assert len(canon) == 1
    assert '"25.00"' in canon.pop().replace("'", '"')


def test_the_schema_refuses_what_the_model_refuses() -> None:
    """Fractions of a cent, extra fields and look-alike ids fail the pinned schema."""
    spec = SUPPORT_TOOLS.specs["payments.issue_refund"]
    for bad in (
        {"order_id": "ORD-1", "amount_usd": "25.001", "reason_code": "late"},
        {"order_id": "ORD-1", "amount_usd": "25", "reason_code": "late", "to": "x"},
        {"order_id": "ORD-５", "amount_usd": "25", "reason_code": "late"},
        {"order_id": "ORD-1", "amount_usd": "0", "reason_code": "late"},
    ):
        with pytest.raises(ValidationError):
            spec.canonical_arguments(bad)


_ARGUMENTS = {
    "payments.issue_refund": st.fixed_dictionaries(
        {
            "order_id": st.from_regex(r"^ORD-[0-9]{1,10}$", fullmatch=True),
            "amount_usd": st.one_of(
                st.integers(1, 10**6),
                st.decimals("0.01", "1000000", places=2).map(str),
            ),
            "reason_code": st.sampled_from(["damaged", "late", "goodwill", "other"]),
        }
    ),
    "crm.update_ticket": st.fixed_dictionaries(
        {
            "ticket_id": st.from_regex(r"^T-[0-9]{1,10}$", fullmatch=True),
            "status": st.sampled_from(["open", "pending", "resolved", "escalated"]),
        },
        optional={"reply": st.text(max_size=50)},
    ),
    "email.send": st.fixed_dictionaries(
        {
            "to": st.from_regex(r"^[a-z]{1,10}@[a-z]{1,10}\.com$", fullmatch=True),
            "subject": st.text(min_size=1, max_size=20),
            "body": st.text(max_size=50),
        }
    ),
}


# Built now, at import: `from_regex` imports hypothesis's regex module lazily, and pytest
# rewrites that plugin package's modules with `ast` as they are imported; from deep inside
# a test that parse hit CPython 3.11.7's spurious "AST constructor recursion depth
# mismatch" SystemError (python/cpython#106905), unrelated to the test.
for _strategy in _ARGUMENTS.values():
    _strategy.validate()


# Named, not a lambda: hypothesis describes a lambda by parsing its source with `ast`, and
# that parse failed once in this suite with the same SystemError.
def _calls_of(tool: str) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
    return st.tuples(st.just(tool), _ARGUMENTS[tool])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(_ARGUMENTS)).flatmap(_calls_of))
def test_the_gates_canonical_arguments_are_the_tools_own(case: tuple[str, dict[str, Any]]) -> None:
    """For any valid call, validating against the pinned JSON Schema gives exactly what the
    tool's pydantic model dumps: the digest the gate allows is the one the runner checks."""
    name, arguments = case
    tool = SUPPORT_TOOLS.tools[name]
    own = tool.args.model_validate(arguments).model_dump(mode="json")
    assert tool.spec.canonical_arguments(arguments) == own
