"""Web sign-in credentials of approvers: scrypt password hashes and one-time sign-in tokens.

Kept apart from the registry's entries, whose snapshot is pinned into every run's
history: a password hash must never reach a history. They live in the shared store
(`tiergate.state`), which workers and the page reach with their own credentials.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from tiergate.state import Database, Tx

# scrypt, a memory-hard function: 2**14 * 8 * 128 bytes = 16 MiB per check.
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 10


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Credentials:
    """Sign-in secrets by approver name, in the shared store: every replica of the page
    signs people in alike, and a one-time token is redeemed once however many replicas
    are asked at the same moment (the redemption deletes it in the same transaction)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        stored = f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_hash(password, salt))}"
        self.database.transaction(
            lambda tx: tx.execute(
                "INSERT INTO web_passwords VALUES (?, ?, ?) ON CONFLICT (name) "
                "DO UPDATE SET hash = excluded.hash, set_at = excluded.set_at",
                (name, stored, datetime.now(UTC).isoformat()),
            )
        )

    def verify_password(self, name: str, password: str) -> bool:
        row = self.database.transaction(
            lambda tx: tx.one("SELECT hash FROM web_passwords WHERE name = ?", (name,))
        )
        if row is None:
            # Same work either way, so timing does not tell which names exist.
            _hash(password, b"\x00" * 16)
            return False
        _, n, r, p, salt, digest = str(row[0]).split("$")
        computed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
        return hmac.compare_digest(computed, base64.b64decode(digest))

    def issue_token(self, name: str, minutes: float = 15) -> str:
        """A one-time sign-in token for ``name``, valid ``minutes``; only its sha256 is kept."""
        token = secrets.token_urlsafe(24)
        expires = datetime.now(UTC) + timedelta(minutes=minutes)
        self.database.transaction(
            lambda tx: tx.execute(
                "INSERT INTO signin_tokens VALUES (?, ?, ?)",
                (hashlib.sha256(token.encode()).hexdigest(), name, expires.isoformat()),
            )
        )
        return token

    def redeem_token(self, token: str) -> str | None:
        """The approver a valid token belongs to; the token is used up either way."""
        key = hashlib.sha256(token.encode()).hexdigest()

        def work(tx: Tx) -> tuple[str, str] | None:
            row = tx.one("SELECT name, expires_at FROM signin_tokens WHERE token_hash = ?", (key,))
            if row is None:
                return None
            tx.execute("DELETE FROM signin_tokens WHERE token_hash = ?", (key,))
            return str(row[0]), str(row[1])

        found = self.database.transaction(work)
        if found is None:
            return None
        name, expires = found
        return name if datetime.fromisoformat(expires) > datetime.now(UTC) else None
