"""Offline what-if: every recorded tool call re-decided under a candidate policy set.

From the histories alone: each step's proposal is the model's answer its ``model__propose``
completion recorded, parsed as the run parsed it; the session a policy sees is rebuilt step
by step from the tool calls that took effect before it (a later segment of a long run starts
from the session its carry brought); the run's counters are those the step's mark recorded
when it was decided. No model and no tool is called. Each call is decided twice in that one
context, by the policy set the run was pinned to and by the candidate, so what differs is
the policy change alone; a pinned decision that does not match what the run recorded is
reported, since then the rebuilt context is not the one the run had.

Unlike a shadow re-run (`tiergate shadow`), the model's later answers are the recorded
ones: a candidate that denies step 3 is not shown what the model would have done next, and
the session after a flipped call is still the recorded run's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core import (
    MAX_RAW_OUTPUT_CHARS,
    PROPOSE_ACTIVITY,
    AgentBundle,
    Allowed,
    Denied,
    Flip,
    FlipKind,
    Gate,
    Held,
    InvalidProposal,
    ModelResponse,
    PolicyBundle,
    ProposeInput,
    RunCounts,
    RunSoFar,
    Session,
    StepMark,
    ToolCallInput,
    ToolCallProposal,
    ToolResult,
    Verdict,
    by_step,
    flip,
    parse_proposal,
)
from tiergate.core._carry import RunCarry
from tiergate.errors import PolicyError
from tiergate.forensics._candidate import Candidate, candidate_bundle
from tiergate.forensics._reader import RunView
from tiergate.policies import with_session
from tiergate.sensitive import pii_kinds

#: Codes only the gate gives; a step recorded with one was decided by the gate alone
#: (people, caps and kill switches rewrite the code), so re-deciding must match it.
_GATE_CODES = frozenset(
    {
        "allowed",
        "policy_forbid",
        "no_permit",
        "unknown_tool",
        "not_in_allowlist",
        "invalid_arguments",
        "policy_error",
        "output_blocked",
    }
)
#: Denials by people, which the run does not count against ``max_denials``.
_PEOPLE_CODES = frozenset({"approval_denied", "approval_expired"})


class StepFlip(BaseModel):
    """A flip at one step of one recorded run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow_id: str
    run_id: str
    step: int
    flip: Flip


class WhatIf(BaseModel):
    """What a candidate policy set would have changed over the runs read.

    Attributes:
        runs: Run segments read. ``decisions``: tool calls re-decided.
        flips: Each flipped decision, in run and step order.
        unreproduced: Steps where the pinned policy set, re-decided, did not reach the
            decision the run recorded (the what-if cannot be trusted for those runs).
    """

    model_config = ConfigDict(extra="forbid")

    runs: int = 0
    decisions: int = 0
    flips: list[StepFlip] = Field(default_factory=list)
    unreproduced: list[str] = Field(default_factory=list)

    def by_policy(self) -> dict[str, list[StepFlip]]:
        """The flips put down to each policy id (a flip with none is under ``(none)``)."""
        grouped: dict[str, list[StepFlip]] = {}
        for found in self.flips:
            for pid in found.flip.policy_ids or ["(none)"]:
                grouped.setdefault(pid, []).append(found)
        return dict(sorted(grouped.items()))

    def unaccepted(self, accepted: Iterable[str]) -> list[StepFlip]:
        """The flips no entry of ``accepted`` covers: ``POLICY_ID`` accepts every flip put
        down to that policy, ``POLICY_ID=KIND`` only flips of that kind (``allow_to_deny``,
        ``deny_to_allow``, ``tier_raised``, ``tier_lowered``)."""
        rules = {parse_acceptance(entry) for entry in accepted}
        return [
            found
            for found in self.flips
            if not any(
                pid == rule_id and kind in (None, found.flip.kind)
                for pid in found.flip.policy_ids
                for rule_id, kind in rules
            )
        ]


