"""A software passkey for tests that speak HTTP without a browser.

It produces what a platform authenticator does (CTAP2 authenticator data, a "none"
attestation, ES256 assertions), so the page and the workflow verify it with the same WebAuthn
library as any passkey. The browser flows are tested with Chromium's own virtual
authenticator (tests/test_web_passkeys.py); this one serves route and property tests.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tiergate.core import ApprovalRequest, Passkey, PasskeyAssertion, b64url, challenge_for

_UP, _UV, _AT = 0x01, 0x04, 0x40


@dataclass
class SoftPasskey:
    """One credential: an ES256 key pair and its id, for ``origin``."""

    origin: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    user_verified: bool = True

    @property
    def rp_id(self) -> str:
        return self.origin.split("://", 1)[1].split(":", 1)[0]

    def _cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        x, y = numbers.x.to_bytes(32, "big"), numbers.y.to_bytes(32, "big")
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: x, -3: y})

    def _auth_data(self, flags: int, attested: bytes = b"") -> bytes:
        if self.user_verified:
            flags |= _UV
        rp_hash = hashlib.sha256(self.rp_id.encode()).digest()
        return rp_hash + bytes([flags | _UP]) + struct.pack(">I", 0) + attested

    def _client_data(self, kind: str, challenge: bytes) -> bytes:
        body = {"type": kind, "challenge": b64url(challenge), "origin": self.origin}
        return json.dumps({**body, "crossOrigin": False}).encode()

    def passkey(self) -> Passkey:
        """The public half, as the administrator endorses it."""
        return Passkey(
            credential_id=b64url(self.credential_id),
            public_key=b64url(self._cose()),
            rp_id=self.rp_id,
            origin=self.origin,
            created_at=datetime.now(UTC).isoformat(),
        )

    def registration(self, challenge: bytes) -> dict[str, Any]:
        """The browser's ``navigator.credentials.create`` result, as JSON."""
        attested = (
            bytes(16)
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose()
        )
        auth_data = self._auth_data(_AT, attested)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        credential = b64url(self.credential_id)
        return {
            "id": credential,
            "rawId": credential,
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(self._client_data("webauthn.create", challenge)),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        }

    def assert_challenge(self, challenge: bytes) -> PasskeyAssertion:
        """An assertion over ``challenge`` (``navigator.credentials.get``)."""
        auth_data = self._auth_data(0)
        client_data = self._client_data("webauthn.get", challenge)
        signed = auth_data + hashlib.sha256(client_data).digest()
        signature = self.key.sign(signed, ec.ECDSA(hashes.SHA256()))
        return PasskeyAssertion(
            credential_id=b64url(self.credential_id),
            authenticator_data=b64url(auth_data),
            client_data_json=b64url(client_data),
            signature=b64url(signature),
        )

    def sign(self, request: ApprovalRequest) -> ApprovalRequest:
        """``request`` proved by this passkey, as the page would send it."""
        assertion = self.assert_challenge(challenge_for(request.signing_message()))
        return request.model_copy(update={"passkey": assertion, "signature": ""})
