"""Adaptive budgets: ambiguous results shrink what a run may still spend; past a point the
run stops and escalates instead of trying harder.

Pure rules over the run's own records (the tool results in its history, the ledger it
carries), so a replay reaches the same adjustments at the same steps.
"""

from __future__ import annotations

import hashlib
import math

from tiergate.core._agent import AdaptiveBudgets, Budgets
from tiergate.core._budget import BudgetLedger
from tiergate.core._payloads import ToolResult, cut
from tiergate.core._proposal import Proposal
from tiergate.core._records import BudgetAdjustment
from tiergate.core._tools import ToolKind, ToolSpec


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def ambiguity(
    tool: str,
    spec: ToolSpec | None,
    digest: str,
    result: ToolResult,
    withheld_by: list[str] | None,
    seen: list[str],
) -> tuple[str | None, str]:
    """Why this tool result is ambiguous (None when it is not), and its fingerprint, which
    the run keeps so that a repeat of it is recognised: the same error from the same tool,
    or the same answer to the same call of a read."""
    if not result.ok:
        key = _fingerprint("error", tool, result.error or "")
        again = key in seen
        return (
            f"{tool} failed with the same error again: {cut(result.error, 120)}" if again else None
        ), key
    key = _fingerprint("answer", digest, result.output_ref or result.preview)
    if withheld_by is not None:
        return f"the output of {tool} was withheld by {', '.join(withheld_by) or 'policy'}", key
    if result.ambiguous:
        return f"{tool}: {result.ambiguous}", key
    if spec is not None and spec.kind == ToolKind.READ and key in seen:
        return f"{tool} gave the same answer to the same call again", key
    return None, key


def adjust(
    adaptive: AdaptiveBudgets, budgets: Budgets, ledger: BudgetLedger, reason: str
) -> BudgetAdjustment | None:
    """Counts one ambiguous result (``reason``) and makes the adjustment that follows: a
    stop at ``escalate_after``, else a shrink every ``shrink_after``, else none."""
    ledger.ambiguous += 1
    count = ledger.ambiguous
    if adaptive.escalate_after is not None and count >= adaptive.escalate_after:
        return BudgetAdjustment(
            kind="escalate",
            reason=f"{_results(count)} (escalate_after={adaptive.escalate_after}); last: {reason}",
            ambiguous=count,
        )
    if count % adaptive.shrink_after:
        return None
    tools_before = _limit(ledger.tool_calls_limit, budgets.max_tool_calls)
    models_before = _limit(ledger.model_calls_limit, budgets.max_model_calls)
    tools = _shrunk(ledger.tool_calls, tools_before, adaptive.tool_calls_factor)
    models = _shrunk(ledger.model_calls, models_before, adaptive.model_calls_factor)
    ledger.tool_calls_limit, ledger.model_calls_limit = tools, models
    return BudgetAdjustment(
        kind="shrink",
        reason=f"{_results(count)} (shrink_after={adaptive.shrink_after}): tool calls "
        f"left {max(tools_before - ledger.tool_calls, 0)} -> {tools - ledger.tool_calls}, "
        f"model calls left {max(models_before - ledger.model_calls, 0)} -> "
        f"{models - ledger.model_calls}; last: {reason}",
        ambiguous=count,
        tool_calls_limit=tools,
        model_calls_limit=models,
    )


def unsure(adaptive: AdaptiveBudgets, proposal: Proposal) -> BudgetAdjustment | None:
    """The escalation a proposal whose confidence is below ``min_confidence`` calls for."""
    floor = adaptive.min_confidence
    confidence = getattr(proposal, "confidence", None)
    if floor is None or confidence is None or confidence >= floor:
        return None
    return BudgetAdjustment(
        kind="escalate",
        reason=f"the model's confidence {confidence:g} is below min_confidence {floor:g}",
    )


def _results(count: int) -> str:
    return f"{count} ambiguous result{'s' * (count != 1)}"


def _limit(shrunk: int | None, configured: int) -> int:
    return configured if shrunk is None else min(shrunk, configured)


def _shrunk(used: int, limit: int, factor: float) -> int:
    """``limit`` with what is left of it cut by ``factor`` (rounded down)."""
    return used + math.floor(max(limit - used, 0) * factor)
