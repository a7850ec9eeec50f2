"""The steps of a run so far, and which of their changes the history must be told."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from tiergate.core._decision import Allowed
from tiergate.core._records import StepMark, StepRecord
from tiergate.core._tools import ToolSpec


class StepBook:
    """This segment's step records, numbered on from earlier segments of a long run."""

    def __init__(self) -> None:
        self.records: list[StepRecord] = []
        self.base = 0  # steps done by earlier segments
        self.irreversible_base = 0
        self._marks: list[StepRecord] = []

    @property
    def done(self) -> int:
        return self.base + len(self.records)

    def open(self, now: datetime) -> StepRecord:
        record = StepRecord(step=self.done + 1, started_at=now.isoformat())
        self.records.append(record)
        return record

    def mark(self, record: StepRecord) -> None:
        """``record`` changed in a way the history holds nowhere else: mark it."""
        self._marks.append(record)

    def take_marks(self) -> list[StepMark]:
        """The step marks the history needs since the last call, oldest first."""
        marks = [StepMark.of(record) for record in self._marks]
        self._marks.clear()
        return marks

    def irreversible_done(self, tools: Mapping[str, ToolSpec]) -> int:
        """Irreversible actions that took effect in the run so far, earlier segments too."""
        return self.irreversible_base + sum(
            1
            for s in self.records
            if s.tool_result is not None
            and s.tool_result.ok
            and isinstance(s.decision, Allowed)
            and (spec := tools.get(s.decision.tool)) is not None
            and spec.irreversible
        )
