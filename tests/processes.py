"""Running one function in several processes at once (spawned: each a fresh interpreter,
as separate workers are), for tests of concurrent writers."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from multiprocessing.queues import Queue
from typing import Any

SPAWN = multiprocessing.get_context("spawn")


def new_queue() -> Queue[Any]:
    """A queue the spawned processes can report on."""
    return SPAWN.Queue()


def in_processes(target: Callable[..., None], argument_sets: Sequence[tuple[Any, ...]]) -> None:
    """``target(*arguments)`` in a process per argument set, all started before any is
    waited for; fails unless every one exits cleanly within two minutes."""
    processes = [SPAWN.Process(target=target, args=arguments) for arguments in argument_sets]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0, f"{target.__name__} exited with {process.exitcode}"
