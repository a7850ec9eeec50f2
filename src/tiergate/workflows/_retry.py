"""Which failed activities are tried again, and how often: pure, so the table is testable.

Every retry is charged to the run's retry budget, so attempts are capped by what it has
left. Tool calls add one rule on top:

| tool                                   | tiers | automatic retry                   |
|----------------------------------------|-------|-----------------------------------|
| read                                   | 0-4   | yes, within the retry budget      |
| write whose backend honors the key     | 1-4   | yes: a retry after a lost response gets the first answer back |
| write whose backend has no keys        | 1-2   | no: the step fails, the run escalates |
| write whose backend has no keys        | 3-4   | no, and the approval does not carry over to a retry: the run escalates |

A write whose backend cannot deduplicate is never retried by the workflow, because a retry
after a lost response would apply it twice (invariant 3). After a failure nobody knows
whether the effect happened, so the run stops and escalates to a person instead of trying
harder; at tier 3-4 the person who approved it approved one application, not two.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from tiergate.core import ToolKind, ToolSpec
from tiergate.errors import NON_RETRYABLE_ERRORS


def budgeted_retry(retries_left: int) -> RetryPolicy:
    """Exponential backoff, with as many retries as the run's budget has left."""
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=retries_left + 1,
        non_retryable_error_types=NON_RETRYABLE_ERRORS,
    )


def safe_to_retry(spec: ToolSpec) -> bool:
    """A read, or a write whose backend applies each idempotency key at most once."""
    return spec.kind is ToolKind.READ or spec.honors_idempotency_key


def tool_retry(spec: ToolSpec, retries_left: int) -> RetryPolicy:
    """The retry policy of one tool call (see the table above)."""
    if safe_to_retry(spec):
        return budgeted_retry(retries_left)
    return RetryPolicy(maximum_attempts=1, non_retryable_error_types=NON_RETRYABLE_ERRORS)


def service_retry(maximum_attempts: int = 0) -> RetryPolicy:
    """tiergate's own activities (agent load, registry, notices, reviews): Temporal's
    default backoff, ``maximum_attempts`` (0: until the activity's timeout), and never
    again after a failure no retry could fix."""
    return RetryPolicy(
        maximum_attempts=maximum_attempts, non_retryable_error_types=NON_RETRYABLE_ERRORS
    )
