"""What a finished step tells operators, read off its record: the gate's decision as a
span, alerts and blocked actions, the step's attributes, log event and latency."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from opentelemetry.trace import Span
from temporalio import workflow

from tiergate.core import Allowed, Decision, Denied, StepRecord, ToolCallProposal, Verdict
from tiergate.observe import _metrics as metric
from tiergate.workflows._spans import LOGGER, RunContext, live, log, open_span


class StepEvents:
    """The events of each step of one run."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def done(self, span: Span, record: StepRecord, started: datetime) -> None:
        """Closes a step: its events, work time, span attributes, log event and latency."""
        if not workflow.in_workflow():
            return  # evicted mid-step; the replay closes it
        self._events_of(record)
        self._adjusted(span, record)
        waited = record.approval.waited_seconds if record.approval else 0.0
        elapsed = (workflow.now() - started).total_seconds()
        record.work_seconds = round(max(elapsed - waited, 0.0), 3)
        recording = live()
        if recording:
            metric.step_duration.record(record.work_seconds, {"tiergate.agent": self.ctx.agent})
        wants_log = recording and LOGGER.isEnabledFor(logging.INFO)
        if not (span.is_recording() or wants_log):
            return  # telemetry off: building the step's attributes would be wasted work
        values = self._values(record)
        span.set_attributes(
            self.ctx.attributes(
                record.cost_usd,
                **{
                    "tiergate.step.kind": values["kind"],
                    "tiergate.decision": values["decision"],
                    "tiergate.decision.code": values["decision_code"],
                    "gen_ai.tool.name": values["tool_name"],
                    "gen_ai.response.model": record.model or None,
                    "tiergate.policy_ids": values["policy_ids"],
                    "tiergate.tier": values["tier"],
                    "tiergate.reason": values["reason"],
                    "tiergate.arguments": json.dumps(values["arguments"], sort_keys=True)
                    if values["arguments"] is not None
                    else None,
                    "tiergate.observation": record.observation,
                    "tiergate.step.work_seconds": record.work_seconds,
                },
            )
        )
        if wants_log:
            log.info(
                "step",
                step=record.step,
                kind=values["kind"],
                decision=values["decision"],
                decision_code=values["decision_code"],
                **self.ctx.pick(self.ctx.log_fields, values),
                **_would_flip(record),
                **({"ambiguous": record.ambiguous} if record.ambiguous else {}),
                **({"budget_adjustment": record.adjustment.reason} if record.adjustment else {}),
            )

    def _events_of(self, record: StepRecord) -> None:
        """What the step's record says happened, as spans, alerts and blocked-action counts."""
        decision = record.decision
        gated = record.approval.original if record.approval else decision
        if isinstance(decision, Denied) and decision.code == "rate_limited":
            self._blocked("rate_limited")
        elif gated is not None:
            self._gate(gated, record.step)
        for alert in gated.alerts if gated is not None else []:
            self._alert(alert, record.step)
        for check in record.output_checks:
            if not check.allowed:
                for alert in check.alerts:
                    self._alert(alert, record.step)
                self._blocked("output")
        if isinstance(decision, Allowed) and record.idempotency_key is None:
            self._blocked("budget")  # allowed, never scheduled: a budget stopped it

    def _values(self, record: StepRecord) -> dict[str, Any]:
        decision = record.decision
        proposal = record.proposal
        kind = proposal.kind if proposal else ("invalid" if record.invalid else None)
        tool = proposal.tool if isinstance(proposal, ToolCallProposal) else None
        return {
            "kind": kind,
            "decision": decision.verdict.value if decision else kind,
            "decision_code": decision.code
            if decision
            else (record.invalid.code if record.invalid else None),
            "model": record.model,
            "tool_name": decision.tool if decision else tool,
            "cost_usd": record.cost_usd,
            "run_cost_usd": self.ctx.run_cost,
            "input_tokens": record.usage.input_tokens,
            "output_tokens": record.usage.output_tokens,
            "tier": decision.tier if decision else None,
            "policy_ids": decision.policy_ids if decision else [],
            "call_digest": decision.call_digest if decision else None,
            "idempotency_key": record.idempotency_key,
            "reason": getattr(proposal, "reason", None),
            "arguments": decision.arguments if decision else getattr(proposal, "arguments", None),
            "observation": record.observation,
            "approved_by": decision.approved_by if decision else [],
            "approvals": [
                {
                    "approver": a.approver,
                    "decision": a.decision,
                    "at": a.at,
                    "via": a.via,
                    "verified": a.verified,
                    "verification": a.verification,
                }
                for a in (record.approval.approvals if record.approval else [])
            ],
            "step_seconds": record.work_seconds,
            "tool_ok": record.tool_result.ok if record.tool_result else None,
            "tool_result": record.tool_result.preview if record.tool_result else None,
        }

    def _gate(self, decision: Decision, step: int) -> None:
        """A zero-length span for the decision (the gate is pure and takes microseconds)."""
        with open_span(
            "tiergate.gate",
            self.ctx.attributes(
                0.0,
                **{
                    "tiergate.step": step,
                    "gen_ai.tool.name": decision.tool,
                    "tiergate.decision": decision.verdict.value,
                    "tiergate.decision.code": decision.code,
                    "tiergate.decision.reason": decision.reason,
                    "tiergate.policy_ids": decision.policy_ids,
                    "tiergate.tier": decision.tier,
                    "tiergate.call_digest": decision.call_digest,
                    "tiergate.alerts": decision.alerts,
                    # What the log-only policies would have made of it (never enforced).
                    "tiergate.log_only.would_flip": (
                        decision.would_flip.kind.value if decision.would_flip else None
                    ),
                    "tiergate.log_only.policy_ids": (
                        decision.would_flip.policy_ids if decision.would_flip else None
                    ),
                },
            ),
        ):
            pass
        if decision.verdict == Verdict.DENY and live():
            labels = {"tiergate.agent": self.ctx.agent, "tiergate.decision.code": decision.code}
            for policy_id in decision.policy_ids or [""]:
                metric.policy_denials.add(1, {**labels, "tiergate.policy_id": policy_id})
            metric.blocked_actions.add(1, {"tiergate.agent": self.ctx.agent, "cause": "policy"})

    def _adjusted(self, span: Span, record: StepRecord) -> None:
        """What ``budgets.adaptive`` did after the step: an event on its span, a metric."""
        adjustment = record.adjustment
        if adjustment is None or not live():
            return
        span.add_event(
            "tiergate.budget.adjusted",
            {
                "tiergate.adjustment": adjustment.kind,
                "tiergate.adjustment.reason": adjustment.reason,
                "tiergate.ambiguous": adjustment.ambiguous,
                **(
                    {"tiergate.budget.tool_calls_limit": adjustment.tool_calls_limit}
                    if adjustment.tool_calls_limit is not None
                    else {}
                ),
                **(
                    {"tiergate.budget.model_calls_limit": adjustment.model_calls_limit}
                    if adjustment.model_calls_limit is not None
                    else {}
                ),
            },
        )
        metric.budget_adjustments.add(
            1, {"tiergate.agent": self.ctx.agent, "tiergate.adjustment": adjustment.kind}
        )

    def _blocked(self, cause: str) -> None:
        """An action or output that did not go through for ``cause`` (output, budget)."""
        if live():
            metric.blocked_actions.add(1, {"tiergate.agent": self.ctx.agent, "cause": cause})

    def _alert(self, name: str, step: int) -> None:
        if live():
            log.warning("alert", alert=name, step=step, **self.ctx.pick(["run_id", "agent"], {}))


def _would_flip(record: StepRecord) -> dict[str, Any]:
    """The step log's record of what log-only policies would have changed, if anything."""
    flipped = record.decision.would_flip if record.decision else None
    if flipped is None:
        return {}
    return {"would_flip": flipped.kind.value, "would_flip_policy_ids": flipped.policy_ids}
