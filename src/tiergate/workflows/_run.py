"""AgentRunWorkflow: propose -> gate -> act -> record, until an outcome.

Only deterministic code lives here. Model calls, tool calls and loading the agent's
policies are activities; the gate and the budget ledger are pure objects evaluated in
workflow code against the policy set pinned when the run started, so replay reaches the
same decisions. Every step record is upserted into the memo before its tool is scheduled,
so the history shows each decision ahead of the action it allowed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from tiergate import __version__
    from tiergate.approvals import ApprovalRequest
    from tiergate.config import AgentBundle
    from tiergate.digest import idempotency_key
    from tiergate.policies import FINAL_ANSWER_RESOURCE
    from tiergate.shared import (
        AGENT_ATTRIBUTE,
        APPROVAL_UPDATE,
        CLASSIFY_ACTIVITY,
        CONTROL_SIGNAL,
        LARGE_INPUT_FIX,
        LOAD_AGENT_ACTIVITY,
        MAX_RAW_OUTPUT_CHARS,
        PENDING_APPROVAL_QUERY,
        PROPOSE_ACTIVITY,
        RECORD_FORMAT_FIELD,
        REVIEW_ENQUEUE_ACTIVITY,
        WORKFLOW_NAME,
        Classification,
        ClassifyInput,
        ControlCommand,
        LoadAgentInput,
        ModelResponse,
        ProposeInput,
        ReviewEnqueued,
        ReviewItem,
        RunInput,
        ToolCallInput,
        ToolResult,
        TranscriptEntry,
        oversized_run_input,
        tool_activity_name,
    )
    from tiergate.tools import SUPPORT_TOOLS, ToolSpec
    from tiergate.workflows._budget import BudgetLedger, answer_cost
    from tiergate.workflows._carry import RunCarry, should_continue
    from tiergate.workflows._desk import ApprovalDesk
    from tiergate.workflows._drift import detect_drift
    from tiergate.workflows._gate import Gate
    from tiergate.workflows._proposal import parse_proposal
    from tiergate.workflows._records import (
        ApprovalReceipt,
        BudgetStop,
        Decision,
        EscalateProposal,
        FinalAnswerProposal,
        InvalidProposal,
        ModelCall,
        Outcome,
        PendingAction,
        RunStatus,
        RunSummary,
        StepMark,
        StepRecord,
        ToolCallProposal,
        Verdict,
        Versions,
        cut,
        tool_observation,
    )
    from tiergate.workflows._retry import budgeted_retry, safe_to_retry, tool_retry
    from tiergate.workflows._telemetry import RunTelemetry

_T = TypeVar("_T")
STEP_MEMO = "tiergate.step"
#: Runs started with this patch skip step marks the history already holds (see _record).
LEAN_MARKS_PATCH = "lean-step-marks"
CONTROLS_MEMO = "tiergate.controls"
RUN_MEMO = "tiergate.run"
_LOAD_RETRY = RetryPolicy(
    maximum_attempts=3, non_retryable_error_types=["ConfigError", "PolicyError"]
)


class _Stop(Exception):
    """Internal: ends the loop with an outcome (raised from helpers, caught in `run`)."""

    def __init__(
        self, outcome: Outcome, reason: str, budget_stop: BudgetStop | None = None
    ) -> None:
        super().__init__(reason)
        self.outcome, self.reason, self.budget_stop = outcome, reason, budget_stop


def parse_run_input(raw: Any) -> RunInput:
    """Validate a run's input, failing the run (not the workflow task) with a clear reason."""
    if too_large := oversized_run_input(raw):
        raise ApplicationError(
            f"{too_large}: {LARGE_INPUT_FIX}", type="RunInputError", non_retryable=True
        )
    try:
        return RunInput.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
        )
        raise ApplicationError(
            f"run input fails its schema: {problems}. Expected "
            '{"agent": "<name>", "input": {...}, "requester": "...", "model_overrides": {...}}',
            type="RunInputError",
            non_retryable=True,
        ) from None


