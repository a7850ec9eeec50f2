"""Reading runs for the report: Temporal visibility for the list, each closed run's result.

No tiergate database is involved: the runs themselves are the record. Visibility narrows
the window and the agent (`TiergateAgent`), the result of each closed run is its
`RunSummary`, and a running run's memo holds its pending approval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.service import RPCError

from tiergate.core import PENDING_MEMO, WORKFLOW_NAME, PendingAction, RunSummary
from tiergate.report._figures import RunFacts
from tiergate.workflows import AGENT_ATTRIBUTE, SHADOW_ATTRIBUTE

#: How many run results are fetched at once.
CONCURRENCY = 16


def visibility_query(
    since: datetime, agent: str | None, ids: list[str] | None = None, extra: str | None = None
) -> str:
    """The list filter: tiergate runs started since ``since``, of ``agent`` if given."""
    clauses = [
        f'WorkflowType = "{WORKFLOW_NAME}"',
        f'StartTime >= "{since.isoformat()}"',
        f"{SHADOW_ATTRIBUTE.name} IS NULL",  # shadow re-runs are not production traffic
    ]
    if agent:
        clauses.append(f'{AGENT_ATTRIBUTE.name} = "{agent}"')
    if ids:
        clauses.append("WorkflowId IN (" + ", ".join(f'"{i}"' for i in ids) + ")")
    if extra:
        clauses.append(f"({extra})")
    return " AND ".join(clauses)


async def list_runs(
    client: Client,
    since: datetime,
    agent: str | None,
    ids: list[str] | None,
    limit: int,
    extra: str | None = None,
) -> list[WorkflowExecution]:
    query = visibility_query(since, agent, ids, extra)
    return [wf async for wf in client.list_workflows(query, limit=limit)]


async def read_run(client: Client, wf: WorkflowExecution) -> RunFacts:
    """One run's facts: its summary if it closed with one, its pending action if it waits."""
    agent = wf.typed_search_attributes.get(AGENT_ATTRIBUTE) or ""
    status = wf.status or WorkflowExecutionStatus.RUNNING
    facts = RunFacts(
        workflow_id=wf.id,
        agent=agent,
        state="running" if status == WorkflowExecutionStatus.RUNNING else "finished",
        status=status.name.lower(),
        started_at=wf.start_time,
        closed_at=wf.close_time,
    )
    if facts.state == "running":
        try:
            value = (await wf.memo()).get(PENDING_MEMO)
        except KeyError as error:  # encrypted with keys this reader lacks, as below
            facts.unreadable = f"memo not readable here: {error}"
            return facts
        if value:
            facts.pending = PendingAction.model_validate(value)
        return facts
    handle = client.get_workflow_handle(wf.id, run_id=wf.run_id, result_type=RunSummary)
    try:
        facts.summary = await handle.result(follow_runs=False)
        facts.agent = facts.agent or facts.summary.agent
    except WorkflowFailureError as error:
        facts.failure = str(error.cause) if error.cause else str(error)
    except RPCError as error:  # the history was deleted by retention between list and read
        facts.failure = f"history unavailable: {error}"
    except KeyError as error:
        # The converter knows no such encoding: the payloads are encrypted with keys this
        # reader lacks (TIERGATE_CODEC_KEYS). Counted apart, never as a failed run.
        facts.unreadable = f"result not readable here: {error}"
    return facts


async def collect(
    client: Client,
    since: datetime,
    agent: str | None = None,
    *,
    ids: list[str] | None = None,
    extra: str | None = None,
    limit: int = 10_000,
    on_total: Callable[[int], None] | None = None,
    on_read: Callable[[], None] | None = None,
) -> list[RunFacts]:
    """Every run in the window, read concurrently; the callbacks drive a progress bar."""
    runs = await list_runs(client, since, agent, ids, limit, extra)
    if on_total:
        on_total(len(runs))
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(wf: WorkflowExecution) -> RunFacts:
        async with gate:
            facts = await read_run(client, wf)
        if on_read:
            on_read()
        return facts

    return list(await asyncio.gather(*(one(wf) for wf in runs)))
