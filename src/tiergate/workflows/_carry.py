"""When a long run continues as new, so it stays inside Temporal's history limits.

Temporal caps a workflow's history (it warns from 10,240 events or 10 MB and stops runs at
51,200 events or 50 MB). A 1,000-step agent run has about 15,000 events, so long runs
continue as new between two steps, when nothing is pending, carrying a `RunCarry`.
"""

from __future__ import annotations

#: Continue as new past this many events (Temporal warns at 10,240; a step is about 15).
CONTINUE_AS_NEW_EVENTS = 8_000
#: ... or past this many bytes of history (Temporal warns at 10 MB).
CONTINUE_AS_NEW_BYTES = 8 * 1024 * 1024


def should_continue(
    history_length: int, history_bytes: int, suggested: bool, limit_events: int | None
) -> bool:
    """Whether a run should continue as new at this step boundary."""
    return (
        suggested
        or history_length >= (limit_events or CONTINUE_AS_NEW_EVENTS)
        or history_bytes >= CONTINUE_AS_NEW_BYTES
    )
