"""Web sign-in credentials of approvers: scrypt password hashes and one-time sign-in tokens.

Kept apart from the registry (`approvers.json`), whose snapshot is pinned into every run's
history: a password hash must never reach a history. The file is mode 0600 next to the
approvers' private keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field

# scrypt, a memory-hard function: 2**14 * 8 * 128 bytes = 16 MiB per check.
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 10


class _Entry(BaseModel):
    password: str | None = None
    tokens: dict[str, str] = Field(default_factory=dict)  # sha256(token) -> expires_at


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Credentials:
    """Sign-in secrets by approver name."""

    def __init__(self, home: Path) -> None:
        self.path = home / "credentials.json"

    def _read(self) -> dict[str, _Entry]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {name: _Entry.model_validate(value) for name, value in data.items()}

    def _write(self, entries: dict[str, _Entry]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({k: v.model_dump() for k, v in entries.items()}, out, indent=2)
        os.replace(tmp, self.path)

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"a password needs at least {MIN_PASSWORD} characters")
        salt = secrets.token_bytes(16)
        entries = self._read()
        entry = entries.get(name, _Entry())
        entry.password = f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(_hash(password, salt))}"
        entries[name] = entry
        self._write(entries)

    def verify_password(self, name: str, password: str) -> bool:
        entry = self._read().get(name)
        stored = entry.password if entry else None
        if stored is None:
            # Same work either way, so timing does not tell which names exist.
            _hash(password, b"\x00" * 16)
            return False
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
        )
        return hmac.compare_digest(computed, base64.b64decode(digest))

    def issue_token(self, name: str, minutes: float = 15) -> str:
        """A one-time sign-in token for ``name``, valid ``minutes``."""
        token = secrets.token_urlsafe(24)
        entries = self._read()
        entry = entries.get(name, _Entry())
        expires = datetime.now(UTC) + timedelta(minutes=minutes)
        entry.tokens[hashlib.sha256(token.encode()).hexdigest()] = expires.isoformat()
        entries[name] = entry
        self._write(entries)
        return token

    def redeem_token(self, token: str) -> str | None:
        """The approver a valid token belongs to; the token is used up either way."""
        key = hashlib.sha256(token.encode()).hexdigest()
        entries = self._read()
        for name, entry in entries.items():
            expires = entry.tokens.pop(key, None)
            if expires is not None:
                self._write(entries)
                return name if datetime.fromisoformat(expires) > datetime.now(UTC) else None
        return None
