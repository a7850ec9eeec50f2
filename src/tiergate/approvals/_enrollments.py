"""Passkeys approvers enrolled on the web page, waiting for an administrator to endorse them.

An enrollment gives the page nothing to sign with: the passkey's private key stays in the
approver's authenticator, and the public key counts only once an administrator has endorsed
it into the registry (`ApproverRegistry.add_passkey`), with the key the page does not hold.
Each enrollment is also a short code (`enrollment_code`) the approver can hand to the
administrator when the page and the administrator's machine share no files (the compose
stack); the administrator compares its key id with the one the approver's page showed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from tiergate.core import Passkey, b64url, from_b64url
from tiergate.core._digest import canonical_json
from tiergate.errors import ApproverError

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
    """``<home>/passkey-enrollments.json``: name -> passkeys enrolled, not yet endorsed."""

    def __init__(self, home: Path) -> None:
        self.path = home / "passkey-enrollments.json"

    def all(self) -> dict[str, list[Passkey]]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {name: [Passkey.model_validate(p) for p in keys] for name, keys in data.items()}

    def of(self, name: str) -> list[Passkey]:
        return self.all().get(name, [])

    def add(self, name: str, passkey: Passkey) -> None:
        entries = self.all()
        entries[name] = [*entries.get(name, []), passkey][-MAX_WAITING:]
        self._write(entries)

    def remove(self, name: str, key: str) -> None:
        """Drops ``name``'s enrollment whose key id or credential id is ``key``."""
        entries = self.all()
        kept = [p for p in entries.get(name, []) if key not in (p.key_id, p.credential_id)]
        if kept:
            entries[name] = kept
        else:
            entries.pop(name, None)
        self._write(entries)

    def find(self, name: str, key: str) -> Passkey | None:
        return next((p for p in self.of(name) if key in (p.key_id, p.credential_id)), None)

    def _write(self, entries: dict[str, list[Passkey]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({k: [p.model_dump() for p in v] for k, v in entries.items()}, out, indent=2)
        os.replace(tmp, self.path)
