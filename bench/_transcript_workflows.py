"""The two ways of keeping a growing conversation that bench/content_storage.py compares.

`InlineTranscriptWorkflow` passes the whole transcript to every step's activity, as a plain
Temporal agent does: with Temporal's External Storage on, the SDK moves each payload past
its threshold to S3 and leaves a reference in the history. `ChainTranscriptWorkflow` is
tiergate's way: each entry is stored once, content-addressed, and the history carries only
the hash of the conversation's head (`tiergate.activities.Transcript`).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="InlineTranscriptWorkflow")
class InlineTranscriptWorkflow:
    @workflow.run
    async def run(self, steps: int) -> int:
        transcript: list[str] = []
        for step in range(steps):
            entry: str = await workflow.execute_activity(
                "grow_inline", args=[step, transcript], start_to_close_timeout=_TIMEOUT
            )
            transcript.append(entry)
        return len(transcript)


@workflow.defn(name="ChainTranscriptWorkflow")
class ChainTranscriptWorkflow:
    @workflow.run
    async def run(self, steps: int) -> str | None:
        head: str | None = None
        for step in range(steps):
            head = await workflow.execute_activity(
                "grow_chain", args=[step, head], start_to_close_timeout=_TIMEOUT
            )
        return head
