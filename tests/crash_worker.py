"""A worker process for the crash test: dies with os._exit right after a refund's effect.

Registered under the real activity name, it runs the real tool and then kills the process
before the completion reaches Temporal, the worst moment for a write. The marker file makes
it crash once; the restarted worker then runs the retry.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from temporalio import activity

from tests.worker_settings import spawned_worker_settings
from tiergate.cluster import connect
from tiergate.core import ToolCallInput, ToolResult, tool_activity_name
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.worker import build_activities, build_worker


async def main(address: str, task_queue: str, home: str, marker: str) -> None:
    settings = spawned_worker_settings(address, home)
    client = await connect(settings)
    refund_name = tool_activity_name("payments.issue_refund")
    every = build_activities(client, settings, SUPPORT_TOOLKIT, task_queue)
    real_refund = next(
        a for a in every if getattr(a, "__temporal_activity_definition").name == refund_name
    )

    @activity.defn(name=refund_name)
    def crashing_refund(call: ToolCallInput) -> ToolResult:
        result: ToolResult = real_refund(call)
        if not Path(marker).exists():
            Path(marker).write_text(str(activity.info().attempt))
            os._exit(9)  # the effect is committed; its completion is never reported
        return result

    activities = [
        a for a in every if getattr(a, "__temporal_activity_definition").name != refund_name
    ]
    print("worker ready", flush=True)
    await build_worker(
        client,
        settings,
        SUPPORT_TOOLKIT,
        task_queue=task_queue,
        activities=[*activities, crashing_refund],
    ).run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
