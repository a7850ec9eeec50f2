"""Suite results over time, and comparing two runs of a suite case by case.

Every `tiergate eval run` appends one row (suite and agent versions, model ids, policy hash,
figures, and the full result) to the shared store, so a slow drift in
pass rate or cost shows up in `tiergate eval history` even when no single run fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from tiergate.evals._runner import SuiteResult
from tiergate.state import Database


class HistoryRow(BaseModel):
    started_at: str
    suite_version: str
    agent_version: str
    model_ids: list[str]
    policy_version: str
    pass_rate: float
    cost_per_task_usd: float
    tokens_per_task: float
    tool_calls_per_task: float
    passed: bool


class ResultStore:
    """Suite results in the shared store, so every host's `tiergate eval run` adds to one
    history."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def append(self, result: SuiteResult) -> None:
        self.database.transaction(
            lambda tx: tx.execute(
                "INSERT INTO suite_runs (suite, suite_version, agent, agent_version, model_ids, "
                "policy_version, started_at, pass_rate, cost_per_task_usd, tokens_per_task, "
                "tool_calls_per_task, passed, result) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    result.suite,
                    result.suite_version,
                    result.agent,
                    result.agent_version,
                    json.dumps(result.model_ids),
                    result.policy_version,
                    result.started_at,
                    result.pass_rate,
                    result.cost_per_task_usd,
                    result.tokens_per_task,
                    result.tool_calls_per_task,
                    int(result.passed),
                    result.model_dump_json(),
                ),
            )
        )

    def history(self, suite: str, limit: int = 100) -> list[HistoryRow]:
        rows = self.database.transaction(
            lambda tx: tx.all(
                "SELECT started_at, suite_version, agent_version, model_ids, policy_version, "
                "pass_rate, cost_per_task_usd, tokens_per_task, tool_calls_per_task, passed "
                "FROM suite_runs WHERE suite = ? ORDER BY id DESC LIMIT ?",
                (suite, limit),
            )
        )
        return [
            HistoryRow(
                started_at=r[0],
                suite_version=r[1],
                agent_version=r[2],
                model_ids=json.loads(r[3]),
                policy_version=r[4],
                pass_rate=r[5],
                cost_per_task_usd=r[6],
                tokens_per_task=r[7],
                tool_calls_per_task=r[8],
                passed=bool(r[9]),
            )
            for r in reversed(rows)
        ]


class CaseChange(BaseModel):
    case: str
    change: str  # regression, improvement, changed, new, removed
    before: str
    after: str


def compare(before: SuiteResult, after: SuiteResult) -> list[CaseChange]:
    """Case-by-case differences between two results of the same suite (pure)."""
    old = {c.id: c for c in before.cases}
    new = {c.id: c for c in after.cases}
    changes = []
    for case in sorted(old.keys() | new.keys()):
        a, b = old.get(case), new.get(case)
        if a is None or b is None:
            changes.append(
                CaseChange(
                    case=case,
                    change="new" if a is None else "removed",
                    before="" if a is None else a.outcome,
                    after="" if b is None else b.outcome,
                )
            )
            continue
        describe_a = f"{'pass' if a.passed else 'FAIL'} {a.outcome}"
        describe_b = f"{'pass' if b.passed else 'FAIL'} {b.outcome}"
        if a.passed and not b.passed:
            kind = "regression"
        elif b.passed and not a.passed:
            kind = "improvement"
        elif a.outcome != b.outcome or a.failures != b.failures:
            kind = "changed"
        else:
            continue
        after_text = describe_b + (f": {'; '.join(b.failures)}" if b.failures else "")
        changes.append(CaseChange(case=case, change=kind, before=describe_a, after=after_text))
    return changes


def load_result(path: Path) -> SuiteResult:
    return SuiteResult.model_validate_json(path.read_text(encoding="utf-8"))
