"""Property tests (issue #10, item 5): the gate and the budget ledger under any input.

Each property is checked against an oracle written from the rule, not from the code: for
the gate, the policy set is generated together with what it must decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tiergate.core import (
    APPROVAL_LEVELS,
    BudgetLedger,
    Budgets,
    Gate,
    TokenUsage,
    ToolCallProposal,
    Verdict,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.policies import build_bundle, cedar_schema
from tiergate.sensitive import pii_kinds

REFUND = SUPPORT_TOOLS.specs["payments.issue_refund"]


@dataclass(frozen=True)
class Rule:
    """One generated Cedar policy over a refund's amount, and when it matches."""

    id: str
    effect: str  # permit | forbid
    above: bool  # matches amount > threshold, else amount <= threshold
    threshold: Decimal
    approval: str | None

    def matches(self, amount: Decimal) -> bool:
        return amount > self.threshold if self.above else amount <= self.threshold

    def cedar(self) -> str:
        method = "greaterThan" if self.above else "lessThanOrEqual"
        note = f'@approval("{self.approval}") ' if self.approval else ""
        return (
            f'@id("{self.id}") {note}{self.effect}(principal, '
            f'action == Action::"payments.issue_refund", resource) '
            f'when {{ context.input.amount_usd.{method}(decimal("{self.threshold:.2f}")) }};'
        )


money = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("3000"), places=2)


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    count = draw(st.integers(min_value=0, max_value=5))
    return [
        Rule(
            id=f"r{i}",
            effect=(effect := draw(st.sampled_from(["permit", "forbid"]))),
            above=draw(st.booleans()),
            threshold=draw(money),
            approval=draw(st.sampled_from([None, *APPROVAL_LEVELS]))
            if effect == "permit"
            else None,
        )
        for i in range(count)
    ]


@settings(max_examples=150, deadline=None)
@given(policy=rules(), amount=money)
def test_the_gate_allows_only_with_a_matching_permit_and_no_matching_forbid(
    policy: list[Rule], amount: Decimal
) -> None:
    text = "\n".join(r.cedar() for r in policy) or "// no policies"
    bundle = build_bundle([("generated", text)], cedar_schema(SUPPORT_TOOLS.specs.values()))
    gate = Gate("prop", [REFUND.name], bundle, SUPPORT_TOOLS.specs, detect=pii_kinds)
    proposal = ToolCallProposal(
        tool=REFUND.name,
        arguments={"order_id": "ORD-1", "amount_usd": str(amount), "reason_code": "damaged"},
    )
    decision = gate.decide(proposal, step=1)

    permits = sorted(r.id for r in policy if r.effect == "permit" and r.matches(amount))
    forbids = sorted(r.id for r in policy if r.effect == "forbid" and r.matches(amount))
    if forbids:
        assert (decision.verdict, decision.code) == (Verdict.DENY, "policy_forbid")
        assert decision.policy_ids == forbids
    elif not permits:
        assert (decision.verdict, decision.code) == (Verdict.DENY, "no_permit")
    else:
        raised = [APPROVAL_LEVELS[r.approval] for r in policy if r.id in permits and r.approval]
        tier = max([REFUND.tier, *raised])
        expected = {3: Verdict.NEEDS_APPROVAL, 4: Verdict.NEEDS_DUAL_APPROVAL}
        assert decision.verdict == expected.get(tier, Verdict.ALLOW)
        assert decision.policy_ids == permits
        assert decision.tier == tier
    # Whatever the policies say, the effective tier never drops below the tool's own.
    assert decision.tier is None or decision.tier >= REFUND.tier


@st.composite
def charges(draw: st.DrawFn) -> list[tuple[str, int, int, float]]:
    kinds = st.sampled_from(["model", "tool", "tool_repeat"])
    return draw(
        st.lists(
            st.tuples(
                kinds,
                st.integers(min_value=0, max_value=3000),
                st.integers(min_value=1, max_value=3),
                st.floats(min_value=0, max_value=0.2),
            ),
            max_size=60,
        )
    )


@settings(max_examples=200, deadline=None)
@given(
    steps=charges(),
    max_calls=st.integers(min_value=1, max_value=8),
    max_tools=st.integers(min_value=0, max_value=8),
    max_retries=st.integers(min_value=0, max_value=6),
    max_identical=st.integers(min_value=1, max_value=3),
)
def test_the_ledger_never_lets_a_call_start_past_a_limit(
    steps: list[tuple[str, int, int, float]],
    max_calls: int,
    max_tools: int,
    max_retries: int,
    max_identical: int,
) -> None:
    limits = Budgets(
        max_total_tokens=4000,
        max_model_calls=max_calls,
        max_tool_calls=max_tools,
        max_retries=max_retries,
        max_cost_usd=0.5,
        max_identical_tool_calls=max_identical,
    )
    ledger = BudgetLedger()
    for n, (kind, tokens, attempt, cost) in enumerate(steps):
        if kind == "model":
            before = ledger.model_copy(deep=True)
            if ledger.check_model_call(limits, elapsed_seconds=1.0) is not None:
                continue
            # Checked before the call: every limit had room when it started.
            assert before.model_calls < limits.max_model_calls
            assert before.total_tokens < limits.max_total_tokens
            assert before.cost_usd < limits.max_cost_usd
            assert before.retries <= limits.max_retries
            ledger.charge_model(TokenUsage(input_tokens=tokens), cost, attempt)
        else:
            digest = "same" if kind == "tool_repeat" else f"call-{n}"
            if ledger.check_tool_call(limits, 1.0, digest) is not None:
                continue
            assert ledger.tool_calls < limits.max_tool_calls
            assert ledger.call_counts.get(digest, 0) < limits.max_identical_tool_calls
            ledger.charge_tool(digest, attempt)
        # Counted limits can never be passed: a call only starts with room for it.
        assert ledger.model_calls <= limits.max_model_calls
        assert ledger.tool_calls <= limits.max_tool_calls
        assert max(ledger.call_counts.values(), default=0) <= limits.max_identical_tool_calls
