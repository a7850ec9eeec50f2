"""What the tool runner verifies before a call acts, from what the worker trusts.

A tool activity's input is a claim: anyone with access to the namespace can schedule a
`tool__<name>` activity with any input, from a workflow of their own. So the runner takes
nothing from the input that it cannot check against its own sources:

- the execution that scheduled the activity, as the *server* describes it (its type, its
  task queue, its first run id, its kill-switch memo), not as the input names it;
- the agent's bundle with the claimed config hash and policy version, from the worker's
  own loaded bundles, and the tool's spec from the worker's own registry;
- the arguments' canonical form and digest, and the gate's decision on them, re-derived
  (with the run's session as the server's history shows it, when the policies read it);
- for a held tier (3/4), the signed answers themselves: signatures by the worker's live
  approver registry, bound to exactly this execution, step and call, from enough distinct
  people each allowed by the approver policy to decide the call that runs;
- the kill switch: the worker's disabled tools, and the run's own pause and disabled tools.

`verify_tool_call` returns a `VerifiedCall` naming every check made, or raises
`UnverifiedToolCallError` naming the first that failed. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tiergate.core._agent import AgentBundle
from tiergate.core._answers import (
    ApprovalDecision,
    ApprovalRequest,
    RegistrySnapshot,
    person,
    proof_of,
    verified_key,
)
from tiergate.core._approvers import ApproverGate
from tiergate.core._decision import Denied
from tiergate.core._digest import call_digest, idempotency_key
from tiergate.core._gate import Detector, Gate
from tiergate.core._names import WORKFLOW_NAME
from tiergate.core._payloads import ToolCallInput
from tiergate.core._proposal import ToolCallProposal
from tiergate.core._session import NOTHING_YET, RunSoFar
from tiergate.core._tools import ToolSpec
from tiergate.errors import UnverifiedToolCallError


@dataclass(frozen=True)
class Execution:
    """The workflow execution that scheduled an activity, as the Temporal server reports it.

    Attributes:
        workflow_id / run_id: From the activity task (set by the server, not the input).
        first_run_id: The execution's first run id (kept across continue-as-new).
        workflow_type / task_queue: Asked of the server for that run.
        paused / disabled_tools: The run's kill switch, from its controls memo.
    """

    workflow_id: str
    run_id: str
    first_run_id: str
    workflow_type: str
    task_queue: str
    paused: bool = False
    disabled_tools: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Trusted:
    """What the worker itself holds for one call.

    Attributes:
        task_queue: The task queue tiergate's runs live on.
        bundle: The worker's bundle of the call's agent with the call's config hash and
            policy version; None when the worker knows no such bundle.
        spec: The tool's spec in the worker's registry; None when it serves no such tool.
        registry: The worker's live approver registry.
        disabled_tools: Tools an operator disabled for every run (the worker's controls).
        paused_agents: Agents an operator paused (the worker's controls).
        detect: The sensitive-data detector the gate uses.
    """

    task_queue: str
    bundle: AgentBundle | None
    spec: ToolSpec | None
    registry: RegistrySnapshot
    disabled_tools: frozenset[str]
    detect: Detector
    paused_agents: frozenset[str] = frozenset()


@dataclass(frozen=True)
class VerifiedCall:
    """A call the runner verified: the only thing a credential is minted for.

    Attributes:
        arguments: The canonical arguments, by the worker's spec.
        checks: Each check made, in order, as recorded in the tool's result.
        approvers: The people whose verified answers released a held call.
    """

    tool: str
    agent: str
    run_id: str
    step: int
    tier: int
    arguments: dict[str, object]
    bundle: AgentBundle
    spec: ToolSpec
    checks: tuple[str, ...]
    approvers: tuple[str, ...] = ()


def _refuse(check: str, reason: str) -> UnverifiedToolCallError:
    return UnverifiedToolCallError(check, reason)


def verify_tool_call(
    call: ToolCallInput, execution: Execution, trusted: Trusted, so_far: RunSoFar = NOTHING_YET
) -> VerifiedCall:
    """The verified form of ``call``, or UnverifiedToolCallError naming what failed.
    ``so_far``: the run's session as its history shows it (for policies that read it)."""
    checks = [_execution(call, execution, trusted.task_queue)]
    bundle, spec = _sources(call, trusted)
    checks.append(
        f"bundle: {bundle.config.name} {bundle.config_hash[:19]}, {call.policy_version[:19]}"
    )
    arguments = verified_arguments(call, spec)
    checks.append(f"arguments: digest {call.call_digest[:12]} re-derived")
    decision = Gate.of(bundle, detect=trusted.detect).decide(
        ToolCallProposal(tool=call.tool, arguments=arguments, reason=call.reason),
        call.step,
        so_far,
    )
    if isinstance(decision, Denied):
        raise _refuse("policy", f"the gate denies this call: {decision.code}: {decision.reason}")
    # A run may only raise a call's tier (a repeated write waits for a person), never lower it.
    if call.tier < decision.tier:
        raise _refuse("policy", f"the gate puts this call at tier {decision.tier}, not {call.tier}")
    tier = call.tier
    checks.append(f"policy: {decision.verdict.value} at tier {decision.tier}, run at tier {tier}")
    if bundle.config.name in trusted.paused_agents:
        raise _refuse("kill_switch", f"agent {bundle.config.name} is paused")
    _kill_switch(call.tool, execution, trusted.disabled_tools)
    checks.append("kill switch: agent and run not paused, tool enabled")
    approvers: tuple[str, ...] = ()
    if tier >= 3:
        required = 2 if tier >= 4 else 1
        approvers = _released(call, execution, trusted.registry, bundle, spec, tier, required)
        checks.append(
            f"approvals: {len(approvers)} of {required} verified ({', '.join(approvers)})"
        )
    return VerifiedCall(
        tool=call.tool,
        agent=bundle.config.name,
        run_id=execution.workflow_id,
        step=call.step,
        tier=tier,
        arguments=arguments,
        bundle=bundle,
        spec=spec,
        checks=tuple(checks),
        approvers=approvers,
    )


def _execution(call: ToolCallInput, execution: Execution, task_queue: str) -> str:
    if execution.workflow_type != WORKFLOW_NAME:
        raise _refuse(
            "execution",
            f"scheduled by a {execution.workflow_type!r} workflow; only {WORKFLOW_NAME} runs "
            "may call tools",
        )
    if execution.task_queue != task_queue:
        raise _refuse(
            "execution",
            f"scheduled by a run on task queue {execution.task_queue!r}, not tiergate's "
            f"{task_queue!r}",
        )
    if call.run_id != execution.workflow_id:
        raise _refuse(
            "execution", f"the input names run {call.run_id}; {execution.workflow_id} scheduled it"
        )
    expected_key = idempotency_key(execution.workflow_id, execution.first_run_id, call.step)
    if call.idempotency_key != expected_key:
        raise _refuse("execution", "the idempotency key is not this execution's for this step")
    return f"execution: {WORKFLOW_NAME} {execution.workflow_id} on {task_queue} (server)"


def _sources(call: ToolCallInput, trusted: Trusted) -> tuple[AgentBundle, ToolSpec]:
    bundle, spec = trusted.bundle, trusted.spec
    if bundle is None:
        raise _refuse(
            "bundle",
            f"this worker has loaded no config {call.config_hash[:19] or '(none)'} of agent "
            f"{call.agent!r} with policy version {call.policy_version[:19]}",
        )
    if spec is None:
        raise _refuse("tool", f"this worker serves no tool {call.tool!r}")
    if call.tool not in bundle.tools:
        raise _refuse("tool", f"agent {call.agent} does not allowlist {call.tool}")
    return bundle, spec


def verified_arguments(call: ToolCallInput, spec: ToolSpec) -> dict[str, object]:
    """The call's canonical arguments by ``spec``, or UnverifiedToolCallError when they fail
    the schema or their digest is not the one the call claims."""
    try:
        canonical = spec.canonical_arguments(call.arguments)
    except ValidationError as error:
        raise _refuse("arguments", f"{spec.name}: arguments fail the schema: {error}") from None
    if call_digest(spec.name, canonical) != call.call_digest:
        raise _refuse("arguments", f"{spec.name}: the digest is not the arguments' digest")
    return canonical


def _kill_switch(tool: str, execution: Execution, disabled: frozenset[str]) -> None:
    if execution.paused:
        raise _refuse("kill_switch", "the run is paused")
    if tool in disabled or tool in execution.disabled_tools:
        raise _refuse("kill_switch", f"{tool} is disabled")


def _released(
    call: ToolCallInput,
    execution: Execution,
    registry: RegistrySnapshot,
    bundle: AgentBundle,
    spec: ToolSpec,
    tier: int,
    required: int,
) -> tuple[str, ...]:
    people, problems = released_by(
        call.approvals,
        execution=(execution.workflow_id, execution.first_run_id),
        step=call.step,
        tool=call.tool,
        digest=call.call_digest,
        tier=tier,
        arguments=call.arguments,
        registry=registry,
        approvers=ApproverGate(bundle.approver_policy, bundle.tools),
        agent=bundle.config.name,
        digest_of=lambda edited: edit_digest(spec, edited),
    )
    if len(people) < required:
        why = "; ".join(problems) or "no answers"
        raise _refuse(
            "approvals",
            f"{len(people)} of {required} verified approvals of exactly this call ({why})",
        )
    return tuple(people)


def edit_digest(spec: ToolSpec | None, arguments: dict[str, Any]) -> str | None:
    """The digest an approver's edit gives the call by ``spec``; None when there is no
    spec or the edit fails its schema (it then matches no call)."""
    if spec is None:
        return None
    try:
        return call_digest(spec.name, spec.canonical_arguments(arguments))
    except ValidationError:
        return None


def released_by(
    answers: Iterable[ApprovalRequest],
    *,
    execution: tuple[str, str],
    step: int,
    tool: str,
    digest: str,
    tier: int,
    arguments: dict[str, object],
    registry: RegistrySnapshot,
    approvers: ApproverGate,
    agent: str,
    digest_of: Callable[[dict[str, object]], str | None],
) -> tuple[list[str], list[str]]:
    """The distinct people whose answers approve exactly this call of this execution, and
    why each other answer does not count. An answer counts when it approves, its
    signature verifies with its approver's active key in ``registry``, it is signed for
    ``execution`` (workflow id, first run id) and ``step``, the call it releases (its edit,
    if any) has ``digest``, and an approver policy lets its signer decide that call."""
    people: dict[str, str] = {}
    problems: list[str] = []
    for answer in answers:
        why = _why_not(answer, execution, step, digest, registry, digest_of)
        if why is None:
            entry = registry.approvers[answer.approver]
            allowed, _ = approvers.may_decide(
                entry.name, entry.roles, agent, tool, tier, dict(arguments)
            )
            why = None if allowed else "no approver policy lets them decide this call"
        if why is not None:
            problems.append(f"{answer.approver}: {why}")
        else:
            people.setdefault(person(answer.approver), answer.approver)
    return list(people.values()), problems


def _why_not(
    answer: ApprovalRequest,
    execution: tuple[str, str],
    step: int,
    digest: str,
    registry: RegistrySnapshot,
    digest_of: Callable[[dict[str, object]], str | None],
) -> str | None:
    entry = registry.approvers.get(answer.approver)
    if answer.decision != ApprovalDecision.APPROVE:
        return "it is not an approval"
    if entry is None or not entry.active:
        return "not an active approver in this worker's registry"
    if verified_key(answer, entry) is None:
        return f"the {proof_of(answer)} does not verify with any key of theirs"
    if (answer.run_id, answer.first_run_id) != execution:
        return f"signed for execution {answer.run_id}/{answer.first_run_id}"
    if answer.step != step:
        return f"signed for step {answer.step}"
    if answer.effective_digest(digest_of) != digest:
        return "signed for a different call"
    return None
