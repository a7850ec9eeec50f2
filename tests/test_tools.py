"""Tool registration fails closed: no tier, no schema, no registration."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tiergate.errors import ToolRegistrationError
from tiergate.tools import SUPPORT_TOOLS, ToolKind, ToolRegistry, ToolSpec


class Args(BaseModel):
    x: int


@pytest.mark.parametrize("tier", [None, -1, 5, True, "3"])
def test_tool_without_a_valid_tier_is_refused(tier: object) -> None:
    with pytest.raises(ToolRegistrationError, match="risk tier"):
        # Wrong types on purpose: registration must refuse them at run time, not only in mypy.
        ToolSpec("t.x", tier, ToolKind.READ, Args)  # type: ignore[arg-type]


def test_tool_without_a_schema_is_refused() -> None:
    with pytest.raises(ToolRegistrationError, match="schema"):
        # A plain dict is no schema: refused at run time, whatever the caller's type checker says.
        ToolSpec("t.x", 1, ToolKind.READ, dict)  # type: ignore[arg-type]


def test_emits_must_name_argument_fields() -> None:
    with pytest.raises(ToolRegistrationError, match="emits unknown"):
        ToolSpec("t.x", 1, ToolKind.WRITE, Args, emits=("body",))


def test_duplicate_names_are_refused() -> None:
    spec = ToolSpec("t.x", 1, ToolKind.READ, Args)
    with pytest.raises(ToolRegistrationError, match="twice"):
        ToolRegistry.of([spec, spec])


def test_support_tools_have_the_designed_tiers() -> None:
    tiers = {spec.name: spec.tier for spec in SUPPORT_TOOLS}
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
    writes = {s.name: s.honors_idempotency_key for s in SUPPORT_TOOLS if s.kind == "write"}
    assert [name for name, honors in writes.items() if not honors] == ["billing.change_plan"]
