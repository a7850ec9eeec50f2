"""Agent identity and scoped, short-lived credentials for every tool call.

Each run acts as a service principal of its agent (``agent:<name>``). A tool never holds a
long-lived, broad key: for each call the worker's credential broker mints a JWT (EdDSA,
signed and checked with PyJWT) whose audience is that one tool, bound to the run and the
step, with the call's scopes, valid for minutes. The tool backend's front door
(`BackendGuard`) holds only the broker's public key and refuses any token that is not
exactly for the call in front of it: issuer, audience, not-before and expiry are checked
by the JOSE library, run, step and scopes by the guard, and a token id (``jti``) is
admitted once. The broker's private key lives in the worker (``keys/broker.key``, 0600).
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ValidationError

from tiergate.core import VerifiedCall
from tiergate.errors import CredentialRefusedError

ISSUER = "tiergate-broker"
ALGORITHM = "EdDSA"
DEFAULT_TTL_SECONDS = 300
#: Claims a credential must carry; PyJWT refuses a token without one.
REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"]


class Claims(BaseModel):
    """A credential's claims: the registered ones and tiergate's (run, step, scopes)."""

    iss: str
    sub: str
    aud: str
    run: str
    step: int
    scopes: list[str]
    iat: int
    nbf: int
    exp: int
    jti: str


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

    def mint(self, call: VerifiedCall, scopes: list[str], now: float | None = None) -> str:
        """A token for exactly ``call``: only a call the runner verified gets one, so the
        agent's principal never acts for a call that skipped the gate or its approvers."""
        issued = int(now if now is not None else time.time())
        claims = Claims(
            iss=ISSUER,
            sub=principal(call.agent),
            aud=call.tool,
            run=call.run_id,
            step=call.step,
            scopes=scopes,
            iat=issued,
            nbf=issued,
            exp=issued + self.ttl,
            jti=secrets.token_hex(16),
        )
        return jwt.encode(claims.model_dump(), self.key, algorithm=ALGORITHM)


class CredentialVerifier:
    """Checks a token against the one call it must be for; holds only the public key."""

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self.public_key = public_key
        self._seen: dict[str, int] = {}  # jti -> exp, forgotten once expired
        self._lock = threading.Lock()

    def verify(self, token: str, *, tool: str, run_id: str, step: int, scope: str) -> Claims:
        claims = self._decode(token, tool)
        checks: list[tuple[bool, str]] = [
            (claims.run == run_id, f"it is for run {claims.run}, not {run_id}"),
            (claims.step == step, f"it is for step {claims.step}, not {step}"),
            (scope in claims.scopes, f"it lacks scope {scope!r}"),
        ]
        for ok, why in checks:
            if not ok:
                raise CredentialRefusedError(f"credential refused: {why}")
        self._admit_once(claims)
        return claims

    def _decode(self, token: str, tool: str) -> Claims:
        try:
            raw = jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=tool,
                issuer=ISSUER,
                options={"require": REQUIRED_CLAIMS},
            )
            return Claims.model_validate(raw)
        except jwt.ExpiredSignatureError:
            raise CredentialRefusedError("credential refused: it has expired") from None
        except jwt.ImmatureSignatureError:
            raise CredentialRefusedError("credential refused: it is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise CredentialRefusedError(
                f"credential refused: it is for tool {_unverified(token, 'aud')}, not {tool}"
            ) from None
        except jwt.InvalidIssuerError:
            raise CredentialRefusedError(
                f"credential refused: issued by {_unverified(token, 'iss')!r}"
            ) from None
        except (jwt.InvalidTokenError, ValidationError):
            raise CredentialRefusedError(
                "credential refused: not a valid tiergate credential"
            ) from None

    def _admit_once(self, claims: Claims) -> None:
        now = int(time.time())
        with self._lock:
            for jti in [j for j, exp in self._seen.items() if exp < now]:
                del self._seen[jti]
            if claims.jti in self._seen:
                raise CredentialRefusedError("credential refused: it was used already")
            self._seen[claims.jti] = claims.exp


def _unverified(token: str, claim: str) -> Any:
    """A claim of a token already refused, read only to say why."""
    try:
        return jwt.decode(token, options={"verify_signature": False}).get(claim)
    except jwt.InvalidTokenError:
        return None


class BackendGuard:
    """The tool backend's front door: nothing reaches a backend without a fitting token."""

    def __init__(self, verifier: CredentialVerifier) -> None:
        self.verifier = verifier

    def admit(self, token: str, tool: str, run_id: str, step: int, scope: str) -> dict[str, Any]:
        claims = self.verifier.verify(token, tool=tool, run_id=run_id, step=step, scope=scope)
        return {"principal": claims.sub, "credential": claims.jti, "expires": claims.exp}
