"""Passkeys on the page: enrollment after sign-in, and the WebAuthn options of an answer.

The page never holds a key that signs an answer. An approver enrolls a passkey (its private
key stays in their authenticator); the page keeps the public key as an enrollment that counts
once an administrator endorses it into the registry. To answer, the page prepares the unsigned
answer to exactly the pending action the approver reviewed and asks the passkey to sign the
SHA-256 of its signing message; the answer is sent with the assertion and the workflow
verifies it from the registry snapshot the run pinned (`tiergate.core.passkeys`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tiergate.approvals._enrollments import enrollment_code
from tiergate.core import ApprovalRequest, Approver, Passkey, b64url, challenge_for, from_b64url
from tiergate.web._context import WebContext
from tiergate.web._pages import page, signin_page
from tiergate.web._sessions import Session, session_of

# The WebAuthn library is imported where it is used: every `tiergate` command imports this
# package (for `approvals web`), and only the page's passkey routes need the library.

#: How long the browser gives the approver to touch their authenticator.
TIMEOUT_MS = 120_000


@dataclass(frozen=True)
class RelyingParty:
    """The page as WebAuthn sees it: its origin and host name (the RP id)."""

    origin: str
    rp_id: str

    @classmethod
    def of(cls, request: Request, web: WebContext) -> RelyingParty:
        """``TIERGATE_WEB_ORIGIN`` when set, else the origin the request came to."""
        origin = (web.settings.web_origin or f"{request.url.scheme}://{request.url.netloc}").rstrip(
            "/"
        )
        host = origin.split("://", 1)[-1].split("/", 1)[0]
        return cls(origin, host.rsplit(":", 1)[0] if not host.endswith("]") else host)


def usable(entry: Approver | None, rp: RelyingParty) -> list[Passkey]:
    """The endorsed passkeys of ``entry`` made for this page."""
    return [p for p in entry.passkeys if p.rp_id == rp.rp_id] if entry else []


def _signed_in(request: Request) -> tuple[WebContext, Session] | Response:
    session = session_of(request)
    if session is None:
        return signin_page("Sign in first.", 401)
    return request.app.state.context, session


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def passkey_page(request: Request) -> Response:
    """The approver's passkeys: endorsed ones, enrollments waiting, and the enroll button."""
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return signed
    web, session = signed
    rp = RelyingParty.of(request, web)
    entry = web.approvers().approvers.get(session.approver)
    waiting = [
        {"key_id": p.key_id, "code": enrollment_code(session.approver, p), "at": p.created_at}
        for p in web.enrollments.of(session.approver)
        if entry is None or p.credential_id not in {k.credential_id for k in entry.passkeys}
    ]
    return page(
        "passkey.html",
        session=session,
        title="Your passkey",
        endorsed=usable(entry, rp),
        waiting=waiting,
        rp_id=rp.rp_id,
    )


async def enroll_options(request: Request) -> Response:
    """WebAuthn creation options for a new passkey (the form's token checked by middleware)."""
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return _error("sign in again", 401)
    web, session = signed
    rp = RelyingParty.of(request, web)
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    entry = web.approvers().approvers.get(session.approver)
    known = usable(entry, rp) + web.enrollments.of(session.approver)
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name="tiergate approvals",
        user_name=session.approver,
        user_id=hashlib.sha256(f"tiergate-approver\n{session.approver}".encode()).digest()[:16],
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=from_b64url(p.credential_id)) for p in known
        ],
        timeout=TIMEOUT_MS,
    )
    web.sessions.start_enrolling(session, options.challenge)
    return JSONResponse({"publicKey": json.loads(options_to_json(options))})


async def enroll(request: Request) -> Response:
    """Verify the browser's new credential and keep it as an enrollment to endorse."""
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return _error("sign in again", 401)
    web, session = signed
    from webauthn import verify_registration_response
    from webauthn.helpers.exceptions import WebAuthnException

    challenge = web.sessions.take_enrolling(session)
    if challenge is None:
        return _error("start the enrollment again", 409)
    rp = RelyingParty.of(request, web)
    form = await request.form()
    try:
        made = verify_registration_response(
            credential=str(form.get("credential", "")),
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:
        return _error(f"the passkey could not be enrolled: {error}", 400)
    passkey = Passkey(
        credential_id=b64url(made.credential_id),
        public_key=b64url(made.credential_public_key),
        rp_id=rp.rp_id,
        origin=rp.origin,
        created_at=datetime.now(UTC).isoformat(),
    )
    web.enrollments.add(session.approver, passkey)
    return JSONResponse(
        {"key_id": passkey.key_id, "code": enrollment_code(session.approver, passkey)}
    )


def assertion_options(answer: ApprovalRequest, passkeys: list[Passkey], rp: RelyingParty) -> Any:
    """WebAuthn request options asking one of ``passkeys`` to sign ``answer``."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge_for(answer.signing_message()),
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=from_b64url(p.credential_id)) for p in passkeys
        ],
        user_verification=UserVerificationRequirement.REQUIRED,
        timeout=TIMEOUT_MS,
    )
    return json.loads(options_to_json(options))
