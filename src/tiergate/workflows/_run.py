"""AgentRunWorkflow: load -> route -> loop (hold -> propose -> gate -> approve -> act) -> summary.

Only the Temporal shell lives here: each activity call is one small method, waits are
durable conditions and timers, and the history gets what the core says is worth marking.
Every rule — budgets, decisions and their rewrites, what a proposal or a tool result leads
to — is the pure `RunState` (`tiergate.core`), evaluated against the policy set and tool
specs pinned when the run started, so replay reaches the same decisions.
"""

from __future__ import annotations

import asyncio
from contextlib import nullcontext
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tiergate.core import (
        APPROVAL_UPDATE,
        CLASSIFY_ACTIVITY,
        CONTROL_SIGNAL,
        CONTROLS_MEMO,
        LOAD_AGENT_ACTIVITY,
        PENDING_APPROVAL_QUERY,
        PROPOSE_ACTIVITY,
        REVIEW_ENQUEUE_ACTIVITY,
        RUN_MEMO,
        STATUS_QUERY,
        STEP_MEMO,
        VERSION,
        WORKFLOW_NAME,
        AgentBundle,
        Allowed,
        ApprovalReceipt,
        ApprovalRequest,
        Classification,
        ControlCommand,
        Denied,
        Gate,
        Held,
        LoadAgentInput,
        ModelResponse,
        PendingAction,
        ReviewEnqueued,
        ReviewItem,
        RunCarry,
        RunInput,
        RunState,
        RunStatus,
        RunSummary,
        StepRecord,
        Stop,
        ToolCallProposal,
        ToolCallsProposal,
        ToolResult,
        routing_keys,
        tool_activity_name,
    )
    from tiergate.errors import RunInputError, TiergateError
    from tiergate.sensitive import pii_kinds, pii_kinds_v1
    from tiergate.workflows._activity import budgeted_activity
    from tiergate.workflows._attributes import (
        AGENT_ATTRIBUTE,
        AGENT_VERSION_ATTRIBUTE,
        VARIANT_ATTRIBUTE,
    )
    from tiergate.workflows._carry import should_continue
    from tiergate.workflows._desk import ApprovalDesk
    from tiergate.workflows._input import carried_from_here, input_error, parsed_input
    from tiergate.workflows._retry import service_retry
    from tiergate.workflows._telemetry import RunTelemetry

_T = TypeVar("_T")
_CODE_VERSION = f"tiergate {VERSION}"
#: The patch new runs record when their gate uses the detector of issue #22 (`sensitive._detect`).
DETECTOR_PATCH = "tiergate-detector-2"
#: The patch new runs record when they tag their visibility with the version and variant
#: their load activity routed them to (before, `start_run` tagged them at start).
ROUTING_PATCH = "tiergate-routing-in-run"
_LOAD_RETRY = service_retry(maximum_attempts=3)


#: Exceptions that fail the run instead of retrying its workflow task for ever: bad data (a
#: malformed input or carry a namespace client sent, a payload that fails its schema), a
#: broken invariant, a plain bug. The failure is then in the history, `runs show` and the
#: report, where an operator sees it, and nothing acts on it. A NondeterminismError is not
#: among them: it stays a task failure, so a deploy that broke replay can be rolled back and
#: the runs it stalled carry on.
FAIL_RUN_ON = [
    ValueError,
    AssertionError,
    LookupError,
    TypeError,
    AttributeError,
    TiergateError,
]


