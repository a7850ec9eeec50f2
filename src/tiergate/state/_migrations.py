"""The shared store's schema, as numbered migrations applied once each, in order.

`migrate` runs at every open: it applies what the database lacks, under one lock (SQLite's
write lock, a PostgreSQL advisory lock), so processes starting together migrate once. A
database newer than this code (a version it does not know) is refused rather than written
to by code that does not understand it. Never edit a released migration: add the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tiergate.errors import StateError

if TYPE_CHECKING:
    from tiergate.state._database import Database, Tx


@dataclass(frozen=True)
class Migration:
    """Statements in the SQL both dialects share; ``{serial}`` is an auto-numbered key,
    ``{blob}`` a column of bytes."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "kill switch, rollouts, cap ledger",
        (
            # The kill switch: one row per paused agent or disabled tool, and every change.
            """CREATE TABLE switches (
                 kind TEXT NOT NULL, name TEXT NOT NULL,
                 switched_at TEXT NOT NULL, switched_by TEXT NOT NULL, reason TEXT NOT NULL,
                 PRIMARY KEY (kind, name))""",
            """CREATE TABLE switch_events (
                 id {serial}, at TEXT NOT NULL, action TEXT NOT NULL, name TEXT NOT NULL,
                 by_whom TEXT NOT NULL, reason TEXT NOT NULL)""",
            # Rollouts: the current state of each agent's, and its event list.
            "CREATE TABLE rollouts (agent TEXT PRIMARY KEY, body TEXT NOT NULL)",
            """CREATE TABLE rollout_events (
                 id {serial}, agent TEXT NOT NULL, at TEXT NOT NULL, action TEXT NOT NULL,
                 detail TEXT NOT NULL)""",
            "CREATE INDEX rollout_events_agent ON rollout_events (agent, id)",
            # Caps: counts per window, and what each call (by idempotency key) reserved.
            """CREATE TABLE cap_usage (
                 counter TEXT PRIMARY KEY, calls INTEGER NOT NULL, total TEXT NOT NULL)""",
            """CREATE TABLE cap_charges (
                 idempotency_key TEXT NOT NULL, counter TEXT NOT NULL, amount TEXT NOT NULL,
                 state TEXT NOT NULL, charged_at TEXT NOT NULL,
                 PRIMARY KEY (idempotency_key, counter))""",
        ),
    ),
    Migration(
        2,
        "content store",
        (
            # Transcripts and large results by sha256, for workers sharing only the database.
            "CREATE TABLE content (ref TEXT PRIMARY KEY, size BIGINT NOT NULL, data {blob} NOT NULL)",
        ),
    ),
    Migration(
        3,
        "review queue",
        (
            """CREATE TABLE reviews (
                 id {serial}, run_id TEXT NOT NULL, step INTEGER NOT NULL, agent TEXT NOT NULL,
                 tool TEXT NOT NULL, item TEXT NOT NULL, created_at TEXT NOT NULL,
                 verdict TEXT, reviewer TEXT, note TEXT, reviewed_at TEXT,
                 UNIQUE (run_id, step))""",
        ),
    ),
    Migration(
        4,
        "eval results",
        (
            """CREATE TABLE suite_runs (
                 id {serial}, suite TEXT NOT NULL, suite_version TEXT NOT NULL,
                 agent TEXT NOT NULL, agent_version TEXT NOT NULL, model_ids TEXT NOT NULL,
                 policy_version TEXT NOT NULL, started_at TEXT NOT NULL,
                 pass_rate DOUBLE PRECISION NOT NULL, cost_per_task_usd DOUBLE PRECISION NOT NULL,
                 tokens_per_task DOUBLE PRECISION NOT NULL,
                 tool_calls_per_task DOUBLE PRECISION NOT NULL, passed INTEGER NOT NULL,
                 result TEXT NOT NULL)""",
            "CREATE INDEX suite_runs_suite ON suite_runs (suite, id)",
        ),
    ),
    Migration(
        5,
        "web sign-in credentials",
        (
            # scrypt hashes, and one-time sign-in tokens by their sha256 (never the token).
            """CREATE TABLE web_passwords (
                 name TEXT PRIMARY KEY, hash TEXT NOT NULL, set_at TEXT NOT NULL)""",
            """CREATE TABLE signin_tokens (
                 token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, expires_at TEXT NOT NULL)""",
        ),
    ),
    Migration(
        6,
        "registries, passkey enrollments, web sessions",
        (
            # Approver and operator entries, each as endorsed by an administrator (JSON).
            """CREATE TABLE registry_entries (
                 registry TEXT NOT NULL, name TEXT NOT NULL, body TEXT NOT NULL,
                 PRIMARY KEY (registry, name))""",
            """CREATE TABLE registry_changes (
                 id {serial}, registry TEXT NOT NULL, op TEXT NOT NULL, name TEXT NOT NULL,
                 by_whom TEXT NOT NULL, at TEXT NOT NULL, entry TEXT NOT NULL)""",
            # Passkeys enrolled on the page and not yet endorsed.
            """CREATE TABLE passkey_enrollments (
                 id {serial}, name TEXT NOT NULL, credential_id TEXT NOT NULL,
                 body TEXT NOT NULL, UNIQUE (name, credential_id))""",
            # Signed-in approvers of the page, by the sha256 of the cookie's session id.
            """CREATE TABLE web_sessions (
                 sid_hash TEXT PRIMARY KEY, approver TEXT NOT NULL, csrf TEXT NOT NULL,
                 expires_at DOUBLE PRECISION NOT NULL, enrolling TEXT,
                 prepared TEXT NOT NULL)""",
        ),
    ),
    Migration(
        7,
        "sign-in failures",
        (
            # Failed sign-ins by key (client address, approver name), for every page replica.
            """CREATE TABLE signin_failures (
                 key TEXT PRIMARY KEY, count INTEGER NOT NULL,
                 last DOUBLE PRECISION NOT NULL)""",
        ),
    ),
)