def parse_acceptance(entry: str) -> tuple[str, FlipKind | None]:
    """``POLICY_ID`` or ``POLICY_ID=KIND``; a kind that is not one is a PolicyError."""
    pid, _, kind = entry.strip().partition("=")
    if not kind:
        return pid, None
    try:
        return pid, FlipKind(kind)
    except ValueError:
        raise PolicyError(
            f"accepted flip {entry!r}: {kind!r} is not a kind of flip",
            fix=f"use POLICY_ID or POLICY_ID=KIND with KIND one of "
            f"{', '.join(k.value for k in FlipKind)}",
        ) from None


@dataclass
class _Step:
    """What one step of a segment recorded that a re-decision needs."""

    step: int
    proposal: ToolCallProposal | None = None
    invalid: bool = False
    mark: StepMark | None = None
    call: ToolCallInput | None = None
    result: ToolResult | None = None
    #: False when the run's summary shows the proposal never reached the gate (the run
    #: stopped first: low confidence, a drifted model); None when there is no summary.
    gated: bool | None = None


#: A candidate policy set for a pinned bundle (compiled against that bundle's schema).
CandidateFor = Callable[[AgentBundle], PolicyBundle]


class WhatIfReader:
    """Re-decides the recorded tool calls of run segments under ``candidate_for``."""

    def __init__(self, candidate_for: CandidateFor) -> None:
        self.candidate_for = candidate_for
        self._gates: dict[tuple[str, str], tuple[Gate, Gate]] = {}
        self.report = WhatIf()

    def read(self, view: RunView) -> None:
        """Adds one run segment's re-decided calls (and flips) to the report."""
        bundle = view.pinned_bundle()
        pinned, candidate = self._gates_for(bundle)
        carry = RunCarry.model_validate(view.carry) if isinstance(view.carry, dict) else None
        session = carry.session.model_copy(deep=True) if carry else Session()
        denials = carry.ledger.denials if carry else 0
        invalid = carry.ledger.invalid_proposals if carry else 0
        self.report.runs += 1
        for step in _steps(view, bundle.config.tools.max_parallel_calls):
            if step.proposal is not None and step.gated is not False:
                counts = _counts(step, denials, invalid)
                so_far = RunSoFar.of(session, counts)
                before = pinned.decide(step.proposal, step.step, so_far)
                after = candidate.decide(step.proposal, step.step, so_far)
                self.report.decisions += 1
                self._check(view, step, before)
                if (found := flip(before, after)) is not None:
                    self.report.flips.append(
                        StepFlip(
                            workflow_id=view.workflow_id,
                            run_id=view.run_id,
                            step=step.step,
                            flip=found,
                        )
                    )
            denials += _counted_denial(step)
            invalid += step.invalid
            if (call := _took_effect(step)) is not None and call.tool in bundle.tools:
                session.took_effect(bundle.tools[call.tool], call.arguments)

    def _gates_for(self, bundle: AgentBundle) -> tuple[Gate, Gate]:
        key = (bundle.config_hash, bundle.policy.version)
        if key not in self._gates:
            candidate = bundle.model_copy(update={"policy": self.candidate_for(bundle)})
            self._gates[key] = (
                Gate.of(bundle, detect=pii_kinds),
                Gate.of(candidate, detect=pii_kinds),
            )
        return self._gates[key]

    def _check(self, view: RunView, step: _Step, before: Allowed | Held | Denied) -> None:
        # A call that ran is recorded by its scheduled event (its allow); any other by its
        # latest mark. Only a decision the gate alone made can be held against the re-decision.
        if step.call is not None:
            recorded, code = Verdict.ALLOW, step.call.code
        elif step.mark is not None and step.mark.verdict is not None:
            recorded, code = step.mark.verdict, step.mark.code or ""
        else:
            return
        if code not in _GATE_CODES or recorded == before.verdict:
            return
        self.report.unreproduced.append(
            f"{view.workflow_id} step {step.step}: the run recorded {recorded} ({code}); "
            f"re-decided under its pinned policies: {before.verdict} ({before.code})"
        )


