"""What a stalled drain looks like from the outside, so a stall is a finding with evidence.

For a sample of the runs still open: the last event in their history, whether their approval
update was accepted, and the state and attempt of their pending workflow task; for the task
queue: the pollers the server last saw; for the worker: a py-spy dump of its threads when the
machine allows tracing it.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

_UPDATE_ACCEPTED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED


async def run_states(client: Client, run_ids: list[str]) -> dict[str, int]:
    """Counts of (last event, approval accepted, pending workflow task state/attempt)."""
    states: Counter[str] = Counter()
    for run_id in run_ids:
        handle = client.get_workflow_handle(run_id)
        description = (await handle.describe()).raw_description
        history = await handle.fetch_history()
        last = EventType.Name(history.events[-1].event_type).removeprefix("EVENT_TYPE_")
        approved = any(e.event_type == _UPDATE_ACCEPTED for e in history.events)
        task = "no workflow task"
        if description.HasField("pending_workflow_task"):
            pending = description.pending_workflow_task
            task = f"workflow task {pending.state} attempt {pending.attempt}"
        states[f"last={last} approval_accepted={approved} {task}"] += 1
    return dict(states)


async def pollers(client: Client, queue: str) -> list[dict[str, Any]]:
    """The workflow-task pollers the server last saw on ``queue``."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
    )
    return [
        {"identity": p.identity, "last_access": p.last_access_time.ToJsonString()}
        for p in response.pollers
    ]


def thread_dump(pid: int) -> str:
    """py-spy's dump of the worker's threads, or why there is none."""
    try:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(pid)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no dump: {error}"
    return done.stdout if done.returncode == 0 else f"no dump: {done.stderr.strip()}"


async def stall_report(
    client: Client, queue: str, open_ids: list[str], worker_pid: int, sample: int = 20
) -> dict[str, Any]:
    return {
        "open_runs": len(open_ids),
        "sample_states": await run_states(client, open_ids[:sample]),
        "pollers": await pollers(client, queue),
        "worker_threads": thread_dump(worker_pid),
    }
