"""Incident forensics: the one history reader, timelines, approval audits, determinism replay, shadow re-runs."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tiergate.forensics._replay import (
        Divergence,
        ReplayOutcome,
        describe,
        replay_all,
        replay_one,
        replayer,
    )
    from tiergate.forensics._shadow import ShadowTools, shadow_runs

from tiergate.forensics._audit import (
    ApprovalAudit,
    AuditFinding,
    audit_approvals,
)
from tiergate.forensics._candidate import (
    Candidate,
    candidate_bundle,
)
from tiergate.forensics._files import (
    check_history,
    fetch_history,
    fetch_run_chain,
    load_history_file,
)
from tiergate.forensics._reader import (
    ActivityEvent,
    MemoChange,
    RunView,
    UpdateEvent,
    decode,
    decrypted,
    read_history,
)
from tiergate.forensics._shadow_diff import (
    BatchSummary,
    ShadowDiff,
    StepDiff,
    diff_runs,
    summarise,
)
from tiergate.forensics._timeline import (
    Timeline,
    TimelineApproval,
    TimelineStep,
    build_timeline,
)
from tiergate.forensics._ungated import (
    ungated_tool_calls,
)
from tiergate.forensics._what_if import (
    CandidateFor,
    StepFlip,
    WhatIf,
    WhatIfReader,
    candidate_policies,
    parse_acceptance,
    what_if,
)

__all__ = [
    "ActivityEvent",
    "ApprovalAudit",
    "AuditFinding",
    "BatchSummary",
    "Candidate",
    "CandidateFor",
    "Divergence",
    "MemoChange",
    "ReplayOutcome",
    "RunView",
    "ShadowDiff",
    "ShadowTools",
    "StepDiff",
    "StepFlip",
    "Timeline",
    "TimelineApproval",
    "TimelineStep",
    "UpdateEvent",
    "WhatIf",
    "WhatIfReader",
    "audit_approvals",
    "build_timeline",
    "candidate_bundle",
    "candidate_policies",
    "check_history",
    "decode",
    "decrypted",
    "describe",
    "diff_runs",
    "fetch_history",
    "fetch_run_chain",
    "load_history_file",
    "parse_acceptance",
    "read_history",
    "replay_all",
    "replay_one",
    "replayer",
    "shadow_runs",
    "summarise",
    "ungated_tool_calls",
    "what_if",
]

#: Imported on first use: replaying needs the workflow code (and its telemetry), a shadow a
#: private worker (activities, MCP), which reading or re-deciding a history never needs.
_ON_FIRST_USE = {
    "Divergence": "tiergate.forensics._replay",
    "ReplayOutcome": "tiergate.forensics._replay",
    "describe": "tiergate.forensics._replay",
    "replay_all": "tiergate.forensics._replay",
    "replay_one": "tiergate.forensics._replay",
    "replayer": "tiergate.forensics._replay",
    "ShadowTools": "tiergate.forensics._shadow",
    "shadow_runs": "tiergate.forensics._shadow",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'tiergate.forensics' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
