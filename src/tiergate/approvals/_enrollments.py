"""Passkeys approvers enrolled on the web page, waiting for an administrator to endorse them.

An enrollment gives the page nothing to sign with: the passkey's private key stays in the
approver's authenticator, and the public key counts only once an administrator has endorsed
it into the registry (`ApproverRegistry.add_passkey`), with the key the page does not hold.
Enrollments wait in the shared store, where `tiergate approvers passkeys waiting` finds
them; each is also a short code (`enrollment_code`) the approver can hand to an
administrator whose machine does not reach that store. Either way the administrator
compares its key id with the one the approver's page showed.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from tiergate.core import Passkey, b64url, from_b64url
from tiergate.core._digest import canonical_json
from tiergate.errors import ApproverError
from tiergate.state import Database, Tx

#: Enrollments one approver may have waiting; the oldest goes first.
MAX_WAITING = 5


def enrollment_code(name: str, passkey: Passkey) -> str:
    """``name``'s enrollment of ``passkey`` as one copyable line."""
    return b64url(canonical_json({"name": name, "passkey": passkey.model_dump()}).encode())


def read_enrollment_code(code: str) -> tuple[str, Passkey]:
    """The approver and passkey in ``code``, or ApproverError saying it is not one."""
    try:
        data = json.loads(from_b64url(code.strip()))
        return str(data["name"]), Passkey.model_validate(data["passkey"])
    except (ValueError, KeyError, TypeError, ValidationError):
        raise ApproverError(
            "that is not an enrollment code",
            fix="copy the code the approver's passkey page shows, whole",
        ) from None


class PasskeyEnrollments:
    """Passkeys enrolled and not yet endorsed, by approver name, in the shared store: any
    replica of the page takes an enrollment and any administrator's machine sees it."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def all(self) -> dict[str, list[Passkey]]:
        rows = self.database.transaction(
            lambda tx: tx.all("SELECT name, body FROM passkey_enrollments ORDER BY id")
        )
        entries: dict[str, list[Passkey]] = {}
        for name, body in rows:
            entries.setdefault(str(name), []).append(Passkey.model_validate_json(body))
        return entries

    def of(self, name: str) -> list[Passkey]:
        rows = self.database.transaction(
            lambda tx: tx.all(
                "SELECT body FROM passkey_enrollments WHERE name = ? ORDER BY id", (name,)
            )
        )
        return [Passkey.model_validate_json(body) for (body,) in rows]

    def add(self, name: str, passkey: Passkey) -> None:
        """Keeps ``passkey`` waiting for ``name``; beyond `MAX_WAITING`, the oldest goes."""

        def work(tx: Tx) -> None:
            tx.execute(
                "INSERT INTO passkey_enrollments (name, credential_id, body) VALUES (?, ?, ?) "
                "ON CONFLICT (name, credential_id) DO UPDATE SET body = excluded.body",
                (name, passkey.credential_id, passkey.model_dump_json()),
            )
            ids = [
                row[0]
                for row in tx.all(
                    "SELECT id FROM passkey_enrollments WHERE name = ? ORDER BY id DESC", (name,)
                )
            ]
            for stale in ids[MAX_WAITING:]:
                tx.execute("DELETE FROM passkey_enrollments WHERE id = ?", (stale,))

        self.database.transaction(work)

    def remove(self, name: str, key: str) -> None:
        """Drops ``name``'s enrollment whose key id or credential id is ``key``."""
        found = self.find(name, key)
        if found is not None:
            self.database.transaction(
                lambda tx: tx.execute(
                    "DELETE FROM passkey_enrollments WHERE name = ? AND credential_id = ?",
                    (name, found.credential_id),
                )
            )

    def find(self, name: str, key: str) -> Passkey | None:
        return next((p for p in self.of(name) if key in (p.key_id, p.credential_id)), None)
