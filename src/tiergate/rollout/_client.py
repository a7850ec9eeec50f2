"""Starting runs through a rollout, and judging the candidate against the primary.

`start_run` is a convenience for starting runs (`tiergate run start` uses it): it refuses a
paused agent or an oversized input before Temporal is asked. Routing is not decided here:
each run's load activity applies the agent's rollout, records the version and the reason in
the history and tags the run in visibility (`TiergateAgentVersion`, `TiergateVariant`), so
each version's figures can be read back from the runs themselves, whoever started them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from tiergate.config import agent_versions, find_agent, load_agent_file
from tiergate.control import Controls, Criteria, Rollout, RolloutStore
from tiergate.core import (
    LARGE_INPUT_FIX,
    WORKFLOW_NAME,
    RunInput,
    RunSummary,
    oversized_run_input,
)
from tiergate.errors import PayloadTooLargeError, RolloutError
from tiergate.forensics import fetch_history
from tiergate.forensics._candidate import Candidate
from tiergate.forensics._shadow import shadow_runs
from tiergate.report import collect, compute
from tiergate.settings import Settings
from tiergate.worker import Toolkit
from tiergate.workflows import AGENT_ATTRIBUTE, AGENT_VERSION_ATTRIBUTE


def store_for(settings: Settings) -> RolloutStore:
    return RolloutStore(settings.database())


def resolve_version(settings: Settings, agent: str, version: str | None = None) -> str:
    """The effective version of ``agent`` (``version`` checked to exist).

    Without a version, the agent must have exactly one: with several side by side, which
    one serves is the rollout's decision, never the file order's.
    """
    if version is None:
        versions = agent_versions(agent, settings.agents_dir)
        if len(versions) > 1:
            raise RolloutError(
                f"agent {agent} has several versions ({', '.join(versions)}) and no rollout "
                "says which is the primary",
                fix=f"tiergate rollout start {agent} --primary V --candidate W",
            )
    return load_agent_file(find_agent(agent, settings.agents_dir, version)).effective_version


async def start_run(
    client: Client,
    settings: Settings,
    request: RunInput,
    workflow_id: str,
    task_queue: str | None = None,
) -> WorkflowHandle[Any, RunSummary]:
    """Starts a run of ``request.agent``; its load activity routes it through the agent's
    rollout, as it does a run started by any other client.

    Refused here early, as a convenience, when the input is too large for Temporal, the
    agent is paused, or it has several versions and no rollout (the run's load activity
    would refuse the last two too, in its history).
    """
    # Refused here, before Temporal's own 2 MB payload limit answers with a gRPC error.
    if too_large := oversized_run_input(request.model_dump()):
        raise PayloadTooLargeError(too_large, fix=LARGE_INPUT_FIX)
    if switch := Controls(settings.database()).read().paused_agents.get(request.agent):
        raise RolloutError(
            f"agent {request.agent} is paused (by {switch.by} at {switch.at[:19]}: "
            f"{switch.reason or 'no reason given'}); new runs are refused",
            fix=f"tiergate agent resume {request.agent}",
        )
    if request.agent_version is not None:
        resolve_version(settings, request.agent, request.agent_version)
    elif store_for(settings).get(request.agent) is None:
        resolve_version(settings, request.agent)  # several versions need a rollout
    return await client.start_workflow(
        WORKFLOW_NAME,
        request.model_dump(),
        id=workflow_id,
        task_queue=task_queue or settings.task_queue,
        result_type=RunSummary,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(AGENT_ATTRIBUTE, request.agent)]
        ),
    )


class VersionFigures(BaseModel):
    version: str
    runs: int = 0
    finished: int = 0
    success_rate: float | None = None
    cost_per_completed_task: float | None = None
    violations_per_run: float | None = None
    escalation_rate: float | None = None
    #: Per log-only policy, the decisions it would have changed in this version's runs.
    log_only_flips: dict[str, int] = Field(default_factory=dict)


class Verdict(BaseModel):
    name: str
    ok: bool
    detail: str


class ShadowStats(BaseModel):
    runs: int = 0
    same_outcome: int = 0
    runs_with_changed_decisions: int = 0
    new_denials: int = 0
    cost_delta_usd: float = 0.0
    simulated_writes: int = 0


class Status(BaseModel):
    rollout: Rollout
    primary: VersionFigures
    candidate: VersionFigures | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    ready: bool = False
    shadow: ShadowStats | None = None


async def figures(client: Client, agent: str, version: str, since: datetime) -> VersionFigures:
    """A version's figures from its runs in the window (visibility and histories)."""
    facts = await collect(
        client, since, agent, extra=f'{AGENT_VERSION_ATTRIBUTE.name} = "{version}"'
    )
    report = compute(facts, since, datetime.now(UTC), agent)
    finished = report.finished
    violations = sum(report.policy_denials.values())
    escalated = report.outcomes.get("escalated", 0)
    return VersionFigures(
        version=version,
        runs=report.runs,
        finished=finished,
        success_rate=report.success_rate,
        cost_per_completed_task=report.cost_per_completed_task.mean,
        violations_per_run=violations / finished if finished else None,
        escalation_rate=escalated / finished if finished else None,
        log_only_flips=report.log_only_flips,
    )