def candidate_policies(folder: Path, agents_dir: Path | None = None) -> CandidateFor:
    """The policy files of ``folder`` (and each run's own inline rules) as a candidate for
    each pinned bundle, validated against the schema that run was pinned with.

    A run pinned before decisions saw ``context.session`` has a schema without it, yet
    today's gate builds the session for a candidate that reads it: for such a run the
    schema gains the session of its pinned tools (`tiergate.policies.with_session`), whose
    specs then declared no session fields, so only the counts are there to read.
    """
    if not folder.is_dir():
        raise PolicyError(
            f"{folder}: no such folder of candidate policies",
            fix="pass --policies DIR, a folder of .cedar files",
        )
    candidate = Candidate(policies=folder)

    def candidate_for(bundle: AgentBundle) -> PolicyBundle:
        schema = with_session(bundle.policy.schema_text, bundle.tools.values())
        policy = bundle.policy.model_copy(update={"schema_text": schema})
        bundle = bundle.model_copy(update={"policy": policy})
        return candidate_bundle(bundle, candidate, agents_dir, {}, shadow=False).policy

    return candidate_for


def what_if(views: Iterable[RunView], candidate_for: CandidateFor) -> WhatIf:
    """The flips ``candidate_for``'s policy sets would make over these run segments."""
    reader = WhatIfReader(candidate_for)
    for view in views:
        reader.read(view)
    return reader.report


def _steps(view: RunView, max_calls: int) -> list[_Step]:
    steps: dict[int, _Step] = {}
    for asked in view.named(PROPOSE_ACTIVITY):
        if asked.result is None:
            continue  # the model call failed for good: the step proposed nothing
        first = ProposeInput.model_validate(asked.input).step
        response = ModelResponse.model_validate(asked.result)
        parsed = parse_proposal(
            response.raw,
            response.raw_size,
            MAX_RAW_OUTPUT_CHARS,
            response.raw_ref,
            max_calls=max_calls,
        )
        for number, proposed in by_step(first, parsed).items():
            step = steps.setdefault(number, _Step(number))
            step.proposal = proposed if isinstance(proposed, ToolCallProposal) else None
            step.invalid = isinstance(proposed, InvalidProposal)
    for number, mark in view.marks.items():
        steps.setdefault(number, _Step(number)).mark = mark
        if mark.kind == "invalid":
            steps[number].invalid = True
    for activity in view.tool_activities:
        call = ToolCallInput.model_validate(activity.input)
        step = steps.setdefault(call.step, _Step(call.step))
        step.call = call
        if activity.result is not None:
            step.result = ToolResult.model_validate(activity.result)
    if view.summary is not None:
        recorded = {record.step: record for record in view.summary.steps}
        for number, step in steps.items():
            # A call of an answer the run stopped part-way through was never a step.
            step.gated = number in recorded and recorded[number].decision is not None
    else:  # a segment without a summary: a step unmarked or marked undecided, with no call,
        # was never decided (yet)
        for step in steps.values():
            undecided = step.mark is None or step.mark.verdict is None
            if undecided and step.call is None:
                step.gated = False
    return [steps[n] for n in sorted(steps)]


def _counts(step: _Step, denials: int, invalid: int) -> RunCounts:
    """The counters the step's decision saw: as its mark recorded them; else (a run from
    before marks carried them) as its tool call's input did; else counted from the marks,
    with the seconds unknown (0)."""
    if step.mark is not None and step.mark.decided_with is not None:
        return step.mark.decided_with
    if step.call is not None:
        return RunCounts(
            denials=step.call.run_denials,
            invalid_proposals=step.call.run_invalid_proposals,
            seconds=step.call.run_seconds,
        )
    return RunCounts(denials=denials, invalid_proposals=invalid)


def _took_effect(step: _Step) -> ToolCallInput | None:
    """The step's call if it took effect (its tool answered ``ok``), as the run counts it."""
    ok = step.result is not None and step.result.ok
    return step.call if ok else None


def _counted_denial(step: _Step) -> int:
    mark = step.mark
    denied = mark is not None and mark.verdict == Verdict.DENY
    return int(denied and mark is not None and mark.code not in _PEOPLE_CODES)
