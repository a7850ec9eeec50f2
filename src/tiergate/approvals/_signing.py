"""Signed approvals: what an approver signs, and how anyone verifies it later.

An approval is an Ed25519 signature over the canonical JSON of every field that matters:
run, step, the digest of the action the approver saw, the decision, the justification, any
edited arguments, the expiry and the channel. Someone who can reach the Temporal frontend but
holds no registered private key cannot produce one, and anyone holding the run's history
can re-verify it.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from tiergate.digest import canonical_json


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class ApprovalRequest(BaseModel):
    """An approver's answer to one pending action, as sent in the `approval` update.

    Attributes:
        run_id: The workflow id of the run.
        step: The step waiting for approval.
        action_digest: Call digest of the pending action the approver reviewed.
        decision: approve or deny.
        approver: Registered approver name; their key must verify ``signature``.
        justification: Why (mandatory for denies and for tier-4 approvals).
        edited_arguments: Approve a changed call instead (it is gated again).
        expires_at: After this instant the signed answer is no longer valid.
        via: The channel that carried it: cli, web, demo or api.
        signature: base64 Ed25519 signature over `signing_message()`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: Annotated[str, Field(min_length=1, max_length=400)]
    step: Annotated[int, Field(ge=1)]
    action_digest: Annotated[str, Field(min_length=64, max_length=64)]
    decision: ApprovalDecision
    approver: Annotated[str, Field(min_length=1, max_length=100)]
    justification: Annotated[str, Field(max_length=2000)] = ""
    edited_arguments: dict[str, Any] | None = None
    expires_at: datetime
    via: Literal["cli", "web", "demo", "api"] = "cli"
    signature: Annotated[str, Field(max_length=200)] = ""

    def signing_message(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"signature"})
        return f"tiergate-approval-v1\n{canonical_json(body)}".encode()


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_text(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """The raw public key, base64: what the registry stores."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return base64.b64encode(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_id(public_key: str) -> str:
    """A short fingerprint of a public key, recorded with every verified approval."""
    return "ed25519:" + hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def sign(request: ApprovalRequest, key: Ed25519PrivateKey) -> ApprovalRequest:
    signature = base64.b64encode(key.sign(request.signing_message())).decode()
    return request.model_copy(update={"signature": signature})


def verify(request: ApprovalRequest, public_key: str) -> bool:
    """True when ``request.signature`` is valid for ``public_key`` over the request's fields."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        public.verify(base64.b64decode(request.signature, validate=True), request.signing_message())
    except (InvalidSignature, ValueError):
        return False
    return True