_SERIAL = {"sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT", "postgresql": "BIGSERIAL PRIMARY KEY"}
_BLOB = {"sqlite": "BLOB", "postgresql": "BYTEA"}


def migrate(database: Database) -> int:
    """Apply every migration ``database`` lacks; the schema version it is at after.

    A store already at this version is only read, so a role that may not change the
    schema (a fleet's workers and page, `tiergate.state.grant`) opens it all the same.
    """
    known = {m.version for m in MIGRATIONS}
    have = database.transaction(_applied)
    if have is not None and known <= have:
        _refuse_newer(database, have, known)
        return max(known)

    def work(tx: Tx) -> int:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS tiergate_schema ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        have = {row[0] for row in tx.all("SELECT version FROM tiergate_schema")}
        _refuse_newer(database, have, known)
        for migration in MIGRATIONS:
            if migration.version in have:
                continue
            for statement in migration.statements:
                tx.execute(
                    statement.replace("{serial}", _SERIAL[tx.dialect]).replace(
                        "{blob}", _BLOB[tx.dialect]
                    )
                )
            tx.execute(
                "INSERT INTO tiergate_schema VALUES (?, ?, ?)",
                (migration.version, migration.name, datetime.now(UTC).isoformat()),
            )
        return max(known)

    return database.schema_transaction(work)


def _applied(tx: Tx) -> set[int] | None:
    """The versions applied, or None when the store has no schema table yet."""
    if tx.dialect == "postgresql":
        exists = tx.one("SELECT to_regclass('tiergate_schema') IS NOT NULL")
    else:
        exists = tx.one(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' "
            "AND name = 'tiergate_schema'"
        )
    if exists is None or not exists[0]:
        return None
    return {int(row[0]) for row in tx.all("SELECT version FROM tiergate_schema")}


def _refuse_newer(database: Database, have: set[int], known: set[int]) -> None:
    if unknown := sorted(have - known):
        raise StateError(
            f"{database.shown} is at schema version {max(unknown)}, newer than this "
            f"tiergate knows (up to {max(known)})",
            fix="upgrade tiergate on this host to the version the fleet runs",
        )
