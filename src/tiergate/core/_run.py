"""The state of one run and the rules that move it from step to step.

Everything the run loop decides lives here, as plain code over plain values: which budget
stops the run, what a proposal leads to, how a kill switch or a cap turns a decision into a
denial, what is fed back to the model, what the summary says. The workflow shell
(`tiergate.workflows`) only calls activities, waits, keeps time and writes the history;
it hands the results here and ends the run on the first `Stop` it gets back. Times are
arguments, so the same calls give the same answers on replay and in a unit test.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TypeVar, cast

from tiergate.core._adaptive import adjust, ambiguity, unsure
from tiergate.core._agent import AgentBundle, Budgets
from tiergate.core._budget import ActivityFailure, BudgetLedger
from tiergate.core._carry import RunCarry
from tiergate.core._cedar import FINAL_ANSWER_RESOURCE
from tiergate.core._controls import KillSwitch
from tiergate.core._decision import Allowed, Decision, Denied, Held, denial
from tiergate.core._digest import idempotency_key
from tiergate.core._gate import Gate
from tiergate.core._model_calls import ModelCalls
from tiergate.core._names import MAX_RAW_OUTPUT_CHARS
from tiergate.core._payloads import (
    Classification,
    ClassifyInput,
    ModelResponse,
    ProposeInput,
    ReviewItem,
    RunInput,
    ToolCallInput,
    ToolResult,
    TranscriptEntry,
)
from tiergate.core._proposal import (
    EscalateProposal,
    FinalAnswerProposal,
    InvalidProposal,
    ToolCallProposal,
    ToolCallsProposal,
    parse_proposal,
)
from tiergate.core._records import (
    BudgetAdjustment,
    CallBatch,
    ModelCall,
    Outcome,
    RunSummary,
    StepRecord,
    Stop,
    Versions,
    tool_observation,
)
from tiergate.core._review import review_item
from tiergate.core._rewrites import unless_disabled, unless_repeated_write
from tiergate.core._session import RunCounts, RunSoFar, Session
from tiergate.core._steps import StepBook

_D = TypeVar("_D", bound=Allowed | Held | Denied)
_R = TypeVar("_R")


class RunState:
    """One run: its pinned bundle, its spend, its steps, and every rule about them."""

    def __init__(
        self, bundle: AgentBundle, run_input: RunInput, gate: Gate, started: datetime
    ) -> None:
        self.bundle, self.input, self.gate, self.started = bundle, run_input, gate, started
        config = bundle.config
        self.models = ModelCalls(config, run_input.model_overrides, bundle.offline_model_overrides)
        self.ledger = BudgetLedger()
        self.session = Session()
        self.steps = StepBook()
        self.alerts: list[str] = []
        self.head: str | None = None
        self.append: list[TranscriptEntry] = [
            TranscriptEntry(role="system", content=config.prompts.system.text),
            TranscriptEntry(role="user", content=json.dumps(run_input.input, sort_keys=True)),
        ]
        self.route: str | None = None
        self.final_answer: str | None = None
        self.switch = KillSwitch(disabled=set(bundle.disabled_tools))
        self.waited_seconds = 0.0
        self.previous_run_ids: list[str] = []
        self.segment = 1
        #: Steps opened for the second and later calls of answers with several: the model
        #: was called once per step less these (a scripted model answers per call).
        self.batched_steps = 0
        #: Whether the allowed reads of one answer may run at once. Only when no policy can
        #: read the run's session: a decision that counts or lists what took effect must see
        #: every earlier call of the answer done, so those run one after another.
        self.parallel_reads = not bundle.policy.mentions_session

    @property
    def budgets(self) -> Budgets:
        return self.bundle.config.budgets

    # -- long runs ---------------------------------------------------------------------------

    def resume(self, carry: RunCarry) -> None:
        """Takes up where the previous segment stopped (see RunCarry)."""
        self.ledger = carry.ledger.model_copy(deep=True)
        self.session = carry.session.model_copy(deep=True)
        self.steps.base, self.steps.irreversible_base = carry.steps_done, carry.irreversible_done
        self.started = datetime.fromisoformat(carry.started_at)
        self.head, self.append = carry.transcript_head, list(carry.append)
        self.route = carry.route
        self.models.reported = {k: list(v) for k, v in carry.reported_models.items()}
        self.models.carried = list(carry.last_model_calls)
        self.alerts = list(carry.alerts)
        self.switch.paused, self.switch.paused_seconds = carry.paused, carry.paused_seconds
        self.switch.disabled |= set(carry.disabled_tools)
        self.switch.commands = list(carry.controls)
        self.waited_seconds = carry.approval_wait_seconds
        self.previous_run_ids, self.segment = list(carry.previous_run_ids), carry.segment
        self.batched_steps = carry.batched_steps

    def carry(self, run_id: str) -> RunCarry:
        """What the next segment starts from, when this one (``run_id``) continues as new."""
        return RunCarry(
            segment=self.segment + 1,
            previous_run_ids=[*self.previous_run_ids, run_id],
            started_at=self.started.isoformat(),
            bundle=self.bundle,
            ledger=self.ledger,
            session=self.session,
            steps_done=self.steps.done,
            irreversible_done=self.steps.irreversible_done(self.bundle.tools),
            transcript_head=self.head,
            append=self.append,
            route=self.route,
            reported_models=self.models.reported,
            last_model_calls=self.models.last_per_tier(),
            alerts=self.alerts,
            approval_wait_seconds=self.waited_seconds,
            paused=self.switch.paused,
            paused_seconds=self.switch.paused_seconds,
            disabled_tools=sorted(self.switch.disabled - set(self.bundle.disabled_tools)),
            controls=self.switch.commands,
            batched_steps=self.batched_steps,
        )

    # -- time ----------------------------------------------------------------------------

    def elapsed(self, now: datetime) -> float:
        """Seconds of work: time spent waiting for approvers or paused is not the agent's."""
        waited = self.waited_seconds + self.switch.paused_seconds
        return (now - self.started).total_seconds() - waited

    def remaining(self, now: datetime) -> float:
        """Seconds of wall-time budget left (at least one, so a last call can still fail
        in time rather than never start)."""
        return max(self.budgets.max_wall_time_seconds - self.elapsed(now), 1.0)

    def retries_left(self) -> int:
        return self.ledger.remaining_retries(self.budgets)

    # -- model calls -----------------------------------------------------------------------

    def model_stop(self, now: datetime) -> Stop | None:
        """Whether one more model call is within every budget."""
        return Stop.exhausted(self.ledger.check_model_call(self.budgets, self.elapsed(now)))

    def classify_input(self, run_id: str) -> tuple[str, ClassifyInput] | None:
        """The router tier's call, or None when the agent has no router."""
        tier = self.bundle.config.model_tier.router
        if tier is None:
            return None
        spec = self.models[tier]
        return tier, ClassifyInput(
            run_id=run_id, agent=self.bundle.config.name, model=spec, input=self.input.input
        )

    def routed(self, label: str) -> None:
        self.route = label
        self.append.append(TranscriptEntry(role="system", content=f"Router: {label}"))

    def propose_input(self, record: StepRecord, run_id: str) -> tuple[str, ProposeInput]:
        """The executor tier's call for ``record``: its input does not grow with the run."""
        config = self.bundle.config
        tier = config.model_tier.executor
        spec = self.models[tier]
        calls = self.models.so_far()
        return tier, ProposeInput(
            run_id=run_id,
            step=record.step,
            agent=config.name,
            model=spec.for_step(record.step - self.batched_steps),
            transcript_head=self.head,
            append=self.append,
            tools=config.allowed_tools,
            max_output_tokens=max(1, min(4096, self.ledger.remaining_tokens(config.budgets))),
            previous_record=calls[-1].record_ref if calls else None,
            max_parallel_calls=config.tools.max_parallel_calls,
        )

    def charge_model(
        self, tier: str, response: ModelResponse | Classification, step: int | None
    ) -> ModelCall:
        """Charges a model call to the run (see `ModelCalls.charge`)."""
        return self.models.charge(tier, response, step, self.ledger)

    def proposed(self, record: StepRecord, response: ModelResponse, call: ModelCall) -> None:
        """A step's model call came back: the transcript moves on, the step records it."""
        self.head, self.append = response.transcript_head, []
        record.model = response.reported_model
        record.usage = response.usage
        record.cost_usd = call.cost_usd

    def drift_stop(self, call: ModelCall, record: StepRecord | None) -> Stop | None:
        """Flags a drifted call; stops the run before its answer is used if the agent says so."""
        if call.drift is None:
            return None
        if record is not None:
            record.model_drift = call.drift
        self.alerts.append("model_drift")
        if self.bundle.config.on_model_drift == "stop":
            return Stop(outcome=Outcome.ESCALATED, reason=f"model drift: {call.drift.message}")
        return None

    # -- proposals ---------------------------------------------------------------------------

    def take_proposal(
        self, record: StepRecord, response: ModelResponse
    ) -> ToolCallProposal | ToolCallsProposal | Stop | None:
        """What the model's answer leads to: a tool call to gate, several (each gated on its
        own, `batch_stop` first), the end of the run, or (an invalid answer within budget)
        another step."""
        proposal = parse_proposal(
            response.raw,
            response.raw_size,
            MAX_RAW_OUTPUT_CHARS,
            response.raw_ref,
            max_calls=self.bundle.config.tools.max_parallel_calls,
        )
        if isinstance(proposal, InvalidProposal):
            record.invalid = proposal
            return self._invalid(record, proposal)
        calls = proposal.calls if isinstance(proposal, ToolCallsProposal) else [proposal]
        record.proposal = calls[0]
        if isinstance(proposal, ToolCallsProposal):
            record.batch = CallBatch(turn=record.step, index=0, size=len(calls))
        adaptive = self.budgets.adaptive
        if adaptive is not None:
            for call in calls:
                if (low := unsure(adaptive, call)) is not None:
                    return self._adjusted(record, low)
        if isinstance(proposal, FinalAnswerProposal):
            return self._final(record, proposal)
        if isinstance(proposal, EscalateProposal):
            return Stop(outcome=Outcome.ESCALATED, reason=f"the model escalated: {proposal.reason}")
        return proposal

    # -- answers with several tool calls -----------------------------------------------------

    def batch_stop(self, batch: ToolCallsProposal) -> Stop | None:
        """An answer with more tool calls than the run's budgets leave is refused whole:
        none of its calls runs, and the run stops as it would on the call past the limit."""
        irreversible = sum(
            1
            for call in batch.calls
            if (spec := self.bundle.tools.get(call.tool)) is not None and spec.irreversible
        )
        done = self.steps.irreversible_done(self.bundle.tools)
        return Stop.exhausted(
            self.ledger.check_tool_batch(self.budgets, len(batch.calls), irreversible, done)
        )

    def batched(
        self, first: StepRecord, index: int, call: ToolCallProposal, now: datetime
    ) -> StepRecord:
        """Opens the step of ``call``, call ``index`` (1 or later) of ``first``'s answer."""
        assert first.batch is not None, "only an answer with several calls has later ones"
        record = self.steps.open(now)
        record.proposal = call
        record.batch = first.batch.model_copy(update={"index": index})
        self.batched_steps += 1
        return record

    def cut_short(self, stop: Stop, first: StepRecord) -> Stop:
        """``stop`` ended the run part-way through ``first``'s answer: says how many of its
        calls never became steps (they did not run, and nothing was recorded of them)."""
        size = first.batch.size if first.batch else 1
        left = size - (self.steps.done - first.step + 1)
        if left <= 0:
            return stop
        more = f"; {left} more call{'s' * (left != 1)} of the same answer did not run"
        return stop.model_copy(update={"reason": stop.reason + more})

    def joins_reads(
        self,
        decision: Decision,
        running: list[Allowed],
        now: datetime,
    ) -> bool:
        """Whether an allowed call may run beside the ``running`` ones of its answer: a
        read, when no policy reads the session (`parallel_reads`), not the same call as one
        of them, and within every budget. A denial, a held call, a write or a repeat waits
        until they are done (and is decided again then), so everything after it sees them."""
        if not (self.parallel_reads and isinstance(decision, Allowed)):
            return False
        spec = self.bundle.tools.get(decision.tool)
        if spec is None or spec.kind != "read":
            return False
        if any(other.call_digest == decision.call_digest for other in running):
            return False
        return self.tool_stop(decision, now) is None

    def _invalid(self, record: StepRecord, invalid: InvalidProposal) -> Stop | None:
        note = f"invalid proposal ({invalid.code}): {invalid.message}"
        self._observe(record, TranscriptEntry(role="gate", content=note), note)
        if self.ledger.count_invalid(self.budgets):
            reason = f"{self.ledger.invalid_proposals} invalid proposals; last: {note}"
            return Stop(outcome=Outcome.FAILED, reason=reason)
        return None

    def _final(self, record: StepRecord, proposal: FinalAnswerProposal) -> Stop:
        check = self.gate.check_output(FINAL_ANSWER_RESOURCE, "answer", proposal.answer)
        record.output_checks.append(check)
        if not check.allowed:
            self.alerts.extend(check.alerts)
            reason = f"final answer blocked by {', '.join(check.policy_ids)}"
            return Stop(outcome=Outcome.DENIED, reason=reason)
        self.final_answer = proposal.answer
        return Stop(outcome=Outcome.COMPLETED, reason=proposal.reason or "final answer given")

    # -- decisions -------------------------------------------------------------------------

    def decide(self, record: StepRecord, proposal: ToolCallProposal) -> Decision:
        """The gate's decision, denied instead when an operator disabled the tool, and held
        for a person when it repeats a write this run already made."""
        started = datetime.fromisoformat(record.started_at) if record.started_at else self.started
        decision, counts = self.judge(proposal, record.step, started)
        record.decided_with = counts  # the tool input and the step's mark report them
        return self.decided(record, decision)

    def judge(
        self, proposal: ToolCallProposal, step: int, now: datetime
    ) -> tuple[Decision, RunCounts]:
        """`decide`'s decision on ``proposal`` as step ``step`` at ``now``, recorded nowhere."""
        so_far = RunSoFar(
            self.session,
            denials=self.ledger.denials,
            invalid_proposals=self.ledger.invalid_proposals,
            seconds=self.elapsed(now),
        )
        decided = self.gate.decide(proposal, step, so_far)
        decision = unless_disabled(decided, self.switch.disabled)
        spec = self.bundle.tools.get(decision.tool or "")
        made = (
            self.ledger.call_counts.get(decision.call_digest, 0)
            if isinstance(decision, Allowed)
            else 0
        )
        return unless_repeated_write(decision, spec, made), so_far.counts

    def approved(self, record: StepRecord, decision: Allowed) -> Allowed | Denied:
        """People approved the call; it is denied after all if an operator disabled its tool
        while they decided, since a disabled tool must not act from the moment it is."""
        return self.decided(record, unless_disabled(decision, self.switch.disabled))

    def decided(self, record: StepRecord, decision: _D) -> _D:
        """``decision`` is the step's decision now (a gate's, people's or a cap's)."""
        record.decision = decision
        self.alerts.extend(decision.alerts)
        return decision

    def denied(self, record: StepRecord, decision: Denied) -> Stop | None:
        """A denial is fed back to the model, until the run has had ``max_denials``."""
        note = f"denied {decision.tool}: {decision.reason}"
        self._observe(record, TranscriptEntry(role="gate", content=note), note)
        if self.ledger.count_denial(self.budgets):
            return Stop(outcome=Outcome.DENIED, reason=f"{decision.code}: {decision.reason}")
        return None

    def refused_by_people(self, record: StepRecord, decision: Denied) -> Stop | None:
        """A deny or an expiry by people: fed back to the model, or the run escalates."""
        note = f"{decision.code} for {decision.tool}: {decision.reason}"
        self._observe(record, TranscriptEntry(role="gate", content=note), note)
        if self.bundle.config.approvals.on_deny == "escalate":
            return Stop(outcome=Outcome.ESCALATED, reason=note)
        return None

    def waiting(self, record: StepRecord) -> None:
        """The step's wait for people began or passed its SLA: the history marks it."""
        self.steps.mark(record)

    # -- tool calls --------------------------------------------------------------------------

    def tool_stop(self, decision: Allowed | Held, now: datetime) -> Stop | None:
        """Whether this call is within every budget, irreversible actions included: checked
        before people are asked about a held call, and again before it runs."""
        stop = self.ledger.check_tool_call(self.budgets, self.elapsed(now), decision.call_digest)
        spec = self.bundle.tools.get(decision.tool)
        if stop is None and spec is not None and spec.irreversible:
            stop = self.ledger.check_irreversible(
                self.budgets, self.steps.irreversible_done(self.bundle.tools), decision.tool
            )
        return Stop.exhausted(stop)

    def tool_input(
        self, record: StepRecord, decision: Allowed, run_id: str, first_run_id: str
    ) -> ToolCallInput:
        """The tool activity's input: only ever built from an allow, which it carries, so its
        scheduled event is the allow's record (invariant 1)."""
        record.idempotency_key = idempotency_key(run_id, first_run_id, record.step)
        if record.model_drift is not None:
            # The one thing the scheduled event does not hold: mark it before the call.
            self.steps.mark(record)
        return ToolCallInput.allowing(
            decision,
            run_id,
            record.step,
            record.idempotency_key,
            self.bundle.config.name,
            self.bundle.config_hash,
            record.decided_with or RunCounts(),
        )

    def refused_by_runner(
        self, activity: str, check: str, message: str, result_type: type[_R]
    ) -> _R | Stop:
        """The tool runner refused the call where it executes; nothing acted. A kill switch
        it saw before the run did (a pause or a disable that raced the scheduling) is the
        run's denial ``tool_disabled``; any other refusal means this run's call could not be
        verified (its bundle is gone from the workers, its approvals no longer verify) and
        ends the run, failed, naming the check."""
        if check == "kill_switch" and result_type is ToolResult:
            return cast(_R, ToolResult(ok=False, error=message, code="kill_switch"))
        return Stop(
            outcome=Outcome.FAILED, reason=f"{activity} refused by the tool runner: {message}"
        )

    def acted(self, record: StepRecord, decision: Allowed, result: ToolResult) -> Stop | None:
        """A tool answered: charge it, and feed back what the output rules let through. A
        cap that refused the call makes the step a denial named after the cap."""
        self.ledger.charge_tool(decision.call_digest, result.attempt)
        record.tool_result = result
        tool = decision.tool
        if result.code == "rate_limited":
            limited = denial(
                decision, "rate_limited", result.error or "rate limited", [result.cap or "cap"]
            )
            return self.denied(record, self.decided(record, limited))
        if result.code == "kill_switch":
            held_back = denial(decision, "tool_disabled", result.error or "kill switch", [])
            return self.denied(record, self.decided(record, held_back))
        if not result.ok:
            note = f"{tool} failed: {result.error}"
            self._observe(record, TranscriptEntry(role="tool", name=tool, content=note), note)
            return self._ambiguous(record, decision, result, None)
        if (spec := self.bundle.tools.get(tool)) is not None:
            self.session.took_effect(spec, decision.arguments)
        check = self.gate.check_output_facts(tool, "result", result.pii_kinds, result.output_size)
        record.output_checks.append(check)
        if not check.allowed:
            self.alerts.extend(check.alerts)
            note = f"output of {tool} withheld by policy {', '.join(check.policy_ids)}"
            self._observe(record, TranscriptEntry(role="gate", content=note), note)
            return self._ambiguous(record, decision, result, check.policy_ids)
        entry = TranscriptEntry(role="tool", name=tool, ref=result.output_ref)
        self._observe(record, entry, tool_observation(tool, result), mark=False)
        return self._ambiguous(record, decision, result, None)

    def _ambiguous(
        self,
        record: StepRecord,
        decision: Allowed,
        result: ToolResult,
        withheld_by: list[str] | None,
    ) -> Stop | None:
        """``budgets.adaptive``: an ambiguous result counts, and may shrink the budgets or
        stop the run (see `tiergate.core._adaptive`). Agents without it are untouched."""
        adaptive = self.budgets.adaptive
        if adaptive is None:
            return None
        seen = self.ledger.seen_answers
        reason, key = ambiguity(
            decision.tool,
            self.bundle.tools.get(decision.tool),
            decision.call_digest,
            result,
            withheld_by,
            seen,
        )
        if key not in seen:
            seen.append(key)
        if reason is None:
            return None
        record.ambiguous = reason
        adjustment = adjust(adaptive, self.budgets, self.ledger, reason)
        if adjustment is None:
            self.steps.mark(record)  # the history holds the result, not that it was ambiguous
            return None
        return self._adjusted(record, adjustment)

    def _adjusted(self, record: StepRecord, adjustment: BudgetAdjustment) -> Stop | None:
        """The step records ``adjustment``; an escalation ends the run."""
        record.adjustment = adjustment
        self.steps.mark(record)
        if adjustment.kind != "escalate":
            return None
        self.alerts.append("adaptive_escalation")
        return Stop(
            outcome=Outcome.ESCALATED,
            reason=f"adaptive budgets: {adjustment.reason}",
            adaptive=True,
        )

    def review_item(
        self, record: StepRecord, decision: Allowed, result: ToolResult, run_id: str
    ) -> ReviewItem | None:
        """A tier-2 action sampled into the post-hoc review queue, or None (see `review_item`)."""
        fraction = self.bundle.config.approvals.review_fraction
        return review_item(record, decision, result, run_id, self.bundle.config.name, fraction)

    def reviewed(self, record: StepRecord) -> None:
        record.review_sampled = True
        self.steps.mark(record)

    # -- failures --------------------------------------------------------------------------

    def failed(self, name: str, failure: ActivityFailure, now: datetime) -> Stop:
        """An activity failed for good: a budget stop when a budget ran out, else a failure."""
        limit = self.ledger.failed_activity(self.budgets, name, failure, self.elapsed(now))
        stop = Stop.exhausted(limit)
        return stop or Stop(outcome=Outcome.FAILED, reason=f"{name} failed: {failure.cause}")

    # -- records ---------------------------------------------------------------------------

    def _observe(
        self, record: StepRecord, entry: TranscriptEntry, note: str, *, mark: bool = True
    ) -> None:
        """Feeds ``note`` back to the model. Marked in the history unless the history holds
        it anyway (an ok tool result is its own result event)."""
        record.observation = note
        self.append.append(entry)
        if mark:
            self.steps.mark(record)

    def versions(self, code_version: str) -> Versions:
        return Versions.of(
            self.bundle, code_version, self.models.requested_ids(), self.models.reported_ids()
        )

    def summary(
        self, stop: Stop, workflow_id: str, run_id: str, now: datetime, code_version: str
    ) -> RunSummary:
        return RunSummary(
            workflow_id=workflow_id,
            run_id=run_id,
            agent=self.bundle.config.name,
            outcome=stop.outcome,
            reason=stop.reason,
            route=self.route,
            final_answer=self.final_answer,
            steps=self.steps.records,
            model_calls=self.models.calls,
            usage=self.ledger.usage(),
            cost_usd=self.ledger.cost_usd,
            wall_time_seconds=round(self.elapsed(now), 3),
            versions=self.versions(code_version),
            approval_wait_seconds=round(self.waited_seconds, 3),
            budget_stop=stop.budget_stop,
            adaptive_stop=stop.adaptive,
            alerts=sorted(set(self.alerts)),
            routing=self.bundle.routing or self.input.routing,
            previous_run_ids=self.previous_run_ids,
        )
