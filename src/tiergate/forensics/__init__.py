"""Incident forensics: the one history reader, timelines, approval audits, determinism replay, shadow re-runs."""

from tiergate.forensics._audit import (
    ApprovalAudit,
    AuditFinding,
    audit_approvals,
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
from tiergate.forensics._replay import (
    Divergence,
    ReplayOutcome,
    describe,
    replay_all,
    replay_one,
    replayer,
)
from tiergate.forensics._shadow import (
    Candidate,
    ShadowTools,
    candidate_bundle,
    shadow_runs,
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
