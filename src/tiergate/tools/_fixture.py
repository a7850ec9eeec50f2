"""A toolset's eval fixture: how a case's initial state gets into its backend, and out.

An eval suite runs each case as a real governed run against the toolset's own functions;
tiergate does not know the team's backend, so the toolset says how to seed it and how to
read it back:

    def seed(run_id: str, state: dict) -> None: ...      # before the case's run starts
    def read(run_id: str) -> dict: ...                   # after it ends, for outcome checks
    acme.fixture(setup=seed, final_state=read)

``run_id`` is the case run's workflow id, which every `ToolCall` of that run carries as
``call.run_id``: a backend that keys its state by it keeps cases running side by side apart.
Either function may be async. Every case of a suite gets ``setup``, with ``{}`` when it
names no state for the fixture, so no case acts on the worker's own backend.

Two optional, pure hooks let a suite be refused before anything runs and let proposals be
checked against the case's data:

    def check(state: dict, expected: dict) -> None: ...  # raise ValueError: impossible case
    def known_ids(state: dict) -> dict[str, set[str]]: ...  # argument name -> ids that exist

and ``teardown(run_id)``, called once the case is judged, frees what ``setup`` made.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CaseFixture:
    """``setup(run_id, state)`` before a case's run, ``final_state(run_id)`` after it;
    ``check(state, expected_final_state)`` and ``known_ids(state)`` when the suite loads."""

    setup: Callable[[str, dict[str, Any]], Any]
    final_state: Callable[[str], Any] | None = None
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None
    known_ids: Callable[[dict[str, Any]], Mapping[str, Collection[str]]] | None = None
    teardown: Callable[[str], Any] | None = None

    async def seed(self, run_id: str, state: dict[str, Any]) -> None:
        done = self.setup(run_id, state)
        if inspect.isawaitable(done):
            await done

    async def release(self, run_id: str) -> None:
        if self.teardown is not None:
            done = self.teardown(run_id)
            if inspect.isawaitable(done):
                await done

    async def read(self, run_id: str) -> dict[str, Any]:
        """The backend's state after the run; {} without a reader."""
        if self.final_state is None:
            return {}
        state = self.final_state(run_id)
        if inspect.isawaitable(state):
            state = await state
        if not isinstance(state, dict):
            raise TypeError(f"a fixture's final_state returned {type(state).__name__}, not a dict")
        return state
