"""Incident forensics: timelines, exported histories, determinism replay, shadow re-runs."""

from tiergate.forensics._files import (
    HistoryError,
    check_history,
    fetch_history,
    fetch_run_chain,
    load_history_file,
)
from tiergate.forensics._replay import (
    Divergence,
    ReplayOutcome,
    describe,
    replay_all,
    replay_one,
    replayer,
)
from tiergate.forensics._timeline import Timeline, TimelineApproval, TimelineStep, build_timeline

__all__ = [
    "Divergence",
    "HistoryError",
    "ReplayOutcome",
    "Timeline",
    "TimelineApproval",
    "TimelineStep",
    "build_timeline",
    "check_history",
    "describe",
    "fetch_history",
    "fetch_run_chain",
    "load_history_file",
    "replay_all",
    "replay_one",
    "replayer",
]
