"""A run's spans, step events and metrics, emitted from workflow code.

Spans come from the global tracer provider, which tiergate installs as Temporal's
replay-safe provider: ids are drawn from the workflow's deterministic random and spans that
end while history is replayed are not exported again, so a worker restart neither loses nor
duplicates a trace. Log events and metric recordings are skipped while replaying for the
same reason. Nothing here feeds back into the run's decisions: telemetry can be off, slow or
failing and the run's commands stay the same.

Span names and attributes follow the OpenTelemetry GenAI semantic conventions where they
exist (``chat {model}``, ``execute_tool {tool}``, ``gen_ai.*``); tiergate's own are under
``tiergate.*``. Values are not redacted here: the exporters and the log chain do that, once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any

import structlog
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio import workflow

from tiergate.core import (
    AgentBundle,
    Allowed,
    Decision,
    Denied,
    Held,
    ModelCall,
    ModelDrift,
    ModelSpec,
    Outcome,
    RunSummary,
    StepRecord,
    TokenUsage,
    ToolCallProposal,
    ToolResult,
    Verdict,
)
from tiergate.observe import _metrics as metric

_log = structlog.get_logger("tiergate.run")
_LOGGER = logging.getLogger("tiergate.run")  # its level says whether step events are wanted
_PROVIDERS = {"openai": "openai", "demo": "tiergate.demo", "scripted": "tiergate.scripted"}


@cache
def _tracer() -> trace.Tracer:
    # Looked up once: `get_tracer` reads the environment and builds a tracer on every call,
    # about 10 µs in the sandbox, 19 times a 5-step run (bench/overhead.py). Keeping it is
    # safe: a process has one provider, a tracer taken before it is installed is a proxy
    # that binds to it later, and the replay-safe tracer checks replay at each span's start.
    return trace.get_tracer("tiergate")


def _live() -> bool:
    """True when recordings should be made: in the workflow, and not replaying history.

    Outside the workflow's event loop means the run was evicted from the worker's cache and
    its coroutine is being torn down; the replay that resumes it records instead.
    """
    return workflow.in_workflow() and not workflow.unsafe.is_replaying()


@contextmanager
def _span(
    name: str,
    attributes: dict[str, Any],
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    error_status: bool = True,
) -> Iterator[Span]:
    """A current span that is ended when its block ends, except on eviction (see _live)."""
    span = _tracer().start_span(name, kind=kind, attributes=attributes)
    with trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        try:
            yield span
        except GeneratorExit:
            raise  # evicted: ending it now would export a span the replay will end again
        except Exception as error:
            if error_status:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
            raise
        except BaseException:
            span.end()
            raise
        span.end()


class RunTelemetry:
    """Spans, step events and metrics of one run."""

    def __init__(self) -> None:
        self.common: dict[str, Any] = {"tiergate.run_id": workflow.info().workflow_id}
        self.agent = ""
        self.log_fields: list[str] = []
        self.context: dict[str, Any] = {}
        self.run_cost = 0.0

    def bind(self, bundle: AgentBundle, requester: str, span: Span) -> None:
        """Called once the agent is loaded: every later span carries its versions."""
        config = bundle.config
        self.agent = config.name
        self.log_fields = config.observability.emitted_fields
        self.common.update(
            {
                "tiergate.agent": config.name,
                "tiergate.agent_version": config.effective_version,
                "tiergate.prompt_version": config.prompts.system.version,
                "tiergate.policy_version": bundle.policy.version,
            }
        )
        info = workflow.info()
        self.context = {
            "run_id": info.workflow_id,
            "temporal_run_id": info.run_id,
            "agent": config.name,
            "agent_version": config.effective_version,
            "config_hash": bundle.config_hash,
            "prompt_version": config.prompts.system.version,
            "policy_version": bundle.policy.version,
            "requester": requester,
        }
        span.set_attributes({**self.common, "tiergate.requester": requester})

    def _attributes(self, cost: float, **extra: Any) -> dict[str, Any]:
        attributes = {**self.common, "tiergate.cost_usd": cost}
        attributes["tiergate.run.cost_usd"] = self.run_cost
        attributes.update({k: v for k, v in extra.items() if v is not None})
        return attributes

    # -- spans -----------------------------------------------------------------------------

    @contextmanager
    def run_span(self) -> Iterator[Span]:
        with _span("tiergate.run", self.common) as span:
            yield span

    @contextmanager
    def step(self, record: StepRecord) -> Iterator[Span]:
        """The step's span; when the step ends, everything it did is told from its record:
        the gate's decision, alerts, blocked actions, the step's log event and metrics."""
        started = workflow.now()
        attributes = self._attributes(0.0, **{"tiergate.step": record.step})
        with _span("tiergate.step", attributes, error_status=False) as span:
            try:
                yield span
            finally:
                self._step_done(span, record, started)

    @contextmanager
    def model(
        self, spec: ModelSpec, tier: str, purpose: str, max_tokens: int | None
    ) -> Iterator[Span]:
        attributes = self._attributes(
            0.0,
            **{
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": _PROVIDERS.get(spec.provider, spec.provider),
                "gen_ai.request.model": spec.model,
                "gen_ai.request.max_tokens": max_tokens,
                "tiergate.model.tier": tier,
                "tiergate.model.purpose": purpose,
            },
        )
        with _span(f"chat {spec.model}", attributes, kind=SpanKind.CLIENT) as span:
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
        if _live():
            base = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": _PROVIDERS.get(call.provider, call.provider),
                "gen_ai.request.model": call.requested_model,
                "gen_ai.response.model": call.reported_model,
            }
            metric.token_usage.record(usage.input_tokens, {**base, "gen_ai.token.type": "input"})
            metric.token_usage.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})

    def _gate(self, decision: Decision, step: int) -> None:
        """A zero-length span for the decision (the gate is pure and takes microseconds)."""
        with _span(
            "tiergate.gate",
            self._attributes(
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
                },
            ),
        ):
            pass
        if decision.verdict == Verdict.DENY and _live():
            labels = {"tiergate.agent": self.agent, "tiergate.decision.code": decision.code}
            for policy_id in decision.policy_ids or [""]:
                metric.policy_denials.add(1, {**labels, "tiergate.policy_id": policy_id})
            metric.blocked_actions.add(1, {"tiergate.agent": self.agent, "cause": "policy"})

    @contextmanager
    def approval(self, decision: Held, step: int) -> Iterator[Span]:
        required = decision.required_approvals
        attributes = self._attributes(
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
        if _live():
            metric.approvals_pending.add(1, tier)
            metric.escalations.add(1, {"tiergate.agent": self.agent, "kind": "approval_requested"})
        with _span("tiergate.approval_wait", attributes) as span:
            try:
                yield span
            finally:
                if _live():
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
        if not _live():
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
        attributes = self._attributes(
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
        with _span(f"execute_tool {decision.tool}", attributes) as span:
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
        if not _live():
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
        _log.warning(
            "model_drift",
            kind=drift.kind,
            tier=drift.tier,
            requested=drift.requested,
            reported=drift.reported,
            fingerprint=drift.fingerprint,
            detail=drift.message,
            **self._pick(["run_id", "agent"], {}),
        )

    def _blocked(self, cause: str) -> None:
        """An action or output that did not go through for ``cause`` (output, budget)."""
        if _live():
            metric.blocked_actions.add(1, {"tiergate.agent": self.agent, "cause": cause})

    def continued(self, segment: int, steps_done: int) -> None:
        """A long run continues as new: the run span of this segment says so; one log event."""
        trace.get_current_span().set_attributes(
            {"tiergate.continued_as_new.segment": segment, "tiergate.steps_done": steps_done}
        )
        if _live():
            _log.info(
                "continued_as_new",
                segment=segment,
                steps_done=steps_done,
                **self._pick(["run_id", "agent"], {}),
            )

    def _alert(self, name: str, step: int) -> None:
        if _live():
            _log.warning("alert", alert=name, step=step, **self._pick(["run_id", "agent"], {}))

    def _step_done(self, span: Span, record: StepRecord, started: datetime) -> None:
        """Closes a step: its events, work time, span attributes, log event and latency."""
        if not workflow.in_workflow():
            return  # evicted mid-step; the replay closes it
        self._step_events(record)
        waited = record.approval.waited_seconds if record.approval else 0.0
        elapsed = (workflow.now() - started).total_seconds()
        record.work_seconds = round(max(elapsed - waited, 0.0), 3)
        live = _live()
        if live:
            metric.step_duration.record(record.work_seconds, {"tiergate.agent": self.agent})
        wants_log = live and _LOGGER.isEnabledFor(logging.INFO)
        if not (span.is_recording() or wants_log):
            return  # telemetry off: building the step's attributes would be wasted work
        values = self._step_values(record)
        span.set_attributes(
            self._attributes(
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
            _log.info(
                "step",
                step=record.step,
                kind=values["kind"],
                decision=values["decision"],
                decision_code=values["decision_code"],
                **self._pick(self.log_fields, values),
            )

    def _step_events(self, record: StepRecord) -> None:
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

    def _step_values(self, record: StepRecord) -> dict[str, Any]:
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
            "run_cost_usd": self.run_cost,
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

    def _pick(self, names: list[str], values: dict[str, Any]) -> dict[str, Any]:
        merged = {**self.context, **values}
        return {name: merged.get(name) for name in names}

    def finished(self, span: Span, summary: RunSummary, route: str | None) -> None:
        usage = summary.usage
        span.set_attributes(
            self._attributes(
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
        if not _live():
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
        _log.info(
            "run_finished",
            outcome=summary.outcome.value,
            reason=summary.reason,
            cost_usd=summary.cost_usd,
            total_tokens=usage.total_tokens,
            model_calls=usage.model_calls,
            tool_calls=usage.tool_calls,
            wall_time_seconds=summary.wall_time_seconds,
            approval_wait_seconds=summary.approval_wait_seconds,
            **self._pick(
                ["run_id", "agent", "agent_version", "prompt_version", "policy_version"], {}
            ),
        )
