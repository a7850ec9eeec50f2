"""What a long run takes across continue-as-new, so it stays one run to its operators.

Temporal caps a workflow's history (it warns from 10,240 events or 10 MB and stops runs at
51,200 events or 50 MB). A 1,000-step agent run has about 15,000 events, so long runs
continue as new between two steps, when nothing is pending. The next segment starts from
a `RunCarry` instead of its own input: the pinned agent bundle (no reload, so the run keeps
its versions), the budget ledger with every total and loop counter, the session policies
see (`Session`: calls, sums and key values per tool), the kill-switch state,
the conversation's head in the content store and the last model call of each tier (for
drift checks). The steps themselves are not carried: each segment's history holds its own
audit trail, and `runs show` walks the chain (``previous_run_ids``) to show one run.

Carrying is O(1) in the run's length, so history size per step stays flat however long
the run (bench/growth.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tiergate.core._agent import AgentBundle
from tiergate.core._budget import BudgetLedger
from tiergate.core._payloads import TranscriptEntry
from tiergate.core._records import ModelCall
from tiergate.core._session import Session


class RunCarry(BaseModel):
    """The state of a run at a step boundary, as the next segment's starting point."""

    model_config = ConfigDict(extra="forbid")

    segment: int = Field(ge=2, description="This segment's number; the first run is 1.")
    previous_run_ids: list[str] = Field(min_length=1)
    started_at: str = Field(description="When the first segment started (wall-time budget).")
    bundle: AgentBundle
    ledger: BudgetLedger
    session: Session = Field(default_factory=Session)
    steps_done: int = Field(ge=0)
    irreversible_done: int = Field(ge=0)
    transcript_head: str | None = None
    append: list[TranscriptEntry] = Field(default_factory=list)
    route: str | None = None
    reported_models: dict[str, list[str]] = Field(default_factory=dict)
    last_model_calls: list[ModelCall] = Field(default_factory=list)
    alerts: list[str] = Field(default_factory=list)
    approval_wait_seconds: float = 0.0
    paused: bool = False
    paused_seconds: float = 0.0
    disabled_tools: list[str] = Field(default_factory=list)
    controls: list[dict[str, Any]] = Field(default_factory=list)
    #: Steps the run opened for the later calls of answers with several (see RunState).
    batched_steps: int = Field(default=0, ge=0)
