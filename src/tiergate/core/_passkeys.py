"""Passkey answers: a WebAuthn assertion over an answer, verified from the registry alone.

A web approval is signed by the approver's passkey, not by a key the server holds. The
assertion's challenge is the SHA-256 of the answer's signing message
(`ApprovalRequest.signing_message`), so the assertion binds every field the Ed25519
signature of a CLI answer binds. What verifies it is only what the administrator endorsed
into the registry entry (`Passkey`: the credential's COSE public key, its relying-party id
and origin): the workflow, the tool runner and `tiergate approvals audit --history` all
check it from the registry snapshot the run pinned, with no server secret.

The authenticator's signature counter is not checked (it needs state outside the history,
and many passkeys keep it at zero); replay is stopped by the challenge instead, which names
one execution, step, wait and decision. User verification (PIN or biometric) is required.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

_B64URL = Field(min_length=1, max_length=4096, pattern=r"^[A-Za-z0-9_-]+$")


def b64url(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn's JSON encodings use."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def challenge_for(message: bytes) -> bytes:
    """The WebAuthn challenge that signs ``message``: its SHA-256 (32 bytes)."""
    return hashlib.sha256(message).digest()


class Passkey(BaseModel):
    """One approver's WebAuthn credential, as the administrator endorsed it.

    Attributes:
        credential_id: The credential's id, base64url.
        public_key: The credential's COSE public key, base64url.
        rp_id: The relying-party id it was made for (the page's host name).
        origin: The page's origin the browser reported (``https://approvals.example.com``).
        created_at: When it was enrolled (ISO 8601).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    credential_id: Annotated[str, _B64URL]
    public_key: Annotated[str, _B64URL]
    rp_id: Annotated[str, Field(min_length=1, max_length=253)]
    origin: Annotated[str, Field(min_length=1, max_length=300)]
    created_at: str

    @property
    def key_id(self) -> str:
        """A short fingerprint of the public key, shown to the approver and the administrator
        so they can compare it before the administrator endorses it."""
        return "passkey:" + hashlib.sha256(from_b64url(self.public_key)).hexdigest()[:16]


class PasskeyAssertion(BaseModel):
    """What the browser returned for ``navigator.credentials.get``, all base64url."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    credential_id: Annotated[str, _B64URL]
    authenticator_data: Annotated[str, _B64URL]
    client_data_json: Annotated[str, _B64URL]
    signature: Annotated[str, _B64URL]
    user_handle: Annotated[str, Field(max_length=200)] = ""


def verify_assertion(assertion: PasskeyAssertion, passkey: Passkey, message: bytes) -> bool:
    """True when ``assertion`` is ``passkey``'s, made with user verification on the origin
    it was enrolled for, over the challenge of ``message``."""
    # Imported here: the library is only needed where an answer is verified, and it costs
    # the CLI's every start-up otherwise.
    from webauthn import verify_authentication_response
    from webauthn.helpers.exceptions import WebAuthnException
    from webauthn.helpers.structs import AuthenticationCredential, AuthenticatorAssertionResponse

    if assertion.credential_id != passkey.credential_id:
        return False
    try:
        credential = AuthenticationCredential(
            id=assertion.credential_id,
            raw_id=from_b64url(assertion.credential_id),
            response=AuthenticatorAssertionResponse(
                client_data_json=from_b64url(assertion.client_data_json),
                authenticator_data=from_b64url(assertion.authenticator_data),
                signature=from_b64url(assertion.signature),
                user_handle=from_b64url(assertion.user_handle) if assertion.user_handle else None,
            ),
        )
        verify_authentication_response(
            credential=credential,
            expected_challenge=challenge_for(message),
            expected_rp_id=passkey.rp_id,
            expected_origin=passkey.origin,
            credential_public_key=from_b64url(passkey.public_key),
            credential_current_sign_count=0,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return False
    return True
