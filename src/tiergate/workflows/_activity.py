"""One activity under the run's budgets: the retries it may still afford, no longer than
the wall time it has left, and a failure for good turned into the run's `Stop`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, RetryState

with workflow.unsafe.imports_passed_through():
    from tiergate.core import ActivityFailure, RunState, Stop, ToolSpec
    from tiergate.workflows._retry import budgeted_retry, safe_to_retry, tool_retry

_T = TypeVar("_T")


async def budgeted_activity(
    state: RunState,
    name: str,
    request: Any,
    result_type: type[_T],
    timeout_seconds: float,
    tool: ToolSpec | None = None,
) -> _T | Stop:
    """Runs activity ``name`` for the run in ``state``; a tool call follows its tool's retry
    rule (a write whose backend cannot deduplicate is tried once)."""
    left = state.retries_left()
    retry = tool_retry(tool, left) if tool else budgeted_retry(left)
    remaining = timedelta(seconds=state.remaining(workflow.now()))
    try:
        result: _T = await workflow.execute_activity(
            name,
            request,
            result_type=result_type,
            retry_policy=retry,
            start_to_close_timeout=min(timedelta(seconds=timeout_seconds), remaining),
            schedule_to_close_timeout=remaining,
        )
    except ActivityError as error:
        cause = _cause(error)
        if tool is not None and (refusal := _runner_refusal(error)) is not None:
            # The runner refused before anything acted: never an unknown effect.
            check, message = refusal
            return state.refused_by_runner(name, check, message, result_type)
        if tool is not None and not safe_to_retry(tool):
            return Stop.unknown_effect(name, cause)
        failure = ActivityFailure(
            cause=cause,
            attempts=retry.maximum_attempts,
            attempts_exhausted=error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED,
            timed_out=error.retry_state == RetryState.TIMEOUT,
        )
        return state.failed(name, failure, workflow.now())
    return result


def _runner_refusal(error: ActivityError) -> tuple[str, str] | None:
    """The failed check and the message when the tool runner refused the call."""
    cause = error.cause
    if not isinstance(cause, ApplicationError) or cause.type != "UnverifiedToolCall":
        return None
    check = cause.details[0] if cause.details else ""
    return str(check), cause.message


def _cause(error: ActivityError) -> str:
    cause = error.cause
    return cause.message if isinstance(cause, ApplicationError) else str(cause)
