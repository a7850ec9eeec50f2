"""Agent identity and scoped, short-lived credentials for every tool call.

Each run acts as a service principal of its agent (``agent:<name>``). A tool never holds a
long-lived, broad key: for each call the worker's credential broker mints a token whose
audience is that one tool, bound to the run and the step, with the call's scopes, expiring
in minutes. The tool backend's front door (`BackendGuard`) holds only the broker's public
key and refuses any token that is not exactly for the call in front of it. The broker's
private key lives in the worker (``keys/broker.key``, mode 0600).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from tiergate.errors import CredentialRefusedError

ISSUER = "tiergate-broker"
DEFAULT_TTL_SECONDS = 300


class Claims(BaseModel):
    iss: str
    sub: str
    aud: str
    run: str
    step: int
    scopes: list[str]
    iat: int
    exp: int
    jti: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def principal(agent: str) -> str:
    """The service principal a run of ``agent`` acts as."""
    return f"agent:{agent}"


class CredentialBroker:
    """Mints per-call tokens; only the worker holds its key."""

    def __init__(self, key: Ed25519PrivateKey, ttl_seconds: int = DEFAULT_TTL_SECONDS) -> None:
        self.key, self.ttl = key, ttl_seconds

    @classmethod
    def ephemeral(cls) -> CredentialBroker:
        """A broker whose key lives only in this process (tests, shadows, evals)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_home(cls, home: Path) -> CredentialBroker:
        """The worker's broker: its key in ``home/keys/broker.key`` (created 0600)."""
        path = home / "keys" / "broker.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pem = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            path.touch(mode=0o600)
            path.write_bytes(pem)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, Ed25519PrivateKey)
        return cls(key)

    def verifier(self) -> CredentialVerifier:
        return CredentialVerifier(self.key.public_key())

    def mint(
        self,
        agent: str,
        run_id: str,
        step: int,
        tool: str,
        scopes: list[str],
        now: float | None = None,
    ) -> str:
        issued = int(now if now is not None else time.time())
        claims = Claims(
            iss=ISSUER,
            sub=principal(agent),
            aud=tool,
            run=run_id,
            step=step,
            scopes=scopes,
            iat=issued,
            exp=issued + self.ttl,
            jti=secrets.token_hex(8),
        )
        body = _b64(claims.model_dump_json().encode())
        return f"{body}.{_b64(self.key.sign(body.encode()))}"


class CredentialVerifier:
    """Checks a token against the one call it must be for; holds only the public key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key

    def verify(
        self, token: str, *, tool: str, run_id: str, step: int, scope: str, now: float | None = None
    ) -> Claims:
        try:
            body, signature = token.split(".")
            self.public_key.verify(_unb64(signature), body.encode())
            claims = Claims.model_validate(json.loads(_unb64(body)))
        except (ValueError, InvalidSignature, ValidationError):
            raise CredentialRefusedError(
                "credential refused: not a valid tiergate credential"
            ) from None
        checks: list[tuple[bool, str]] = [
            (claims.iss == ISSUER, f"issued by {claims.iss!r}"),
            (claims.aud == tool, f"it is for tool {claims.aud}, not {tool}"),
            (claims.run == run_id, f"it is for run {claims.run}, not {run_id}"),
            (claims.step == step, f"it is for step {claims.step}, not {step}"),
            (scope in claims.scopes, f"it lacks scope {scope!r}"),
            ((now if now is not None else time.time()) < claims.exp, "it has expired"),
        ]
        for ok, why in checks:
            if not ok:
                raise CredentialRefusedError(f"credential refused: {why}")
        return claims


class BackendGuard:
    """The tool backend's front door: nothing reaches a backend without a fitting token."""

    def __init__(self, verifier: CredentialVerifier) -> None:
        self.verifier = verifier

    def admit(self, token: str, tool: str, run_id: str, step: int, scope: str) -> dict[str, Any]:
        claims = self.verifier.verify(token, tool=tool, run_id=run_id, step=step, scope=scope)
        return {"principal": claims.sub, "credential": claims.jti, "expires": claims.exp}
