"""The budget ledger, pure: every limit, and how far past it a run got."""

from __future__ import annotations

import pytest

from tiergate.core import BudgetLedger, Budgets, Price, TokenUsage, model_cost

LIMITS = Budgets(
    max_total_tokens=100,
    max_model_calls=3,
    max_tool_calls=2,
    max_retries=2,
    max_wall_time_seconds=10,
    max_cost_usd=0.5,
    max_identical_tool_calls=2,
)


def test_fresh_ledger_may_call() -> None:
    ledger = BudgetLedger()
    assert ledger.check_model_call(LIMITS, 0) is None
    assert ledger.check_tool_call(LIMITS, 0, "d") is None


def test_tokens_past_the_limit_stop_with_the_overrun() -> None:
    ledger = BudgetLedger()
    ledger.charge_model(TokenUsage(input_tokens=90, output_tokens=30), 0.0, 1)
    stop = ledger.check_model_call(LIMITS, 0)
    assert stop is not None
    assert (stop.limit, stop.used, stop.over_by) == ("total_tokens", 120, 20)


def test_model_calls_stop_at_the_limit() -> None:
    ledger = BudgetLedger()
    for _ in range(3):
        ledger.charge_model(TokenUsage(), 0.0, 1)
    stop = ledger.check_model_call(LIMITS, 0)
    assert stop is not None
    assert stop.limit == "model_calls"
    assert stop.over_by == 1


def test_tool_calls_and_loops() -> None:
    ledger = BudgetLedger()
    ledger.charge_tool("same", 1)
    ledger.charge_tool("same", 1)
    stop = ledger.check_tool_call(LIMITS.model_copy(update={"max_tool_calls": 9}), 0, "same")
    assert stop is not None
    assert stop.limit == "identical_tool_calls"
    assert (
        ledger.check_tool_call(LIMITS.model_copy(update={"max_tool_calls": 9}), 0, "other") is None
    )
    over = ledger.check_tool_call(LIMITS, 0, "other")
    assert over is not None
    assert over.limit == "tool_calls"


def test_retries_are_charged_from_attempts() -> None:
    ledger = BudgetLedger()
    ledger.charge_model(TokenUsage(), 0.0, attempt=3)
    assert ledger.retries == 2
    assert ledger.remaining_retries(LIMITS) == 0
    ledger.charge_tool("d", attempt=2)
    stop = ledger.check_tool_call(LIMITS, 0, "x")
    assert stop is not None
    assert stop.limit == "retries"


def test_wall_time_and_cost() -> None:
    ledger = BudgetLedger()
    late = ledger.check_model_call(LIMITS, 10.5)
    assert late is not None
    assert late.limit == "wall_time_seconds"
    ledger.charge_model(TokenUsage(), 0.6, 1)
    stop = ledger.check_model_call(LIMITS, 0)
    assert stop is not None
    assert stop.limit == "cost_usd"
    assert stop.over_by == pytest.approx(0.1)


def test_model_cost_uses_per_million_prices() -> None:
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert model_cost(
        TokenUsage(input_tokens=1_000_000, output_tokens=1000), price
    ) == pytest.approx(3.015)


def test_ledger_round_trips_for_continue_as_new() -> None:
    ledger = BudgetLedger()
    ledger.charge_tool("d", 1)
    assert BudgetLedger.model_validate(ledger.model_dump()) == ledger


def test_an_answer_of_several_calls_must_fit_what_is_left_whole() -> None:
    """`check_tool_batch`: the whole answer against the tool-call limit in force (shrunk by
    budgets.adaptive or not) and max_irreversible_actions; none of it fits, none of it runs."""
    limits = Budgets(max_tool_calls=5, max_irreversible_actions=2)
    ledger = BudgetLedger(tool_calls=3)
    assert ledger.check_tool_batch(limits, 2, 0, 0) is None
    over = ledger.check_tool_batch(limits, 3, 0, 0)
    assert over is not None
    assert (over.limit, over.limit_value, over.used, over.over_by, over.shrunk) == (
        "tool_calls",
        5,
        3,
        1,
        False,
    )
    assert "none of its calls ran" in over.message
    shrunk = BudgetLedger(tool_calls=3, tool_calls_limit=4).check_tool_batch(limits, 2, 0, 0)
    assert shrunk is not None
    assert (shrunk.limit_value, shrunk.shrunk) == (4, True)
    assert ledger.check_tool_batch(limits, 2, 1, 1) is None
    irreversible = ledger.check_tool_batch(limits, 2, 2, 1)
    assert irreversible is not None
    assert (irreversible.limit, irreversible.over_by) == ("irreversible_actions", 1)
