"""Where a run's growing conversation is stored: tiergate's content store on S3 against
Temporal's own External Storage (`temporalio.converter.ExternalStorage` with
`temporalio.contrib.aws.s3driver.S3StorageDriver`), in one run.

The driver is Temporal's; the S3 calls under it go through boto3 (the driver's documented
`S3StorageDriverClient` extension point, calls run in threads), the same library tiergate's
store uses, so the two differ in what they store, not in their HTTP client. (The SDK's own
aioboto3 client pins botocore versions that boto3 does not resolve with on a fresh venv.)

One dev server and one local S3-compatible server (moto's `moto_server`, the stand-in for
S3). Each step of a run reads the conversation so far and adds one entry of ``--entry``
bytes (a tool result, a model turn), over ``--steps`` steps:

- **tiergate chain on S3**: each entry is one object, named by its hash; the activity
  reads only what it has not seen (`Transcript`) and the history carries the head's hash;
- **External Storage, threshold 0**: the whole transcript goes to the activity each step
  and every payload is moved to S3 by the SDK, a reference left in the history;
- **External Storage, default threshold** (256 KiB): payloads below it stay in the history;
- **inline**: no external storage at all (the history holds everything).

Reported per run: bytes stored in S3, bytes of history (the events' serialized size), and
the wall time per step; ratios against inline, measured in interleaved rounds.

    python bench/content_storage.py [--runs 4] [--steps 40] [--entry 4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import hashlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from _common import machine, save
from _transcript_workflows import ChainTranscriptWorkflow, InlineTranscriptWorkflow
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.aws.s3driver import S3StorageDriver, S3StorageDriverClient
from temporalio.converter import DataConverter, ExternalStorage
from temporalio.worker import Worker

from tiergate.activities import S3ContentStore, Transcript
from tiergate.cluster import start_dev_server
from tiergate.core import TranscriptEntry
from tiergate.workflows import workflow_runner

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo's tests package
from tests.s3 import S3Server

KINDS = ("chain_s3", "external_all", "external_default", "inline")


def entry_text(step: int, size: int) -> str:
    """``size`` characters no other run or step has (incompressible, so no store gains by
    deduplicating or packing them): what a real tool result or model turn is like."""
    seed = f"{activity.info().workflow_id}/{step}".encode()
    return base64.b64encode(hashlib.shake_256(seed).digest(size))[:size].decode()


def inline_activity(size: int) -> Callable[..., Any]:
    @activity.defn(name="grow_inline")
    def grow_inline(step: int, transcript: list[str]) -> str:
        assert len(transcript) == step  # the whole conversation came in
        return entry_text(step, size)

    return grow_inline


def chain_activity(store: S3ContentStore, size: int) -> Callable[..., Any]:
    transcript = Transcript(store)

    @activity.defn(name="grow_chain")
    def grow_chain(step: int, head: str | None) -> str | None:
        seen = transcript.read(head)
        assert len(seen) == step
        return transcript.append(
            head, [TranscriptEntry(role="tool", content=entry_text(step, size))]
        )

    return grow_chain


class Boto3DriverClient(S3StorageDriverClient):
    """Temporal's S3 driver's client interface over boto3 (each call in a thread)."""

    def __init__(self, s3: Any) -> None:
        self.s3 = s3

    async def put_object(self, *, bucket: str, key: str, data: bytes) -> None:
        await asyncio.to_thread(self.s3.put_object, Bucket=bucket, Key=key, Body=data)

    async def object_exists(self, *, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.s3.head_object, Bucket=bucket, Key=key)
        except ClientError:
            return False
        return True

    async def get_object(self, *, bucket: str, key: str) -> bytes:
        answer = await asyncio.to_thread(self.s3.get_object, Bucket=bucket, Key=key)
        body: bytes = answer["Body"].read()
        return body


@asynccontextmanager
async def external_client(
    address: str, server: S3Server, bucket: str, threshold: int | None
) -> AsyncIterator[Client]:
    """A client whose data converter moves payloads at or past ``threshold`` to S3."""
    driver = S3StorageDriver(client=Boto3DriverClient(server.client()), bucket=bucket)
    storage = (
        ExternalStorage(drivers=[driver])
        if threshold is None
        else ExternalStorage(drivers=[driver], payload_size_threshold=threshold)
    )
    converter = dataclasses.replace(DataConverter.default, external_storage=storage)
    yield await Client.connect(address, data_converter=converter)


async def one_round(
    kind: str, client: Client, queue: str, runs: int, steps: int
) -> tuple[float, list[str]]:
    """Seconds per step over ``runs`` concurrent runs, and their workflow ids."""
    workflow = ChainTranscriptWorkflow.run if kind == "chain_s3" else InlineTranscriptWorkflow.run
    ids = [f"{kind}-{uuid.uuid4().hex[:10]}" for _ in range(runs)]
    began = time.perf_counter()
    handles = [
        await client.start_workflow(workflow, steps, id=workflow_id, task_queue=queue)
        for workflow_id in ids
    ]
    for handle in handles:
        await handle.result()
    return (time.perf_counter() - began) / steps, ids


async def history_bytes(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(event.ByteSize() for event in history.events)


async def main(runs: int, steps: int, entry: int, rounds: int) -> dict[str, Any]:
    s3 = S3Server()
    os.environ.update(s3.env)  # boto3 (tiergate's store) reads the endpoint and keys here
    server = await start_dev_server(None, ui=False)
    address = server.env.client.service_client.config.target_host
    buckets = {kind: s3.bucket() for kind in KINDS}
    queue = f"bench-content-{uuid.uuid4().hex[:6]}"
    executor = ThreadPoolExecutor(max_workers=16)
    timings: dict[str, list[float]] = {kind: [] for kind in KINDS}
    ids: dict[str, list[str]] = {kind: [] for kind in KINDS}
    try:
        async with AsyncExitStack() as stack:
            clients = {
                "chain_s3": server.env.client,
                "inline": server.env.client,
                "external_all": await stack.enter_async_context(
                    external_client(address, s3, buckets["external_all"], 0)
                ),
                "external_default": await stack.enter_async_context(
                    external_client(address, s3, buckets["external_default"], None)
                ),
            }
            store = S3ContentStore(f"s3://{buckets['chain_s3']}/content")
            for kind in KINDS:
                grow = (
                    chain_activity(store, entry) if kind == "chain_s3" else inline_activity(entry)
                )
                await stack.enter_async_context(
                    Worker(
                        clients[kind],
                        task_queue=f"{queue}-{kind}",
                        workflows=[ChainTranscriptWorkflow, InlineTranscriptWorkflow],
                        activities=[grow],
                        activity_executor=executor,
                        workflow_runner=workflow_runner(),
                    )
                )
            for kind in KINDS:  # warm-up, not counted
                await one_round(kind, clients[kind], f"{queue}-{kind}", 1, 3)
            before = {kind: sum(s3.objects(buckets[kind]).values()) for kind in KINDS}
            for number in range(rounds):
                order = KINDS[number % len(KINDS) :] + KINDS[: number % len(KINDS)]
                for kind in order:
                    seconds, started = await one_round(
                        kind, clients[kind], f"{queue}-{kind}", runs, steps
                    )
                    timings[kind].append(seconds)
                    ids[kind] += started
            stored = {
                kind: (sum(s3.objects(buckets[kind]).values()) - before[kind]) / len(ids[kind])
                for kind in KINDS
            }
            history = {
                kind: statistics.mean([await history_bytes(clients[kind], i) for i in ids[kind]])
                for kind in KINDS
            }
    finally:
        executor.shutdown()
        await server.env.shutdown()
        s3.stop()

    per_step = {kind: round(statistics.median(timings[kind]) * 1000, 2) for kind in KINDS}
    conversation = steps * entry
    return {
        "benchmark": "content_storage",
        "command": f"python bench/content_storage.py --runs {runs} --steps {steps} "
        f"--entry {entry} --rounds {rounds}",
        "machine": machine(),
        "workload": f"{runs} concurrent runs per round, {steps} steps each adding a "
        f"{entry}-byte entry (a {conversation // 1024} KiB conversation), {rounds} rounds",
        "s3_server": "moto_server (moto[s3] with flask), local",
        "ms_per_step": per_step,
        "s3_bytes_per_run": {kind: round(value) for kind, value in stored.items()},
        "history_bytes_per_run": {kind: round(value) for kind, value in history.items()},
        "conversation_bytes": conversation,
        "ratio_ms_per_step_over_inline": {
            kind: round(per_step[kind] / per_step["inline"], 3) for kind in KINDS
        },
        "ratio_s3_bytes_external_all_over_chain": round(
            stored["external_all"] / stored["chain_s3"], 2
        ),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--entry", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/content_storage.json"))
    args = parser.parse_args()
    save(asyncio.run(main(args.runs, args.steps, args.entry, args.rounds)), args.out)
