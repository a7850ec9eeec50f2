"""The post-hoc review queue of sampled tier-2 actions, in the shared store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from tiergate.core import ReviewItem
from tiergate.errors import ReviewError
from tiergate.state import Database, Tx

_COLUMNS = (
    "id",
    "run_id",
    "step",
    "agent",
    "tool",
    "item",
    "created_at",
    "verdict",
    "reviewer",
    "note",
    "reviewed_at",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM reviews"


class ReviewStore:
    """The review queue in the shared store: every worker queues into one, any reviewer
    reads it."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def add(self, item: ReviewItem) -> int:
        """Queue ``item``; queuing the same run and step again returns the first id."""

        def work(tx: Tx) -> int:
            tx.execute(
                "INSERT INTO reviews (run_id, step, agent, tool, item, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step) DO NOTHING",
                (
                    item.run_id,
                    item.step,
                    item.agent,
                    item.tool,
                    item.model_dump_json(),
                    datetime.now(UTC).isoformat(),
                ),
            )
            row = tx.one(
                "SELECT id FROM reviews WHERE run_id = ? AND step = ?", (item.run_id, item.step)
            )
            assert row is not None  # inserted or already there, in this transaction
            return int(row[0])

        return self.database.transaction(work)

    def list(self, include_reviewed: bool = False) -> list[dict[str, Any]]:
        query = _SELECT + ("" if include_reviewed else " WHERE verdict IS NULL") + " ORDER BY id"
        rows = self.database.transaction(lambda tx: tx.all(query))
        return [self._row(r) for r in rows]

    def get(self, review_id: int) -> dict[str, Any]:
        row = self.database.transaction(lambda tx: tx.one(_SELECT + " WHERE id = ?", (review_id,)))
        if row is None:
            raise ReviewError(f"no review {review_id}", fix="see `tiergate reviews list`")
        return self._row(row)

    def flag(self, review_id: int, reviewer: str, verdict: str, note: str) -> dict[str, Any]:
        self.get(review_id)
        self.database.transaction(
            lambda tx: tx.execute(
                "UPDATE reviews SET verdict = ?, reviewer = ?, note = ?, reviewed_at = ? "
                "WHERE id = ?",
                (verdict, reviewer, note, datetime.now(UTC).isoformat(), review_id),
            )
        )
        return self.get(review_id)

    @staticmethod
    def _row(row: tuple[Any, ...]) -> dict[str, Any]:
        data = dict(zip(_COLUMNS, row, strict=True))
        data["item"] = json.loads(data["item"])
        return data
