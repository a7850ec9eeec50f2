"""A real tiergate worker process that can kill -9 itself at chosen moments.

Usage: ``python -m tests.chaos._worker ADDRESS TASK_QUEUE HOME FAULTS_DIR PROBABILITY``.

The worker is `build_worker` with the real activities; the model and tool activities are
wrapped with three fault points:

- ``model``: during a model call (the answer is computed, never reported);
- ``tool``: during a tool call, before its effect;
- ``effect``: after a tool's effect is committed, before its completion is reported.

A point fires only while the drill has left a token for it in ``FAULTS_DIR/<point>/``, and
then only with ``PROBABILITY`` per hit, so crashes land at random moments of random runs.
Claiming a token is a rename, atomic across the worker processes sharing the directory.
Firing is ``SIGKILL`` to itself: no finally blocks, no flushed buffers, like ``kill -9``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client

from tests.worker_settings import spawned_worker_settings
from tiergate.cluster import connect
from tiergate.core import PROPOSE_ACTIVITY, tool_activity_name
from tiergate.demo import SUPPORT_TOOLKIT
from tiergate.settings import Settings
from tiergate.worker import build_activities, build_worker

POINTS = ("model", "tool", "effect")


class FaultPoints:
    def __init__(self, folder: Path, probability: float) -> None:
        self.folder = folder
        self.probability = probability
        self.rng = random.Random()

    def maybe_crash(self, point: str) -> None:
        if self.rng.random() >= self.probability:
            return
        for token in sorted((self.folder / point).glob("*")):
            fired = self.folder / "fired" / f"{point}-{token.name}"
            try:
                token.rename(fired)
            except OSError:
                continue  # another worker took it
            fired.write_text(f"pid {os.getpid()}\n")
            os.kill(os.getpid(), signal.SIGKILL)


def with_faults(fn: Callable[..., Any], faults: FaultPoints, before: str, after: str) -> Any:
    name = getattr(fn, "__temporal_activity_definition").name

    # functools.wraps keeps the argument's name and type: Temporal decodes payloads by it.
    @activity.defn(name=name)
    @functools.wraps(fn, updated=())  # not __dict__: it holds fn's activity definition
    def wrapped(arg: Any) -> Any:
        if before:
            faults.maybe_crash(before)
        result = fn(arg)
        if after:
            faults.maybe_crash(after)
        return result

    return wrapped


def fault_activities(
    client: Client, settings: Settings, task_queue: str, faults: FaultPoints
) -> list[Any]:
    wrapped = []
    for fn in build_activities(client, settings, SUPPORT_TOOLKIT, task_queue):
        name = getattr(fn, "__temporal_activity_definition").name
        if name == PROPOSE_ACTIVITY:
            wrapped.append(with_faults(fn, faults, "", "model"))
        elif name.startswith(tool_activity_name("")):
            wrapped.append(with_faults(fn, faults, "tool", "effect"))
        else:
            wrapped.append(fn)
    return wrapped


async def main(address: str, task_queue: str, home: str, folder: str, probability: str) -> None:
    settings = spawned_worker_settings(address, home)
    faults = FaultPoints(Path(folder), float(probability))
    client = await connect(settings)
    worker = build_worker(
        client,
        settings,
        SUPPORT_TOOLKIT,
        task_queue=task_queue,
        activities=fault_activities(client, settings, task_queue, faults),
    )
    print("worker ready", flush=True)
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:6]))