@workflow.defn(name=WORKFLOW_NAME)
class AgentRunWorkflow:
    """One governed agent run. Input: a RunInput as JSON. Result: a RunSummary."""

    @workflow.init
    def __init__(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> None:
        self._ledger = BudgetLedger()
        self._steps: list[StepRecord] = []
        self._state = "starting"
        self._outcome: Outcome | None = None
        self._alerts: list[str] = []
        self._reported: dict[str, list[str]] = {}
        self._head: str | None = None
        self._append: list[TranscriptEntry] = []
        self._route: str | None = None
        self._final_answer: str | None = None
        self._desk: ApprovalDesk | None = None
        self._model_calls: list[ModelCall] = []
        self._carried_calls: list[ModelCall] = []  # the last segment's, for drift and chaining
        self._paused = False
        self._paused_seconds = 0.0
        self._disabled: set[str] = set()
        self._controls: list[dict[str, Any]] = []
        self._format = 1  # see RECORD_FORMAT_FIELD; set in _begin
        self._format_pinned = False
        self._carry = carry
        self._step_base = 0
        self._irreversible_base = 0
        self._started = workflow.info().start_time

    @workflow.query(name="status")
    def status(self) -> RunStatus:
        return RunStatus(
            state=self._state,
            step=self._step_base + len(self._steps),
            outcome=self._outcome,
            usage=self._ledger.usage(),
            cost_usd=self._ledger.cost_usd,
            pending_action=self._desk.pending if self._desk else None,
        )

    @workflow.query(name=PENDING_APPROVAL_QUERY)
    def pending_approval(self) -> PendingAction | None:
        return self._desk.pending if self._desk else None

    @workflow.signal(name=CONTROL_SIGNAL)
    def control(self, command: ControlCommand) -> None:
        """The kill switch. Recorded in the memo, so the history shows who did what when."""
        if command.action == "pause":
            self._paused = True
        elif command.action == "resume":
            self._paused = False
        elif command.action == "disable_tool" and command.tool:
            self._disabled.add(command.tool)
        elif command.action == "enable_tool" and command.tool:
            self._disabled.discard(command.tool)
        self._controls.append({**command.model_dump(), "at": workflow.now().isoformat()})
        workflow.upsert_memo(
            {
                CONTROLS_MEMO: {
                    "paused": self._paused,
                    "disabled_tools": sorted(self._disabled),
                    "events": self._controls[-20:],
                }
            }
        )

    @workflow.update(name=APPROVAL_UPDATE)
    async def approval(self, request: ApprovalRequest) -> ApprovalReceipt:
        """An approver's signed answer to the pending action."""
        assert self._desk is not None
        return await self._desk.handle(request)

    @approval.validator
    def _validate_approval(self, request: ApprovalRequest) -> None:
        if self._desk is None:
            raise ApplicationError("this run is not waiting for an approval", type="not_waiting")
        self._desk.validate(request)

    @workflow.run
    async def run(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> RunSummary:
        """``carry`` is set only by the run itself when it continues as new (see _carry)."""
        self._tel = RunTelemetry()
        with self._tel.run_span() as span:
            self._input = parse_run_input(raw_input)
            self._format_pinned = RECORD_FORMAT_FIELD in raw_input
            if carry is not None:
                self._bundle: AgentBundle = carry.bundle  # pinned: never reloaded mid-run
            else:
                self._bundle = await workflow.execute_activity(
                    LOAD_AGENT_ACTIVITY,
                    LoadAgentInput(agent=self._input.agent, version=self._input.agent_version),
                    result_type=AgentBundle,
                    start_to_close_timeout=timedelta(seconds=30),
                    retry_policy=_LOAD_RETRY,
                )
            self._tel.bind(self._bundle, self._input.requester, span)
            self._begin()
            if carry is not None:
                self._resume(carry)
            try:
                if carry is None:
                    await self._classify()
                while True:
                    await self._continue_as_new_if_long(raw_input)
                    await self._step()
            except _Stop as stop:
                summary = self._finish(stop.outcome, stop.reason, stop.budget_stop)
            self._tel.finished(span, summary, self._route)
            # Answers still being applied finish first, so none is lost or half-recorded.
            await workflow.wait_condition(workflow.all_handlers_finished)
        return summary

    # -- setup -----------------------------------------------------------------------------

    def _begin(self) -> None:
        config = self._bundle.config
        self._models = {**config.models, **self._input.model_overrides}
        for tier in (t for t in (config.model_tier.executor, config.model_tier.router) if t):
            spec = self._models[tier]
            if spec.model not in config.pricing:
                raise ApplicationError(
                    f"model {spec.model!r} (tier {tier}) has no price in agent {config.name}'s "
                    "pricing table, so its cost budget cannot be enforced. Add it under `pricing:`",
                    type="RunInputError",
                    non_retryable=True,
                )
        self._format = self._record_format()
        self._gate = Gate(config.name, config.tools.allowlist, self._bundle.policy, SUPPORT_TOOLS)
        self._disabled |= set(self._bundle.disabled_tools)
        self._desk = ApprovalDesk(self._bundle, self._gate, self._input.requester)
        # start_run sets the agent attribute at start; lean runs do not write it twice.
        preset = workflow.info().typed_search_attributes.get(AGENT_ATTRIBUTE)
        if not (self._format >= 2 and preset == config.name):
            workflow.upsert_search_attributes([AGENT_ATTRIBUTE.value_set(config.name)])
        self._append = [
            TranscriptEntry(role="system", content=config.prompts.system.text),
            TranscriptEntry(role="user", content=json.dumps(self._input.input, sort_keys=True)),
        ]
        workflow.upsert_memo({RUN_MEMO: {"versions": self._versions().model_dump(mode="json")}})

    def _record_format(self) -> int:
        """Input from format 3 on pins the format; older runs decided by a patch marker,
        and must go on asking it the same way so their histories replay."""
        if self._format_pinned:
            return self._input.record_format
        return 2 if workflow.patched(LEAN_MARKS_PATCH) else 1

    # -- long runs -------------------------------------------------------------------------

    def _resume(self, carry: RunCarry) -> None:
        """Takes up where the previous segment stopped (see RunCarry)."""
        self._ledger = carry.ledger.model_copy(deep=True)
        self._step_base, self._irreversible_base = carry.steps_done, carry.irreversible_done
        self._started = datetime.fromisoformat(carry.started_at)
        self._head, self._append = carry.transcript_head, list(carry.append)
        self._route, self._reported = (
            carry.route,
            {k: list(v) for k, v in carry.reported_models.items()},
        )
        self._carried_calls = list(carry.last_model_calls)
        self._alerts = list(carry.alerts)
        self._paused, self._paused_seconds = carry.paused, carry.paused_seconds
        self._disabled |= set(carry.disabled_tools)
        self._controls = list(carry.controls)
        assert self._desk is not None
        self._desk.waited_seconds = carry.approval_wait_seconds

    async def _continue_as_new_if_long(self, raw_input: dict[str, Any]) -> None:
        """Between two steps, nothing pending: continue as new before Temporal's limits."""
        info = workflow.info()
        if not should_continue(
            info.get_current_history_length(),
            info.get_current_history_size(),
            info.is_continue_as_new_suggested(),
            self._input.continue_as_new_after_events,
        ):
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        previous = self._carry.previous_run_ids if self._carry else []
        last_per_tier = {call.tier: call for call in self._calls_so_far()}
        carry = RunCarry(
            segment=(self._carry.segment if self._carry else 1) + 1,
            previous_run_ids=[*previous, info.run_id],
            started_at=self._started.isoformat(),
            bundle=self._bundle,
            ledger=self._ledger,
            steps_done=self._step_base + len(self._steps),
            irreversible_done=self._irreversible_done(),
            transcript_head=self._head,
            append=self._append,
            route=self._route,
            reported_models=self._reported,
            last_model_calls=list(last_per_tier.values()),
            alerts=self._alerts,
            approval_wait_seconds=self._desk.waited_seconds if self._desk else 0.0,
            paused=self._paused,
            paused_seconds=self._paused_seconds,
            disabled_tools=sorted(self._disabled - set(self._bundle.disabled_tools)),
            controls=self._controls,
        )
        self._tel.continued(carry.segment, carry.steps_done)
        workflow.continue_as_new(args=[raw_input, carry])

    def _calls_so_far(self) -> list[ModelCall]:
        return [*self._carried_calls, *self._model_calls]

    def _versions(self) -> Versions:
        config = self._bundle.config
        return Versions(
            agent=config.name,
            agent_version=config.effective_version,
            config_hash=self._bundle.config_hash,
            prompt_version=config.prompts.system.version,
            policy_version=self._bundle.policy.version,
            tool_schemas_hash=self._bundle.tool_schemas_hash,
            code_version=f"tiergate {__version__}",
            requested_models={t: s.model for t, s in self._models.items()},
            reported_models={t: sorted(set(ids)) for t, ids in self._reported.items()},
        )

    # -- model calls -----------------------------------------------------------------------

    def _elapsed(self) -> float:
        """Seconds of work: time spent waiting for approvers is bounded by the SLA instead."""
        waited = (self._desk.waited_seconds if self._desk else 0.0) + self._paused_seconds
        return (workflow.now() - self._started).total_seconds() - waited

    def _remaining(self) -> timedelta:
        left = self._bundle.config.budgets.max_wall_time_seconds - self._elapsed()
        return timedelta(seconds=max(left, 1))

    def _retries_left(self) -> int:
        return self._ledger.remaining_retries(self._bundle.config.budgets)

    def _check_model_budget(self) -> None:
        budgets = self._bundle.config.budgets
        if stop := self._ledger.check_model_call(budgets, self._elapsed()):
            raise _Stop(Outcome.BUDGET_EXHAUSTED, stop.message, stop)

    def _charge_model(
        self,
        tier: str,
        response: ModelResponse | Classification,
        step: int | None,
    ) -> ModelCall:
        """Prices a model call by the model the provider reported (falling back to the one
        requested) and charges it to the run."""
        pricing = self._bundle.config.pricing
        spec = self._models[tier]
        usage, model, attempt = response.usage, response.reported_model, response.attempt
        cost = answer_cost(pricing, spec.model, model, usage)
        self._ledger.charge_model(usage, cost, attempt)
        self._reported.setdefault(tier, [])
        if model not in self._reported[tier]:
            self._reported[tier].append(model)
        call = ModelCall(
            purpose="route" if step is None else "propose",
            step=step,
            tier=tier,
            provider=spec.provider,
            requested_model=spec.model,
            reported_model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost,
            attempt=attempt,
            record_ref=response.record_ref,
            fingerprint=response.fingerprint,
        )
        earlier = [c for c in self._calls_so_far() if c.tier == tier]
        call.drift = detect_drift(spec, call, earlier)
        self._model_calls.append(call)
        return call

    def _on_drift(self, call: ModelCall, record: StepRecord | None) -> None:
        """Flags a drifted call; stops the run before its answer is used if the agent says so."""
        if call.drift is None:
            return
        if record is not None:
            record.model_drift = call.drift
        self._alerts.append("model_drift")
        self._tel.drift(call.drift)
        if self._bundle.config.on_model_drift == "stop":
            if record is not None:
                self._record(record, redundant=True)
            raise _Stop(Outcome.ESCALATED, f"model drift: {call.drift.message}")

    async def _classify(self) -> None:
        tier = self._bundle.config.model_tier.router
        if tier is None:
            return
        self._check_model_budget()
        self._state = "routing"
        request = ClassifyInput(
            run_id=workflow.info().workflow_id,
            agent=self._bundle.config.name,
            model=self._models[tier],
            input=self._input.input,
        )
        with self._tel.model_span(self._models[tier], tier, "route", None) as span:
            result = await self._activity(
                CLASSIFY_ACTIVITY, request, Classification, self._models[tier].timeout_seconds
            )
            call = self._charge_model(tier, result, None)
            self._tel.model_done(span, call, result.usage)
            self._on_drift(call, None)
        self._route = result.label
        self._append.append(TranscriptEntry(role="system", content=f"Router: {result.label}"))

    async def _propose(self, record: StepRecord) -> ModelResponse:
        config = self._bundle.config
        tier = config.model_tier.executor
        spec = self._models[tier]
        max_tokens = max(1, min(4096, self._ledger.remaining_tokens(config.budgets)))
        request = ProposeInput(
            run_id=workflow.info().workflow_id,
            step=record.step,
            agent=config.name,
            model=spec.for_step(record.step),
            transcript_head=self._head,
            append=self._append,
            tools=config.tools.allowlist,
            max_output_tokens=max_tokens,
            previous_record=calls[-1].record_ref if (calls := self._calls_so_far()) else None,
        )
        with self._tel.model_span(spec, tier, "propose", max_tokens) as span:
            response = await self._activity(
                PROPOSE_ACTIVITY, request, ModelResponse, spec.timeout_seconds
            )
            call = self._charge_model(tier, response, record.step)
            self._tel.model_done(span, call, response.usage)
            self._head, self._append = response.transcript_head, []
            record.model = response.reported_model
            record.usage = response.usage
            record.cost_usd = call.cost_usd
            self._on_drift(call, record)
        return response

    async def _activity(
        self,
        name: str,
        request: Any,
        result_type: type[_T],
        timeout_seconds: float,
        tool: ToolSpec | None = None,
    ) -> _T:
        retry = (
            tool_retry(tool, self._retries_left()) if tool else budgeted_retry(self._retries_left())
        )
        try:
            result: _T = await workflow.execute_activity(
                name,
                request,
                result_type=result_type,
                retry_policy=retry,
                start_to_close_timeout=min(timedelta(seconds=timeout_seconds), self._remaining()),
                schedule_to_close_timeout=self._remaining(),
            )
        except ActivityError as error:
            if tool is not None and not safe_to_retry(tool):
                raise self._unknown_effect(name, error) from None
            raise self._activity_stop(name, error, retry) from None
        return result

    @staticmethod
    def _unknown_effect(name: str, error: ActivityError) -> _Stop:
        """A write that is not retried (`tool_retry`) failed: its effect may have happened."""
        cause = str(getattr(error.cause, "message", error.cause))
        return _Stop(
            Outcome.ESCALATED,
            f"{name} failed ({cause}); its backend has no idempotency keys, so it is not "
            "retried automatically. A person must check whether the effect happened before "
            "anything acts again",
        )

    def _activity_stop(self, name: str, error: ActivityError, retry: RetryPolicy) -> _Stop:
        budgets = self._bundle.config.budgets
        cause = (
            error.cause.message if isinstance(error.cause, ApplicationError) else str(error.cause)
        )
        if error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED:
            self._ledger.charge_failed_attempts(retry.maximum_attempts)
            stop = BudgetStop(
                limit="retries",
                limit_value=budgets.max_retries,
                used=self._ledger.retries,
                over_by=1,
                message=f"retries: {name} failed {retry.maximum_attempts} times "
                f"({cause}); one more attempt would exceed max_retries={budgets.max_retries}",
            )
            return _Stop(Outcome.BUDGET_EXHAUSTED, stop.message, stop)
        if (
            error.retry_state == RetryState.TIMEOUT
            and self._elapsed() >= budgets.max_wall_time_seconds
        ):
            stop = BudgetStop(
                limit="wall_time_seconds",
                limit_value=budgets.max_wall_time_seconds,
                used=round(self._elapsed(), 3),
                over_by=round(self._elapsed() - budgets.max_wall_time_seconds, 3),
                message=f"wall_time_seconds: {name} ran past the run's wall-time budget",
            )
            return _Stop(Outcome.BUDGET_EXHAUSTED, stop.message, stop)
        return _Stop(Outcome.FAILED, f"{name} failed: {cause}")

    # -- one step --------------------------------------------------------------------------

    async def _hold_if_paused(self) -> None:
        """The kill switch's gate: a paused run waits here, durably, until resumed."""
        if not self._paused:
            return
        self._state = "paused"
        since = workflow.now()
        await workflow.wait_condition(lambda: not self._paused)
        self._paused_seconds += (workflow.now() - since).total_seconds()

    async def _step(self) -> None:
        await self._hold_if_paused()
        self._check_model_budget()
        self._state = "proposing"
        started = workflow.now()
        record = StepRecord(
            step=self._step_base + len(self._steps) + 1, started_at=started.isoformat()
        )
        self._steps.append(record)
        with self._tel.step_span(record.step) as span:
            try:
                await self._step_body(record)
            finally:
                self._tel.step_done(span, record, started)

    async def _step_body(self, record: StepRecord) -> None:
        response = await self._propose(record)
        proposal = parse_proposal(response.raw, response.raw_size, MAX_RAW_OUTPUT_CHARS)
        if isinstance(proposal, InvalidProposal):
            record.invalid = proposal
            self._invalid(record, proposal)
            return
        record.proposal = proposal
        if isinstance(proposal, FinalAnswerProposal):
            self._final(record, proposal)
            return
        if isinstance(proposal, EscalateProposal):
            self._record(record, redundant=True)
            raise _Stop(Outcome.ESCALATED, f"the model escalated: {proposal.reason}")
        await self._tool_call(record, proposal)

    def _record(self, record: StepRecord, *, redundant: bool = False) -> None:
        """Marks the step in history (a memo upsert, so each change is an event).

        ``redundant``: the history holds this state anyway — in the tool's result event, or
        in the run's summary completed in the same workflow task. Runs from record format 2
        skip those marks: each is a payload the worker encodes and a visibility write the
        server makes, about a third of a governed run's extra cost over bare Temporal.
        """
        if redundant and self._format >= 2:
            return
        workflow.upsert_memo({STEP_MEMO: StepMark.of(record).model_dump(mode="json")})

    def _alert(self, record: StepRecord, alerts: list[str]) -> None:
        # block_and_alert: the deny is the block; this is the alert operators page on.
        for alert in alerts:
            self._tel.alert(alert, record.step)
        self._alerts.extend(alerts)

    def _observe(
        self, record: StepRecord, entry: TranscriptEntry, note: str, *, redundant: bool = False
    ) -> None:
        record.observation = note
        self._append.append(entry)
        self._record(record, redundant=redundant)

    def _invalid(self, record: StepRecord, invalid: InvalidProposal) -> None:
        self._ledger.invalid_proposals += 1
        note = f"invalid proposal ({invalid.code}): {invalid.message}"
        self._observe(record, TranscriptEntry(role="gate", content=note), note)
        if self._ledger.invalid_proposals >= self._bundle.config.budgets.max_invalid_proposals:
            raise _Stop(
                Outcome.FAILED, f"{self._ledger.invalid_proposals} invalid proposals; last: {note}"
            )

    def _final(self, record: StepRecord, proposal: FinalAnswerProposal) -> None:
        check = self._gate.check_output(FINAL_ANSWER_RESOURCE, "answer", proposal.answer)
        record.output_checks.append(check)
        self._record(record, redundant=True)
        if not check.allowed:
            self._alert(record, check.alerts)
            self._tel.blocked("output")
            raise _Stop(Outcome.DENIED, f"final answer blocked by {', '.join(check.policy_ids)}")
        self._final_answer = proposal.answer
        raise _Stop(Outcome.COMPLETED, proposal.reason or "final answer given")

    async def _tool_call(self, record: StepRecord, proposal: ToolCallProposal) -> None:
        await self._hold_if_paused()
        self._state = "gating"
        decision = self._gate.decide(proposal, record.step)
        if proposal.tool in self._disabled and decision.verdict != Verdict.DENY:
            decision = decision.model_copy(
                update={
                    "verdict": Verdict.DENY,
                    "code": "tool_disabled",
                    "reason": f"{proposal.tool} is disabled by an operator (kill switch)",
                    "policy_ids": [],
                }
            )
        record.decision = decision
        self._tel.gate(decision, record.step)
        self._alert(record, decision.alerts)
        if decision.verdict in (Verdict.NEEDS_APPROVAL, Verdict.NEEDS_DUAL_APPROVAL):
            assert self._desk is not None
            self._state = "waiting_for_approval"
            required = 2 if decision.verdict == Verdict.NEEDS_DUAL_APPROVAL else 1
            with self._tel.approval_span(decision, required, record.step) as span:
                decision = await self._desk.wait_for_decision(
                    record, proposal, decision, self._record
                )
                self._tel.approval_done(span, record, decision)
            record.decision = decision
            if decision.verdict != Verdict.ALLOW:
                self._human_deny(record, decision)
                return
        if decision.verdict != Verdict.ALLOW:
            self._deny(record, decision)
            return
        assert decision.call_digest is not None
        assert decision.arguments is not None
        budgets = self._bundle.config.budgets
        if stop := self._ledger.check_tool_call(budgets, self._elapsed(), decision.call_digest):
            self._record(record, redundant=True)
            self._tel.blocked("budget")
            raise _Stop(Outcome.BUDGET_EXHAUSTED, stop.message, stop)
        if (stop := self._irreversible_stop(decision.tool or "")) is not None:
            self._record(record, redundant=True)
            self._tel.blocked("budget")
            raise _Stop(Outcome.BUDGET_EXHAUSTED, stop.message, stop)
        info = workflow.info()
        record.idempotency_key = idempotency_key(
            info.workflow_id, info.first_execution_run_id, record.step
        )
        # Invariant 1's record: up to format 2 a mark before the tool is scheduled; from
        # format 3 the scheduled event itself (ToolCallInput carries the allow). A drift
        # alert is the one thing that event does not hold, so it still gets its mark.
        self._record(record, redundant=self._format >= 3 and record.model_drift is None)
        self._state = "acting"
        with self._tel.tool_span(decision, record.idempotency_key, record.step) as span:
            result = await self._activity(
                tool_activity_name(decision.tool or ""),
                ToolCallInput(
                    run_id=info.workflow_id,
                    step=record.step,
                    tool=decision.tool or "",
                    arguments=decision.arguments,
                    call_digest=decision.call_digest,
                    idempotency_key=record.idempotency_key,
                    policy_version=decision.policy_version,
                    policy_ids=decision.policy_ids,
                    tier=decision.tier or 0,
                    agent=self._bundle.config.name,
                    caps=self._bundle.config.limits.caps,
                    code=decision.code or "",
                    reason=cut(decision.reason) or "",
                    approved_by=decision.approved_by,
                ),
                ToolResult,
                self._bundle.config.tools.timeout_seconds,
                tool=SUPPORT_TOOLS.specs[decision.tool or ""],
            )
            self._tel.tool_done(span, result)
        self._ledger.charge_tool(decision.call_digest, result.attempt)
        record.tool_result = result
        self._after_tool(record, decision.tool or "", result)
        if decision.tier == 2 and result.ok and self._sampled_for_review(record.idempotency_key):
            await self._enqueue_review(record, decision, result)

    def _sampled_for_review(self, key: str) -> bool:
        # Deterministic sampling: the same step is always in or out, on replay and in audits.
        fraction = self._bundle.config.approvals.review_fraction
        return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF < fraction

    async def _enqueue_review(
        self, record: StepRecord, decision: Decision, result: ToolResult
    ) -> None:
        item = ReviewItem(
            run_id=workflow.info().workflow_id,
            agent=self._bundle.config.name,
            step=record.step,
            tool=decision.tool or "",
            arguments=decision.arguments or {},
            call_digest=decision.call_digest or "",
            policy_ids=decision.policy_ids,
            policy_version=decision.policy_version,
            reason=getattr(record.proposal, "reason", ""),
            result_preview=result.preview,
        )
        await workflow.execute_activity(
            REVIEW_ENQUEUE_ACTIVITY,
            item,
            result_type=ReviewEnqueued,
            start_to_close_timeout=timedelta(seconds=30),
        )
        record.review_sampled = True
        self._record(record)

    def _irreversible_stop(self, tool: str) -> BudgetStop | None:
        """The per-run cap on irreversible actions (refunds, emails, deletions)."""
        cap = self._bundle.config.budgets.max_irreversible_actions
        spec = SUPPORT_TOOLS.get(tool)
        if cap is None or spec is None or not spec.irreversible:
            return None
        done = self._irreversible_done()
        if done < cap:
            return None
        return BudgetStop(
            limit="irreversible_actions",
            limit_value=cap,
            used=done,
            over_by=1,
            message=f"irreversible_actions: {tool} would be irreversible action {done + 1} of "
            f"this run; max_irreversible_actions={cap}",
        )

    def _irreversible_done(self) -> int:
        return self._irreversible_base + sum(
            1
            for s in self._steps
            if s.tool_result is not None
            and s.tool_result.ok
            and s.decision is not None
            and (d := SUPPORT_TOOLS.get(s.decision.tool or "")) is not None
            and d.irreversible
        )

    def _after_tool(self, record: StepRecord, tool: str, result: ToolResult) -> None:
        if result.code == "rate_limited" and record.decision is not None:
            # A cap held across all workers refused it: a denial, named after the cap.
            record.decision = record.decision.model_copy(
                update={
                    "verdict": Verdict.DENY,
                    "code": "rate_limited",
                    "reason": result.error or "rate limited",
                    "policy_ids": [result.cap or "cap"],
                }
            )
            self._tel.blocked("rate_limited")
            self._deny(record, record.decision)
            return
        if not result.ok:
            note = f"{tool} failed: {result.error}"
            self._observe(record, TranscriptEntry(role="tool", name=tool, content=note), note)
            return
        check = self._gate.check_output_facts(tool, "result", result.pii_kinds, result.output_size)
        record.output_checks.append(check)
        if not check.allowed:
            self._alert(record, check.alerts)
            self._tel.blocked("output")
            note = f"output of {tool} withheld by policy {', '.join(check.policy_ids)}"
            self._observe(record, TranscriptEntry(role="gate", content=note), note)
            return
        entry = TranscriptEntry(role="tool", name=tool, ref=result.output_ref)
        self._observe(record, entry, tool_observation(tool, result), redundant=True)

    def _deny(self, record: StepRecord, decision: Decision) -> None:
        self._ledger.denials += 1
        note = f"denied {decision.tool}: {decision.reason}"
        self._observe(record, TranscriptEntry(role="gate", content=note), note)
        if self._ledger.denials >= self._bundle.config.budgets.max_denials:
            raise _Stop(Outcome.DENIED, f"{decision.code}: {decision.reason}")

    def _human_deny(self, record: StepRecord, decision: Decision) -> None:
        """A deny or an expiry by people: fed back to the model, or the run escalates."""
        note = f"{decision.code} for {decision.tool}: {decision.reason}"
        self._observe(record, TranscriptEntry(role="gate", content=note), note)
        if self._bundle.config.approvals.on_deny == "escalate":
            raise _Stop(Outcome.ESCALATED, note)

    # -- the end ---------------------------------------------------------------------------

    def _finish(self, outcome: Outcome, reason: str, stop: BudgetStop | None) -> RunSummary:
        self._state, self._outcome = "finished", outcome
        info = workflow.info()
        summary = RunSummary(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            agent=self._bundle.config.name,
            outcome=outcome,
            reason=reason,
            route=self._route,
            final_answer=self._final_answer,
            steps=self._steps,
            model_calls=self._model_calls,
            usage=self._ledger.usage(),
            cost_usd=self._ledger.cost_usd,
            wall_time_seconds=round(self._elapsed(), 3),
            versions=self._versions(),
            approval_wait_seconds=round(self._desk.waited_seconds, 3) if self._desk else 0.0,
            budget_stop=stop,
            pending_action=self._desk.pending if self._desk else None,
            alerts=sorted(set(self._alerts)),
            routing=self._input.routing,
            previous_run_ids=self._carry.previous_run_ids if self._carry else [],
        )
        if self._format >= 2:
            return summary  # the completion event holds the summary: versions, outcome, reason
        workflow.upsert_memo(
            {
                RUN_MEMO: {
                    "versions": summary.versions.model_dump(mode="json")
                    if summary.versions
                    else None,
                    "outcome": outcome.value,
                    "reason": reason,
                }
            }
        )
        return summary
