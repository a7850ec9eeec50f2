"""The replay benchmark's baseline workflow: ten activities in a row, nothing else.

In its own module so the workflow sandbox can re-import it, as it does tiergate's: the
baseline pays the same sandbox cost on replay.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench__step")
def bare_step(n: int) -> int:
    return n + 1


@workflow.defn(name="BareTenSteps")
class BareTenSteps:
    @workflow.run
    async def run(self) -> int:
        n = 0
        for _ in range(10):
            n = await workflow.execute_activity(
                bare_step, n, start_to_close_timeout=timedelta(seconds=30)
            )
        return n
