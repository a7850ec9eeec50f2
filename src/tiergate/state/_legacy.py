"""Moving a home's files from before the shared store into it, once.

Before #23 a tiergate home kept its state in files: `controls.json`, `rollouts.json`,
`credentials.json`, `caps.sqlite`, `reviews.sqlite`, `evals.sqlite`, the registries
(`approvers.json`, `operators.json`, `registry-changes.jsonl`) and
`passkey-enrollments.json`. An upgrade must not quietly lift a pause, forget a cap's
count, drop queued reviews, lose an approver or revive a revoked one, so
the first open of the store from such a home copies each file in (rows already in the store
win) and renames it to ``NAME.imported``, which nothing reads again.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tiergate.errors import StateError
from tiergate.state._database import Database, Tx

_REVIEW_COLUMNS = (
    "run_id, step, agent, tool, item, created_at, verdict, reviewer, note, reviewed_at"
)
_SUITE_COLUMNS = (
    "suite, suite_version, agent, agent_version, model_ids, policy_version, started_at, "
    "pass_rate, cost_per_task_usd, tokens_per_task, tool_calls_per_task, passed, result"
)


def import_home(database: Database, home: Path) -> list[str]:
    """Copy the legacy files of ``home`` into ``database``; the names of those imported."""
    done = []
    for name, load in _IMPORTS.items():
        path = home / name
        # Claimed by an atomic rename, so two processes starting together import it once.
        claimed = path.with_name(f"{name}.importing-{os.getpid()}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue
        except OSError as error:
            raise StateError(
                f"cannot move {path} into the shared store: {error.strerror}",
                fix="let this host write that folder for one start (each file is renamed "
                "NAME.imported once copied), or run any tiergate command there that can",
            ) from None
        rows = load(claimed)

        def work(tx: Tx, rows: Rows = rows) -> None:
            for sql, params in rows:
                tx.execute(sql, params)

        database.transaction(work)
        claimed.rename(path.with_name(f"{name}.imported"))
        done.append(name)
    return done


Rows = list[tuple[str, tuple[Any, ...]]]


def _controls(path: Path) -> Rows:
    data = json.loads(path.read_text(encoding="utf-8"))
    rows: Rows = []
    for kind, key in (("agent_paused", "paused_agents"), ("tool_disabled", "disabled_tools")):
        for name, switch in data.get(key, {}).items():
            rows.append(
                (
                    "INSERT INTO switches VALUES (?, ?, ?, ?, ?) ON CONFLICT (kind, name) DO NOTHING",
                    (kind, name, switch["at"], switch["by"], switch.get("reason", "")),
                )
            )
    return rows


def _rollouts(path: Path) -> Rows:
    rows: Rows = []
    for agent, value in json.loads(path.read_text(encoding="utf-8")).items():
        events = value.pop("events", [])
        rows.append(
            (
                "INSERT INTO rollouts VALUES (?, ?) ON CONFLICT (agent) DO NOTHING",
                (agent, json.dumps(value)),
            )
        )
        rows.extend(
            (
                "INSERT INTO rollout_events (agent, at, action, detail) VALUES (?, ?, ?, ?)",
                (agent, e["at"], e["action"], e["detail"]),
            )
            for e in events
        )
    return rows


def _credentials(path: Path) -> Rows:
    rows: Rows = []
    now = datetime.now(UTC).isoformat()
    for name, entry in json.loads(path.read_text(encoding="utf-8")).items():
        if entry.get("password"):
            rows.append(
                (
                    "INSERT INTO web_passwords VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (name, entry["password"], now),
                )
            )
        rows.extend(
            (
                "INSERT INTO signin_tokens VALUES (?, ?, ?) ON CONFLICT (token_hash) DO NOTHING",
                (token_hash, name, expires),
            )
            for token_hash, expires in entry.get("tokens", {}).items()
        )
    return rows


def _sqlite_rows(path: Path, query: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.execute(query).fetchall())
    except sqlite3.OperationalError:  # a file created but never written: no table yet
        return []
    finally:
        conn.close()


def _caps(path: Path) -> Rows:
    now = datetime.now(UTC).isoformat()
    usage = [
        (
            "INSERT INTO cap_usage VALUES (?, ?, ?) ON CONFLICT (counter) DO NOTHING",
            tuple(row),
        )
        for row in _sqlite_rows(path, "SELECT counter, calls, total FROM cap_usage")
    ]
    # A charge from before reservations were settled: its outcome is not known here.
    charges = [
        (
            "INSERT INTO cap_charges VALUES (?, ?, ?, 'reserved', ?) "
            "ON CONFLICT (idempotency_key, counter) DO NOTHING",
            (*row, now),
        )
        for row in _sqlite_rows(path, "SELECT idempotency_key, counter, amount FROM cap_charges")
    ]
    return usage + charges


def _reviews(path: Path) -> Rows:
    marks = ", ".join("?" * 10)
    return [
        (
            f"INSERT INTO reviews ({_REVIEW_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT (run_id, step) DO NOTHING",
            tuple(row),
        )
        for row in _sqlite_rows(path, f"SELECT {_REVIEW_COLUMNS} FROM reviews ORDER BY id")
    ]


def _evals(path: Path) -> Rows:
    marks = ", ".join("?" * 13)
    return [
        (f"INSERT INTO suite_runs ({_SUITE_COLUMNS}) VALUES ({marks})", tuple(row))
        for row in _sqlite_rows(path, f"SELECT {_SUITE_COLUMNS} FROM suite_runs ORDER BY id")
    ]


def _registry(kind: str) -> Callable[[Path], Rows]:
    def load(path: Path) -> Rows:
        return [
            (
                "INSERT INTO registry_entries VALUES (?, ?, ?) "
                "ON CONFLICT (registry, name) DO NOTHING",
                (kind, name, json.dumps(entry)),
            )
            for name, entry in json.loads(path.read_text(encoding="utf-8")).items()
        ]

    return load


def _registry_changes(path: Path) -> Rows:
    rows: Rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        change = json.loads(line)
        entry = change.get("entry", {})
        rows.append(
            (
                "INSERT INTO registry_changes (registry, op, name, by_whom, at, entry) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    change["registry"],
                    change["op"],
                    entry.get("name", ""),
                    change["by"],
                    change["at"],
                    json.dumps(entry),
                ),
            )
        )
    return rows


def _enrollments(path: Path) -> Rows:
    return [
        (
            "INSERT INTO passkey_enrollments (name, credential_id, body) VALUES (?, ?, ?) "
            "ON CONFLICT (name, credential_id) DO NOTHING",
            (name, passkey["credential_id"], json.dumps(passkey)),
        )
        for name, passkeys in json.loads(path.read_text(encoding="utf-8")).items()
        for passkey in passkeys
    ]


_IMPORTS = {
    "controls.json": _controls,
    "rollouts.json": _rollouts,
    "credentials.json": _credentials,
    "caps.sqlite": _caps,
    "reviews.sqlite": _reviews,
    "evals.sqlite": _evals,
    "approvers.json": _registry("approvers"),
    "operators.json": _registry("operators"),
    "registry-changes.jsonl": _registry_changes,
    "passkey-enrollments.json": _enrollments,
}
