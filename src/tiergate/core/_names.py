"""The names a run's workflow, its activities and its clients share, and the limits they meet.

Names are a contract: recorded histories replay against them, clients in other languages
start runs and answer approvals by them, and tests register fakes under them. Change one
only together with the histories it would orphan.
"""

from __future__ import annotations

import json
from typing import Any

#: tiergate's version (as in pyproject.toml): recorded as every run's code version.
VERSION = "0.1.0"

TASK_QUEUE = "tiergate"
WORKFLOW_NAME = "AgentRunWorkflow"

LOAD_AGENT_ACTIVITY = "agent__load"
CLASSIFY_ACTIVITY = "model__classify"
PROPOSE_ACTIVITY = "model__propose"
TOOL_ACTIVITY_PREFIX = "tool__"
APPROVERS_SNAPSHOT_ACTIVITY = "approvers__snapshot"
APPROVER_STATUS_ACTIVITY = "approvers__status"
NOTIFY_OVERDUE_ACTIVITY = "notify__approval_overdue"
REVIEW_ENQUEUE_ACTIVITY = "review__enqueue"

APPROVAL_UPDATE = "approval"
#: Signal of the kill switch: pause/resume a run, disable/enable a tool in it.
CONTROL_SIGNAL = "control"
STATUS_QUERY = "status"
PENDING_APPROVAL_QUERY = "pending_approval"

#: Memo key holding the pending action while a run waits, so lists need no worker.
PENDING_MEMO = "tiergate.pending"
#: Memo key of a step's mark: a decision the history holds nowhere else.
STEP_MEMO = "tiergate.step"
#: Memo key of the run's versions, written once at start.
RUN_MEMO = "tiergate.run"
#: Memo key of the kill switch's state and its last commands.
CONTROLS_MEMO = "tiergate.controls"

#: Search attributes (their typed keys are in `tiergate.workflows`).
PENDING_APPROVAL_SEARCH_ATTRIBUTE = "TiergatePendingApproval"
AGENT_SEARCH_ATTRIBUTE = "TiergateAgent"
SHADOW_SEARCH_ATTRIBUTE = "TiergateShadow"
AGENT_VERSION_SEARCH_ATTRIBUTE = "TiergateAgentVersion"
VARIANT_SEARCH_ATTRIBUTE = "TiergateVariant"

#: Most bytes of a model's raw output kept in history; the full text is in the content store.
MAX_RAW_OUTPUT_CHARS = 32_000
#: Most bytes of a tool result previewed in history; the full result is in the content store.
MAX_PREVIEW_CHARS = 1_000
#: A run input larger than this is refused before the run starts (Temporal caps payloads at 2 MB).
MAX_RUN_INPUT_BYTES = 256_000
#: The raw proposal's kind when a provider answered with more tool calls at once than any
#: agent takes (``MAX_TOOL_CALLS_PER_ANSWER``): they are counted, not listed.
MULTIPLE_TOOL_CALLS = "multiple_tool_calls"
#: The raw proposal's kind of an answer with several tool calls (``{"calls": [...]}``).
TOOL_CALLS = "tool_calls"
#: The most tool calls one model answer may carry (``tools.max_parallel_calls`` is at most
#: this): a provider answering with more is not even listed, so a flood costs nothing.
MAX_TOOL_CALLS_PER_ANSWER = 32
#: What to do instead of sending a large document as run input.
LARGE_INPUT_FIX = "put large documents (tickets, attachments) in a store and pass their id"


def oversized_run_input(raw: Any) -> str | None:
    """Why ``raw`` (a run input as sent to Temporal) is too large, or None when it fits.

    Pure, so the client refuses before starting and the workflow, for input sent around
    the client, fails the run with the same measure and words.
    """
    size = len(json.dumps(raw, default=str))
    if size > MAX_RUN_INPUT_BYTES:
        return f"run input is {size} bytes; the limit is {MAX_RUN_INPUT_BYTES}"
    return None


def tool_activity_name(tool: str) -> str:
    """The activity a tool's calls are scheduled as: ``tool__<toolset>.<tool>``."""
    return f"{TOOL_ACTIVITY_PREFIX}{tool}"
