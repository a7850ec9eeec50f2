"""How tool arguments reach Cedar: the record the gate builds from canonical arguments."""

from __future__ import annotations

from decimal import Decimal

import cedarpy
from pydantic import BaseModel

from tiergate.core import compile_arguments, no_entities, to_cedar_record, to_cedar_value
from tiergate.demo import SUPPORT_TOOLS


class _Example(BaseModel):
    amount: Decimal
    note: str | None = None
    tags: list[str] = []
    count: int = 0
    urgent: bool = False


def _canonical(model: BaseModel) -> dict[str, object]:
    return model.model_dump(mode="json")


def decimal_fields(model: type[BaseModel]) -> frozenset[str]:
    """The fields the gate sends Cedar as decimals, from the model's JSON Schema."""
    return compile_arguments("t.x", model.model_json_schema()).decimals


def _ask(record: dict[str, object], policy: str) -> cedarpy.AuthzResult:
    """Cedar's answer for a request whose context input is ``record``."""
    request = {
        "principal": {"type": "Agent", "id": "a"},
        "action": {"type": "Action", "id": "x"},
        "resource": {"type": "Tool", "id": "x"},
        "context": {"input": record},
    }
    return cedarpy.is_authorized(request, policy, no_entities())


class TestDecimalFields:
    def test_only_decimal_fields_are_named(self) -> None:
        """Cedar's decimal extension applies to Decimal fields and nothing else."""
        assert decimal_fields(_Example) == frozenset({"amount"})
        refund = SUPPORT_TOOLS.specs["payments.issue_refund"]
        assert refund.argument_schema.decimals == frozenset({"amount_usd"})
        assert SUPPORT_TOOLS.specs["crm.read_ticket"].argument_schema.decimals == frozenset()


class TestToCedarRecord:
    def test_decimals_become_extension_values_and_none_is_dropped(self) -> None:
        """An absent optional attribute is omitted, as the Cedar schema's `?` expects."""
        args = _Example(amount=Decimal("12.50"), tags=["a", "b"], count=3)
        assert to_cedar_record(_canonical(args), decimal_fields(_Example)) == {
            "amount": {"__extn": {"fn": "decimal", "arg": "12.50"}},
            "tags": ["a", "b"],
            "count": 3,
            "urgent": False,
        }

    def test_same_record_as_converting_the_typed_values(self) -> None:
        """Built from canonical JSON, every support tool's record equals the typed conversion."""
        examples = {
            "payments.issue_refund": {
                "order_id": "ORD-5001",
                "amount_usd": "35",
                "reason_code": "damaged",
            },
            "crm.update_ticket": {"ticket_id": "T-1001", "status": "resolved", "reply": "ok"},
            "orders.get_status": {"order_id": "ORD-5001"},
        }
        for tool, raw in examples.items():
            spec = SUPPORT_TOOLS.specs[tool]
            args = SUPPORT_TOOLS.tools[tool].args.model_validate(raw)
            typed = {k: to_cedar_value(v) for k, v in args if v is not None}
            canonical = spec.canonical_arguments(raw)
            assert to_cedar_record(canonical, spec.argument_schema.decimals) == typed, tool

    def test_cedar_reads_the_amount_as_a_decimal(self) -> None:
        """The record evaluates in Cedar: a decimal comparison on the refund amount holds."""
        refund = SUPPORT_TOOLS.specs["payments.issue_refund"]
        canonical = refund.canonical_arguments(
            {"order_id": "ORD-1", "amount_usd": "35", "reason_code": "late"}
        )
        policy = 'permit(principal, action, resource) when { context.input.amount_usd.lessThanOrEqual(decimal("50.00")) };'
        result = _ask(to_cedar_record(canonical, refund.argument_schema.decimals), policy)
        assert result.allowed, result.diagnostics.errors

    def test_whole_number_decimals_are_spelled_as_cedar_reads_them(self) -> None:
        """A Decimal field without cents still compares in Cedar instead of failing closed."""
        policy = 'permit(principal, action, resource) when { context.input.amount.lessThanOrEqual(decimal("150.0")) };'
        for amount, allowed in [("100", True), ("200", False), ("-3", True), ("99.5", True)]:
            args = _Example(amount=Decimal(amount))
            record = to_cedar_record(_canonical(args), decimal_fields(_Example))
            typed = {k: to_cedar_value(v) for k, v in args if v is not None}
            assert record == typed, amount
            result = _ask(record, policy)
            assert not result.diagnostics.errors, amount
            assert result.allowed is allowed, amount

    def test_decimals_cedar_cannot_hold_fail_closed(self) -> None:
        """Five decimals stay as written: Cedar refuses them, so the gate denies."""
        record = to_cedar_record({"amount": "1.00001"}, frozenset({"amount"}))
        result = _ask(record, "permit(principal, action, resource);")
        assert not result.allowed
        assert result.diagnostics.errors


class TestNoEntities:
    def test_one_empty_handle_shared_by_every_gate(self) -> None:
        """Parsed once; gates pass it instead of a list cedarpy would parse per decision."""
        assert no_entities() is no_entities()
        assert len(no_entities()) == 0
