"""A run's spans, step events and metrics, emitted from workflow code.

The run loop calls one observer: a span around the run, each step, each model and tool
call and each wait for people; everything a step did beyond that is read off its record
when it ends (`StepEvents`). Nothing here feeds back into the run's decisions: telemetry
can be off, slow or failing and the run's commands stay the same.

Span names and attributes follow the OpenTelemetry GenAI semantic conventions where they
exist (``chat {model}``, ``execute_tool {tool}``, ``gen_ai.*``); tiergate's own are under
``tiergate.*``. Values are not redacted here: the exporters and the log chain do that, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio import workflow

from tiergate.core import (
    Allowed,
    Decision,
    Held,
    ModelCall,
    ModelDrift,
    ModelSpec,
    Outcome,
    RunSummary,
    StepRecord,
    TokenUsage,
    ToolResult,
)
from tiergate.observe import _metrics as metric
from tiergate.workflows._spans import PROVIDERS, RunContext, live, log, open_span
from tiergate.workflows._step_events import StepEvents


class RunTelemetry(RunContext):
    """Spans, step events and metrics of one run: the one observer the run loop calls."""

    def __init__(self) -> None:
        super().__init__()
        self._events = StepEvents(self)
        self._run: Span | None = None

    # -- spans -----------------------------------------------------------------------------

    @contextmanager
    def run_span(self) -> Iterator[Span]:
        with open_span("tiergate.run", self.common) as span:
            self._run = span
            yield span

    @contextmanager
    def step(self, record: StepRecord, *, sibling: bool = False) -> Iterator[Span]:
        """The step's span; when the step ends, everything it did is told from its record:
        the gate's decision, alerts, blocked actions, the step's log event and metrics.
        ``sibling``: a later call of an answer with several, opened while the answer's
        first step is current, is still a step of the run, not of that step."""
        started = workflow.now()
        attributes = self.attributes(0.0, **{"tiergate.step": record.step, **_batch(record)})
        parent = self._run if sibling else None
        with open_span("tiergate.step", attributes, error_status=False, parent=parent) as span:
            try:
                yield span
            finally:
                self._events.done(span, record, started)

    def answered_with_several(self, record: StepRecord) -> None:
        """The current step's answer proposed several calls: its span, opened before the
        answer came, says so like its siblings' (the step whose model call it was)."""
        trace.get_current_span().set_attributes(_batch(record))

    @contextmanager
    def model(
        self, spec: ModelSpec, tier: str, purpose: str, max_tokens: int | None
    ) -> Iterator[Span]:
        attributes = self.attributes(
            0.0,
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDERS.get(spec.provider, spec.provider),
                "gen_ai.request.model": spec.model,
                "gen_ai.request.max_tokens": max_tokens,
                "tiergate.model.tier": tier,
                "tiergate.model.purpose": purpose,
            },
        )
        with open_span(f"chat {spec.model}", attributes, kind=SpanKind.CLIENT) as span:
            yield span

    def model_done(self, span: Span, call: ModelCall, usage: TokenUsage) -> None:
        self.run_cost = round(self.run_cost + call.cost_usd, 8)
        span.set_attributes(
            {
                "gen_ai.response.model": call.reported_model,
                "gen_ai.usage.input_tokens": usage.input_tokens,
                "gen_ai.usage.output_tokens": usage.output_tokens,
                "tiergate.cost_usd": call.cost_usd,
                "tiergate.run.cost_usd": self.run_cost,
                "tiergate.attempt": call.attempt,
            }
        )
        if call.fingerprint:
            span.set_attribute("openai.response.system_fingerprint", call.fingerprint)
        if call.drift is not None:
            self._drift(span, call.drift)
        if live():
            base = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": PROVIDERS.get(call.provider, call.provider),
                "gen_ai.request.model": call.requested_model,
                "gen_ai.response.model": call.reported_model,
            }
            metric.token_usage.record(usage.input_tokens, {**base, "gen_ai.token.type": "input"})
            metric.token_usage.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})

    @contextmanager
    def approval(self, decision: Held, step: int) -> Iterator[Span]:
        required = decision.required_approvals
        attributes = self.attributes(
            0.0,
            **{
                "tiergate.step": step,
                "gen_ai.tool.name": decision.tool,
                "tiergate.tier": decision.tier,
                "tiergate.approvals.required": required,
                "tiergate.call_digest": decision.call_digest,
                "tiergate.policy_ids": decision.tier_policy_ids or decision.policy_ids,
            },
        )
        tier: dict[str, str | int] = {
            "tiergate.agent": self.agent,
            "tiergate.tier": decision.tier or 0,
        }
        if live():
            metric.approvals_pending.add(1, tier)
            metric.escalations.add(1, {"tiergate.agent": self.agent, "kind": "approval_requested"})
        with open_span("tiergate.approval_wait", attributes) as span:
            try:
                yield span
            finally:
                if live():
                    metric.approvals_pending.add(-1, tier)

    def approval_done(self, span: Span, record: StepRecord, decision: Decision) -> None:
        wait = record.approval
        if wait is None:
            return
        span.set_attributes(
            {
                "tiergate.approval.status": wait.status,
                "tiergate.approval.approved_by": decision.approved_by,
                "tiergate.approval.waited_seconds": wait.waited_seconds,
                "tiergate.approval.escalated": wait.escalated_at is not None,
                "tiergate.approval.refusals": len(wait.refusals),
                "tiergate.decision": decision.verdict.value,
            }
        )
        if not live():
            return
        for answer in wait.approvals:
            span.add_event(
                "approval",
                {
                    "tiergate.approver": answer.approver,
                    "tiergate.approval.decision": answer.decision,
                    "tiergate.approval.at": answer.at,
                    "tiergate.approval.via": answer.via,
                    "tiergate.approval.verified": answer.verified,
                    "tiergate.approval.verification": answer.verification,
                    "tiergate.approval.key_id": answer.key_id,
                },
            )
        for refusal in wait.refusals:
            span.add_event(
                "approval_refused",
                {
                    "tiergate.approver": refusal.approver,
                    "tiergate.approval.code": refusal.code,
                    "tiergate.approval.reason": refusal.reason,
                },
            )
        labels: dict[str, str | int] = {
            "tiergate.agent": self.agent,
            "tiergate.tier": decision.tier or 0,
        }
        metric.approval_wait.record(wait.waited_seconds, {**labels, "status": wait.status})
        if wait.escalated_at is not None:
            metric.escalations.add(1, {"tiergate.agent": self.agent, "kind": "sla_overdue"})
        if wait.status != "approved":
            metric.blocked_actions.add(1, {"tiergate.agent": self.agent, "cause": "approval"})

    @contextmanager
    def tool(self, decision: Allowed, key: str, step: int) -> Iterator[Span]:
        attributes = self.attributes(
            0.0,
            **{
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": decision.tool,
                "gen_ai.tool.call.id": key,
                "tiergate.step": step,
                "tiergate.tier": decision.tier,
                "tiergate.decision": decision.verdict.value,
                "tiergate.policy_ids": decision.policy_ids,
                "tiergate.policy_version": decision.policy_version,
                "tiergate.idempotency_key": key,
                "tiergate.call_digest": decision.call_digest,
                "tiergate.approval.approved_by": decision.approved_by,
                "tiergate.arguments": json.dumps(decision.arguments, sort_keys=True),
            },
        )
        with open_span(f"execute_tool {decision.tool}", attributes) as span:
            yield span

    def tool_done(self, span: Span, result: ToolResult) -> None:
        span.set_attributes(
            {
                "tiergate.tool.ok": result.ok,
                "tiergate.tool.replayed": result.replayed,
                "tiergate.tool.output_size": result.output_size,
                "tiergate.tool.pii_kinds": result.pii_kinds,
                "tiergate.attempt": result.attempt,
            }
        )
        if not result.ok:
            span.set_status(Status(StatusCode.ERROR, result.error or "tool refused the call"))

    # -- events ----------------------------------------------------------------------------

    def _drift(self, span: Span, drift: ModelDrift) -> None:
        """A model answered as something its pin does not accept: span, metric, log event."""
        span.set_attributes(
            {"tiergate.model.drift": drift.kind, "tiergate.model.drift.message": drift.message}
        )
        if not live():
            return
        metric.model_drift.add(
            1,
            {
                "tiergate.agent": self.agent,
                "kind": drift.kind,
                "gen_ai.request.model": drift.requested,
                "gen_ai.response.model": drift.reported,
            },
        )
        log.warning(
            "model_drift",
            kind=drift.kind,
            tier=drift.tier,
            requested=drift.requested,
            reported=drift.reported,
            fingerprint=drift.fingerprint,
            detail=drift.message,
            **self.pick(["run_id", "agent"], {}),
        )

    def continued(self, segment: int, steps_done: int) -> None:
        """A long run continues as new: the run span of this segment says so; one log event."""
        trace.get_current_span().set_attributes(
            {"tiergate.continued_as_new.segment": segment, "tiergate.steps_done": steps_done}
        )
        if live():
            log.info(
                "continued_as_new",
                segment=segment,
                steps_done=steps_done,
                **self.pick(["run_id", "agent"], {}),
            )

    def finished(self, span: Span, summary: RunSummary, route: str | None) -> None:
        usage = summary.usage
        span.set_attributes(
            self.attributes(
                summary.cost_usd,
                **{
                    "tiergate.outcome": summary.outcome.value,
                    "tiergate.outcome.reason": summary.reason,
                    "tiergate.route": route,
                    "tiergate.usage.input_tokens": usage.input_tokens,
                    "tiergate.usage.output_tokens": usage.output_tokens,
                    "tiergate.usage.model_calls": usage.model_calls,
                    "tiergate.usage.tool_calls": usage.tool_calls,
                    "tiergate.wall_time_seconds": summary.wall_time_seconds,
                    "tiergate.approval_wait_seconds": summary.approval_wait_seconds,
                    "tiergate.budget_stop": summary.budget_stop.limit
                    if summary.budget_stop
                    else None,
                },
            )
        )
        if summary.outcome == Outcome.FAILED:
            span.set_status(Status(StatusCode.ERROR, summary.reason))
        if not live():
            return
        labels = {"tiergate.agent": summary.agent, "tiergate.outcome": summary.outcome.value}
        metric.runs.add(1, labels)
        metric.run_duration.record(summary.wall_time_seconds, labels)
        metric.run_cost.record(summary.cost_usd, labels)
        metric.run_tokens.record(usage.total_tokens, labels)
        metric.run_tool_calls.record(usage.tool_calls, labels)
        if summary.budget_stop is not None:
            metric.budget_stops.add(
                1, {"tiergate.agent": summary.agent, "limit": summary.budget_stop.limit}
            )
        if summary.outcome == Outcome.ESCALATED:
            metric.escalations.add(1, {"tiergate.agent": summary.agent, "kind": "run_escalated"})
        log.info(
            "run_finished",
            outcome=summary.outcome.value,
            reason=summary.reason,
            cost_usd=summary.cost_usd,
            total_tokens=usage.total_tokens,
            model_calls=usage.model_calls,
            tool_calls=usage.tool_calls,
            wall_time_seconds=summary.wall_time_seconds,
            approval_wait_seconds=summary.approval_wait_seconds,
            **self.pick(
                ["run_id", "agent", "agent_version", "prompt_version", "policy_version"], {}
            ),
        )


def _batch(record: StepRecord) -> dict[str, int]:
    """Where a step's call was in an answer with several, for its span."""
    if record.batch is None:
        return {}
    return {
        "tiergate.step.turn": record.batch.turn,
        "tiergate.step.calls_in_answer": record.batch.size,
    }
