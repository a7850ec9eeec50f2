"""What a run starts from, checked before anything runs: its input and, for a later
segment of a long run, the carry. A bad one fails the run, never retried, its input kept
in the history."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from tiergate.core import RunCarry, RunInput, read_run_input
    from tiergate.errors import RunInputError


def carried_from_here(carry: RunCarry) -> None:
    """A carry is taken only from the run this one continues: Temporal sets
    ``continued_run_id`` on continue-as-new alone, so a client starting the workflow with a
    carry of its own (say, a bundle with permissive policies) fails here, before anything
    runs. It does not prove the previous run was ours: a namespace client's own workflow can
    continue as new into this one. Only the tool runner, re-deriving the allow where
    the effect happens, can close that; today it checks the digest and schema alone."""
    continued = workflow.info().continued_run_id
    if continued is None or continued != carry.previous_run_ids[-1]:
        raise input_error(
            "this run was given a carry but was not continued from the run the carry names; "
            "start a run with its input alone (a long run carries its own state)"
        )


def parsed_input(raw_input: Any) -> RunInput:
    try:
        return read_run_input(raw_input)
    except RunInputError as error:
        raise input_error(error.message) from None


def input_error(message: str) -> ApplicationError:
    # A bad input does not get better by retrying: the run fails, its input kept in history.
    return ApplicationError(message, type="RunInputError", non_retryable=True)