def judge(criteria: Criteria, primary: VersionFigures, candidate: VersionFigures) -> list[Verdict]:
    """Each promotion criterion, candidate against primary (pure)."""
    verdicts = [
        Verdict(
            name="min_runs",
            ok=candidate.finished >= criteria.min_runs,
            detail=f"{candidate.finished} finished candidate runs (need {criteria.min_runs})",
        )
    ]

    def compare(name: str, c: float | None, p: float | None, ok: bool, detail: str) -> None:
        if c is None or p is None:
            verdicts.append(Verdict(name=name, ok=False, detail="not enough runs to compare"))
        else:
            verdicts.append(Verdict(name=name, ok=ok, detail=detail))

    c, p = candidate, primary
    if c.success_rate is not None and p.success_rate is not None:
        compare(
            "success_rate",
            c.success_rate,
            p.success_rate,
            c.success_rate >= p.success_rate - criteria.success_rate_drop,
            f"{c.success_rate:.3f} vs {p.success_rate:.3f} (may drop {criteria.success_rate_drop})",
        )
    else:
        compare("success_rate", None, None, False, "")
    if c.cost_per_completed_task is not None and p.cost_per_completed_task is not None:
        limit = p.cost_per_completed_task * (1 + criteria.cost_increase)
        compare(
            "cost_per_task",
            c.cost_per_completed_task,
            p.cost_per_completed_task,
            c.cost_per_completed_task <= limit,
            f"${c.cost_per_completed_task:.5f} vs ${p.cost_per_completed_task:.5f} "
            f"(limit ${limit:.5f})",
        )
    else:
        compare("cost_per_task", None, None, False, "")
    for name, cv, pv, slack in (
        (
            "policy_violations",
            c.violations_per_run,
            p.violations_per_run,
            criteria.violations_increase,
        ),
        ("escalation_rate", c.escalation_rate, p.escalation_rate, criteria.escalation_increase),
    ):
        if cv is not None and pv is not None:
            compare(name, cv, pv, cv <= pv + slack, f"{cv:.3f} vs {pv:.3f} (may rise {slack})")
        else:
            compare(name, None, None, False, "")
    return verdicts


async def run_shadows(
    client: Client,
    settings: Settings,
    rollout: Rollout,
    since: datetime,
    toolkit: Toolkit,
    limit: int = 20,
) -> ShadowStats:
    """Shadows the primary's finished runs not shadowed yet under the candidate version."""
    if rollout.candidate is None:
        raise RolloutError(f"agent {rollout.agent} has no candidate to shadow")
    query = (
        f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Completed" AND '
        f'{AGENT_ATTRIBUTE.name} = "{rollout.agent}" AND '
        f'{AGENT_VERSION_ATTRIBUTE.name} = "{rollout.primary}" AND '
        f'StartTime >= "{since.isoformat()}"'
    )
    ids = [wf.id async for wf in client.list_workflows(query, limit=limit)]
    histories = [await fetch_history(client, i) for i in ids]
    candidate = Candidate(agent_version=f"{rollout.agent}@{rollout.candidate}")
    diffs = await shadow_runs(client, settings, histories, candidate, toolkit) if histories else []
    return ShadowStats(
        runs=len(diffs),
        same_outcome=sum(d.same_outcome for d in diffs),
        runs_with_changed_decisions=sum(1 for d in diffs if d.changed_decisions),
        new_denials=sum(len(d.new_denials) for d in diffs),
        cost_delta_usd=round(sum(d.cost_delta_usd for d in diffs), 8),
        simulated_writes=sum(len(d.simulated_writes) for d in diffs),
    )


async def status(
    client: Client,
    settings: Settings,
    agent: str,
    since: datetime,
    toolkit: Toolkit,
    shadow_limit: int = 20,
) -> Status:
    """Where ``agent``'s rollout stands; in shadow mode this shadows new primary runs, with
    ``toolkit``'s tools and models."""
    rollout = store_for(settings).get(agent)
    if rollout is None:
        raise RolloutError(
            f"agent {agent} has no rollout", fix=f"tiergate rollout start {agent} --candidate V"
        )
    primary = await figures(client, agent, rollout.primary, since)
    result = Status(rollout=rollout, primary=primary)
    if rollout.candidate is None:
        return result
    if rollout.mode == "shadow":
        result.shadow = await run_shadows(client, settings, rollout, since, toolkit, shadow_limit)
        return result
    result.candidate = await figures(client, agent, rollout.candidate, since)
    result.verdicts = judge(rollout.criteria, primary, result.candidate)
    result.ready = all(v.ok for v in result.verdicts)
    return result