@workflow.defn(name=WORKFLOW_NAME, failure_exception_types=FAIL_RUN_ON)
class AgentRunWorkflow:
    """One governed agent run. Input: a RunInput as JSON. Result: a RunSummary."""

    @workflow.init
    def __init__(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> None:
        self._carry = carry
        self._phase = "starting"
        self._state: RunState | None = None
        self._desk: ApprovalDesk | None = None
        self._early: list[ControlCommand] = []  # heard before the bundle was loaded
        self._summary: RunSummary | None = None

    @workflow.run
    async def run(self, raw_input: dict[str, Any], carry: RunCarry | None = None) -> RunSummary:
        """``carry`` is set only by the run itself when it continues as new (see RunCarry)."""
        self._tel = RunTelemetry()
        with self._tel.run_span() as span:
            run_input = parsed_input(raw_input)
            if carry is not None:
                carried_from_here(carry)
            bundle = carry.bundle if carry else await self._load(run_input)
            state = self._start(bundle, run_input, carry)
            self._tel.bind(bundle, run_input.requester, span)
            stop = await self._route() if carry is None else None
            while stop is None:
                await self._continue_as_new_if_long(raw_input)
                stop = await self._step()
            info = workflow.info()
            summary = state.summary(
                stop, info.workflow_id, info.run_id, workflow.now(), _CODE_VERSION
            )
            self._phase, self._summary = "finished", summary
            self._tel.finished(span, summary, state.route)
            # Answers still being applied finish first, so none is lost or half-recorded.
            await workflow.wait_condition(workflow.all_handlers_finished)
        return summary

    # -- handlers ----------------------------------------------------------------------------

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> RunStatus:
        state = self._state
        if state is None:
            return RunStatus(state=self._phase, step=0)
        return RunStatus(
            state=self._phase,
            step=state.steps.done,
            outcome=self._summary.outcome if self._summary else None,
            usage=state.ledger.usage(),
            cost_usd=state.ledger.cost_usd,
            pending_action=self.pending_approval(),
        )

    @workflow.query(name=PENDING_APPROVAL_QUERY)
    def pending_approval(self) -> PendingAction | None:
        return self._desk.pending if self._desk else None

    @workflow.signal(name=CONTROL_SIGNAL)
    def control(self, command: ControlCommand) -> None:
        """The kill switch, obeyed only when an operator signed the command for this run.
        Recorded in the memo either way, so the history shows who did what when, and what
        was ignored and why."""
        if self._state is None:
            self._early.append(command)
            return
        info = workflow.info()
        operators = self._state.bundle.operators
        execution = (info.workflow_id, info.first_execution_run_id)
        if not self._state.switch.hear(command, workflow.now(), operators, execution):
            why = self._state.switch.ignored[-1]["why"]
            workflow.logger.warning(
                "control command ignored: %s by %s: %s", command.action, command.by, why
            )
        workflow.upsert_memo({CONTROLS_MEMO: self._state.switch.memo()})

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

    # -- setup -----------------------------------------------------------------------------

    async def _load(self, run_input: RunInput) -> AgentBundle:
        bundle: AgentBundle = await workflow.execute_activity(
            LOAD_AGENT_ACTIVITY,
            LoadAgentInput(
                agent=run_input.agent,
                version=run_input.agent_version,
                route_keys=routing_keys(run_input.input),
            ),
            result_type=AgentBundle,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_LOAD_RETRY,
        )
        return bundle

    def _start(self, bundle: AgentBundle, run_input: RunInput, carry: RunCarry | None) -> RunState:
        # Runs recorded before the current detector keep deciding with the one they ran
        # with, so their histories replay; new runs record the patch and use today's.
        detect = pii_kinds if workflow.patched(DETECTOR_PATCH) else pii_kinds_v1
        gate = Gate.of(bundle, detect=detect)
        try:
            state = RunState(bundle, run_input, gate, workflow.info().start_time)
        except RunInputError as error:
            raise input_error(error.message) from None
        self._desk = ApprovalDesk(bundle, gate, run_input.requester)
        name = bundle.config.name
        # start_run sets the agent attribute at start; a run does not write it twice.
        attributes = workflow.info().typed_search_attributes
        if attributes.get(AGENT_ATTRIBUTE) != name:
            workflow.upsert_search_attributes([AGENT_ATTRIBUTE.value_set(name)])
        if bundle.routing is not None and carry is None and workflow.patched(ROUTING_PATCH):
            # Rollout figures are read back from these, whoever started the run.
            tags = [
                AGENT_VERSION_ATTRIBUTE.value_set(bundle.config.effective_version),
                VARIANT_ATTRIBUTE.value_set(bundle.routing.variant),
            ]
            if any(attributes.get(tag.key) != tag.value for tag in tags):
                workflow.upsert_search_attributes(tags)
        versions = state.versions(_CODE_VERSION).model_dump(mode="json")
        workflow.upsert_memo({RUN_MEMO: {"versions": versions}})
        if carry is not None:
            state.resume(carry)
        self._state = state
        for command in self._early:
            self.control(command)
        return state

    async def _route(self) -> Stop | None:
        """The router tier classifies the task once, if the agent has one."""
        state = self._run_state()
        routing = state.classify_input(workflow.info().workflow_id)
        if routing is None:
            return None
        if stop := state.model_stop(workflow.now()):
            return stop
        self._phase = "routing"
        tier, request = routing
        with self._tel.model(request.model, tier, "route", None) as span:
            result = await budgeted_activity(
                state,
                CLASSIFY_ACTIVITY,
                request,
                Classification,
                request.model.timeout_seconds,
            )
            if isinstance(result, Stop):
                return result
            call = state.charge_model(tier, result, None)
            self._tel.model_done(span, call, result.usage)
        if stop := state.drift_stop(call, None):
            return stop
        state.routed(result.label)
        return None

    # -- long runs -------------------------------------------------------------------------

    async def _continue_as_new_if_long(self, raw_input: dict[str, Any]) -> None:
        """Between two steps, nothing pending: continue as new before Temporal's limits."""
        info = workflow.info()
        if not should_continue(
            info.get_current_history_length(),
            info.get_current_history_size(),
            info.is_continue_as_new_suggested(),
            self._run_state().input.continue_as_new_after_events,
        ):
            return
        await workflow.wait_condition(workflow.all_handlers_finished)
        carry = self._run_state().carry(info.run_id)
        self._tel.continued(carry.segment, carry.steps_done)
        workflow.continue_as_new(args=[raw_input, carry])

    # -- one step --------------------------------------------------------------------------

    async def _step(self) -> Stop | None:
        state = self._run_state()
        await self._hold_while_paused()
        if stop := state.model_stop(workflow.now()):
            return stop
        record = state.steps.open(workflow.now())
        with self._tel.step(record):
            stop = await self._turn(record)
            self._mark()
        return stop

    async def _turn(self, record: StepRecord) -> Stop | None:
        response = await self._propose(record)
        if isinstance(response, Stop):
            return response
        turn = self._run_state().take_proposal(record, response)
        if isinstance(turn, ToolCallProposal):
            return await self._tool_call(record, turn)
        if isinstance(turn, ToolCallsProposal):
            return await self._calls(record, turn)
        return turn

    async def _hold_while_paused(self) -> None:
        """The kill switch's gate: a paused run waits here, durably, until resumed."""
        switch = self._run_state().switch
        if not switch.paused:
            return
        self._phase = "paused"
        since = workflow.now()
        await workflow.wait_condition(lambda: not switch.paused)
        switch.paused_seconds += (workflow.now() - since).total_seconds()

    async def _propose(self, record: StepRecord) -> ModelResponse | Stop:
        state = self._run_state()
        self._phase = "proposing"
        tier, request = state.propose_input(record, workflow.info().workflow_id)
        with self._tel.model(
            state.models[tier], tier, "propose", request.max_output_tokens
        ) as span:
            response = await budgeted_activity(
                state,
                PROPOSE_ACTIVITY,
                request,
                ModelResponse,
                state.models[tier].timeout_seconds,
            )
            if isinstance(response, Stop):
                return response
            call = state.charge_model(tier, response, record.step)
            self._tel.model_done(span, call, response.usage)
            state.proposed(record, response, call)
        return state.drift_stop(call, record) or response

    async def _tool_call(self, record: StepRecord, proposal: ToolCallProposal) -> Stop | None:
        allowed = await self._gate(record, proposal)
        if not isinstance(allowed, Allowed):
            return allowed
        return await self._took(record, allowed, await self._act(record, allowed))

    async def _gate(self, record: StepRecord, proposal: ToolCallProposal) -> Allowed | Stop | None:
        """The call's decision: the gate's, then people's for a held tier, then the budgets'.
        Allowed: the call may run. Otherwise it was handled (a denial fed back: None)."""
        state = self._run_state()
        await self._hold_while_paused()
        self._phase = "gating"
        decision = state.decide(record, proposal)
        if isinstance(decision, Held):
            # Nobody is asked about a call the budgets would refuse anyway.
            if stop := state.tool_stop(decision, workflow.now()):
                return stop
            decision = await self._wait_for_approvers(record, proposal, decision)
            if isinstance(decision, Denied):
                return state.refused_by_people(record, decision)
            # A pause during the wait holds the approved call here; a disable denies it.
            await self._hold_while_paused()
            decision = state.approved(record, decision)
        if isinstance(decision, Denied):
            return state.denied(record, decision)
        if stop := state.tool_stop(decision, workflow.now()):
            return stop
        return decision

    async def _took(
        self, record: StepRecord, decision: Allowed, result: ToolResult | Stop
    ) -> Stop | None:
        """What the tool's answer leads to, once it is recorded and fed back."""
        if isinstance(result, Stop):
            return result
        state = self._run_state()
        stop = state.acted(record, decision, result)
        self._mark()
        if item := state.review_item(record, decision, result, workflow.info().workflow_id):
            await self._enqueue_review(item)
            state.reviewed(record)
        return stop

    async def _calls(self, first: StepRecord, batch: ToolCallsProposal) -> Stop | None:
        """An answer with several tool calls: each is a step, taken in the proposed order.
        Allowed reads next to each other run at once (`RunState.joins_reads`); any other
        call waits until they are done and is then decided and run as if alone, so writes
        run one by one, in order, each approved on its own where its tier says so."""
        state = self._run_state()
        self._tel.answered_with_several(first)
        if stop := state.batch_stop(batch):
            return stop
        reads: list[tuple[StepRecord, Allowed]] = []
        for index, call in enumerate(batch.calls):
            await self._hold_while_paused()
            now = workflow.now()
            decision, counts = state.judge(call, first.step + index, now)
            if state.joins_reads(decision, [allowed for _, allowed in reads], now):
                assert isinstance(decision, Allowed)
                record = state.batched(first, index, call, now) if index else first
                record.decided_with = counts
                reads.append((record, state.decided(record, decision)))
                continue
            if stop := await self._reads(first, reads):
                return state.cut_short(stop, first)
            reads = []
            record = state.batched(first, index, call, workflow.now()) if index else first
            with self._tel.step(record, sibling=True) if index else nullcontext():
                stop = await self._tool_call(record, call)
                self._mark()
            if stop is not None:
                return state.cut_short(stop, first)
        stop = await self._reads(first, reads)
        return state.cut_short(stop, first) if stop else None

    async def _reads(
        self, first: StepRecord, reads: list[tuple[StepRecord, Allowed]]
    ) -> Stop | None:
        """Runs allowed reads of one answer at once. Their answers are taken in the proposed
        order, whatever order they came in, so the model reads them as it asked for them and
        the run counts them as one after another would have."""
        taken = [0]

        async def read(order: int, record: StepRecord, decision: Allowed) -> Stop | None:
            with self._tel.step(record, sibling=True) if record is not first else nullcontext():
                result = await self._act(record, decision)
                await workflow.wait_condition(lambda: taken[0] == order)
                try:
                    return await self._took(record, decision, result)
                finally:
                    taken[0] += 1

        stops = await asyncio.gather(*(read(n, r, d) for n, (r, d) in enumerate(reads)))
        return next((stop for stop in stops if stop is not None), None)

    async def _wait_for_approvers(
        self, record: StepRecord, proposal: ToolCallProposal, decision: Held
    ) -> Allowed | Denied:
        """A durable wait for the approvals ``decision`` needs, until decided or expired."""
        desk, state = self._desk_open(), self._run_state()
        self._phase = "waiting_for_approval"
        with self._tel.approval(decision, record.step) as span:
            record.approval = await desk.open(record.step, proposal, decision)
            state.waiting(record)
            self._mark()
            desk.published()
            decided = await desk.until_sla()
            if not decided:
                desk.escalate()
                state.waiting(record)
                self._mark()
                decided = await desk.overdue()
            final, waited = desk.close(decided, decision)
            state.waited_seconds += waited
            self._tel.approval_done(span, record, final)
        return state.decided(record, final)

    async def _act(self, record: StepRecord, decision: Allowed) -> ToolResult | Stop:
        state = self._run_state()
        info = workflow.info()
        call = state.tool_input(record, decision, info.workflow_id, info.first_execution_run_id)
        self._mark()
        self._phase = "acting"
        spec = state.bundle.tools[decision.tool]
        with self._tel.tool(decision, call.idempotency_key, record.step) as span:
            result = await budgeted_activity(
                state,
                tool_activity_name(decision.tool),
                call,
                ToolResult,
                state.bundle.config.tools.timeout_seconds,
                tool=spec,
            )
            if not isinstance(result, Stop):
                self._tel.tool_done(span, result)
        return result

    async def _enqueue_review(self, item: ReviewItem) -> None:
        await workflow.execute_activity(
            REVIEW_ENQUEUE_ACTIVITY,
            item,
            result_type=ReviewEnqueued,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=service_retry(),
        )

    # -- plumbing --------------------------------------------------------------------------

    def _mark(self) -> None:
        """Upserts the step marks the core asked for: a memo change is a history event."""
        for mark in self._run_state().steps.take_marks():
            workflow.upsert_memo({STEP_MEMO: mark.model_dump(mode="json")})

    def _run_state(self) -> RunState:
        assert self._state is not None, "the run's state exists once its bundle is loaded"
        return self._state

    def _desk_open(self) -> ApprovalDesk:
        assert self._desk is not None
        return self._desk
