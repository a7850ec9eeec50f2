"""The post-hoc review queue of sampled tier-2 actions (SQLite)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tiergate.core import ReviewItem
from tiergate.errors import ReviewError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
  id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step INTEGER NOT NULL,
  agent TEXT NOT NULL, tool TEXT NOT NULL, item TEXT NOT NULL, created_at TEXT NOT NULL,
  verdict TEXT, reviewer TEXT, note TEXT, reviewed_at TEXT, UNIQUE (run_id, step));
"""


class ReviewStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def add(self, item: ReviewItem) -> int:
        """Queue ``item``; queuing the same run and step again returns the first id."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO reviews (run_id, step, agent, tool, item, created_at) "
                "VALUES (?,?,?,?,?,?)",
                (
                    item.run_id,
                    item.step,
                    item.agent,
                    item.tool,
                    item.model_dump_json(),
                    datetime.now(UTC).isoformat(),
                ),
            )
            row = conn.execute(
                "SELECT id FROM reviews WHERE run_id = ? AND step = ?", (item.run_id, item.step)
            ).fetchone()
        return int(row["id"])

    def list(self, include_reviewed: bool = False) -> list[dict[str, Any]]:
        query = "SELECT * FROM reviews" + ("" if include_reviewed else " WHERE verdict IS NULL")
        with self._connect() as conn:
            return [self._row(r) for r in conn.execute(query + " ORDER BY id")]

    def get(self, review_id: int) -> dict[str, Any]:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM reviews WHERE id = ?", (review_id,)).fetchone()
        if row is None:
            raise ReviewError(f"no review {review_id}", fix="see `tiergate reviews list`")
        return self._row(row)

    def flag(self, review_id: int, reviewer: str, verdict: str, note: str) -> dict[str, Any]:
        self.get(review_id)
        with self._connect() as conn:
            conn.execute(
                "UPDATE reviews SET verdict = ?, reviewer = ?, note = ?, reviewed_at = ? WHERE id = ?",
                (verdict, reviewer, note, datetime.now(UTC).isoformat(), review_id),
            )
        return self.get(review_id)

    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        data = dict(row)
        data["item"] = json.loads(data["item"])
        return data
