"""What each kind of process may read and change in the shared store, as PostgreSQL grants.

A fleet's workers and page replicas share one store, but not one database role: a worker
host must not be able to mint a sign-in link, open a page session, put back an older
registry row or lift a pause, and the page must not be able to count caps or add to the
review queue. The owner role (the one that migrates: the administrator's and operators'
commands) changes everything; `grant` gives a worker role and a page role exactly what
`ACCESS` lists, and takes away anything else they were given. Endorsements still guard the
registry's contents whatever the roles; the grants keep a host from rolling it back.

SQLite has no roles: on one machine, the file's permissions are the boundary.
"""

from __future__ import annotations

import re
from typing import Literal

from tiergate.errors import StateError
from tiergate.state._database import Database, Tx

RoleKind = Literal["worker", "web"]

#: Per kind, per table: what it may do (``SELECT`` alone, or with writes). Tables not
#: listed are out of reach of that kind altogether.
ACCESS: dict[RoleKind, dict[str, tuple[str, ...]]] = {
    "worker": {
        "tiergate_schema": ("SELECT",),
        # The kill switch and rollouts are read in every run; operators change them.
        "switches": ("SELECT",),
        "rollouts": ("SELECT",),
        "rollout_events": ("SELECT",),
        # Approvals are checked against the registry; administrators change it.
        "registry_entries": ("SELECT",),
        # What tool calls and model calls write as they run.
        "content": ("SELECT", "INSERT"),
        "cap_usage": ("SELECT", "INSERT", "UPDATE"),
        "cap_charges": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "reviews": ("SELECT", "INSERT"),
    },
    "web": {
        "tiergate_schema": ("SELECT",),
        "registry_entries": ("SELECT",),
        # Passwords are set and sign-in links minted by administrators; the page checks
        # a password and uses a link up (deletes it), nothing more.
        "web_passwords": ("SELECT",),
        "signin_tokens": ("SELECT", "DELETE"),
        "web_sessions": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "passkey_enrollments": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "signin_failures": ("SELECT", "INSERT", "UPDATE", "DELETE"),
    },
}

_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def grant(database: Database, role: str, kind: RoleKind) -> list[str]:
    """Give ``role`` exactly `ACCESS` [``kind``] on this store's tables (run as their
    owner, after `migrate`); the statements run."""
    if database.dialect != "postgresql":
        raise StateError(
            f"{database.shown} is SQLite, which has no roles",
            fix="grants are for a PostgreSQL store shared by a fleet",
        )
    if not _ROLE.match(role):
        raise StateError(
            f"{role!r} is not a role name grants are given to here",
            fix="use lower-case letters, digits and _ (create the role first)",
        )

    def work(tx: Tx) -> list[str]:
        tables = [
            row[0]
            for row in tx.all("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ]
        sequences = [
            row[0]
            for row in tx.all(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
            )
        ]
        statements = [f"GRANT USAGE ON SCHEMA {_schema(tx)} TO {role}"]
        statements += [f"REVOKE ALL ON TABLE {table} FROM {role}" for table in sorted(tables)]
        statements += [f"REVOKE ALL ON SEQUENCE {seq} FROM {role}" for seq in sorted(sequences)]
        for table, privileges in ACCESS[kind].items():
            if table not in tables:
                continue
            statements.append(f"GRANT {', '.join(privileges)} ON TABLE {table} TO {role}")
            if "INSERT" in privileges and f"{table}_id_seq" in sequences:
                statements.append(f"GRANT USAGE ON SEQUENCE {table}_id_seq TO {role}")
        for statement in statements:
            tx.execute(statement)
        return statements

    return database.transaction(work)


def _schema(tx: Tx) -> str:
    row = tx.one("SELECT current_schema()")
    assert row is not None
    return str(row[0])
