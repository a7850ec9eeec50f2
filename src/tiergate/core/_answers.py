"""Approvers' answers: what an approver signs, the registry a run pins, and verification.

An approval is an Ed25519 signature over the canonical JSON of every field that matters:
the execution (workflow id and its first run id), the step and the wait's nonce, the digest
of the action the approver saw, the decision, the justification, any edited arguments, the
expiry and the channel. An answer copied from one execution's history therefore approves
nothing in another execution, nor in another wait of the same one. Someone who can reach the Temporal frontend but
holds no registered private key cannot produce one, and anyone holding the run's history
can re-verify it with the public keys of the registry snapshot the run pinned. Signing
(with a private key) is the approver's side, in `tiergate.approvals`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import unicodedata
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tiergate.core._digest import canonical_json
from tiergate.core._passkeys import Passkey, PasskeyAssertion, verify_assertion


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    DENY = "deny"


class ApprovalRequest(BaseModel):
    """An approver's answer to one pending action, as sent in the `approval` update.

    Attributes:
        run_id: The workflow id of the run.
        first_run_id: The run id of the execution's first run (kept across continue-as-new):
            together with ``run_id`` it names one execution, not a reused workflow id.
        step: The step waiting for approval.
        nonce: The wait's nonce, as the pending action shows it: one per wait.
        action_digest: Call digest of the pending action the approver reviewed.
        decision: approve or deny.
        approver: Registered approver name; their key must verify ``signature``.
        justification: Why (mandatory for denies and for tier-4 approvals).
        edited_arguments: Approve a changed call instead (it is gated again).
        expires_at: After this instant the signed answer is no longer valid.
        via: The channel that carried it: cli, web, demo or api.
        signature: base64 Ed25519 signature over `signing_message()` (a CLI or API answer).
        passkey: Instead of ``signature``, a WebAuthn assertion whose challenge is the
            SHA-256 of `signing_message()` (a web answer; `tiergate.core.passkeys`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: Annotated[str, Field(min_length=1, max_length=400)]
    first_run_id: Annotated[str, Field(min_length=1, max_length=100)]
    step: Annotated[int, Field(ge=1)]
    nonce: Annotated[str, Field(min_length=8, max_length=100)]
    action_digest: Annotated[str, Field(min_length=64, max_length=64)]
    decision: ApprovalDecision
    approver: Annotated[str, Field(min_length=1, max_length=100)]
    justification: Annotated[str, Field(max_length=2000)] = ""
    edited_arguments: dict[str, Any] | None = None
    expires_at: datetime
    via: Literal["cli", "web", "demo", "api"] = "cli"
    signature: Annotated[str, Field(max_length=200)] = ""
    passkey: PasskeyAssertion | None = None

    @model_validator(mode="after")
    def _one_proof(self) -> ApprovalRequest:
        if self.signature and self.passkey is not None:
            raise ValueError("an answer carries a signature or a passkey assertion, not both")
        return self

    def signing_message(self) -> bytes:
        """What is signed: every field but the proof (``signature`` or ``passkey``)."""
        body = self.model_dump(mode="json", exclude={"signature", "passkey"})
        return f"tiergate-approval-v2\n{canonical_json(body)}".encode()

    @property
    def proved(self) -> bool:
        """Whether the answer carries a proof at all (verified by `verified_key`)."""
        return bool(self.signature) or self.passkey is not None

    def effective_digest(self, digest_of: Callable[[dict[str, Any]], str | None]) -> str | None:
        """The digest of the call this answer approves: the edit's (by ``digest_of``) when
        it edits, else the action it was signed for."""
        if self.edited_arguments is None:
            return self.action_digest
        return digest_of(self.edited_arguments)


def person(name: str) -> str:
    """The person a name stands for: NFKC-normalized and case-folded, so ``alice``,
    ``Alice`` and ``ａｌｉｃｅ`` are one approver, counted once and registered once."""
    return unicodedata.normalize("NFKC", name).casefold()


def key_id(public_key: str) -> str:
    """A short fingerprint of a public key, recorded with every verified approval."""
    return "ed25519:" + hashlib.sha256(base64.b64decode(public_key)).hexdigest()[:16]


def verified_key(request: ApprovalRequest, approver: Approver) -> str | None:
    """The key of ``approver``'s that proves ``request``: their Ed25519 key's id for a
    signed answer, the passkey's for an assertion; None when nothing of theirs verifies it.
    The registry entry is all it needs, so a run's history alone re-verifies every answer."""
    message = request.signing_message()
    if request.passkey is not None:
        for passkey in approver.passkeys:
            if verify_assertion(request.passkey, passkey, message):
                return passkey.key_id
        return None
    if approver.public_key and verify_signature(message, request.signature, approver.public_key):
        return approver.key_id
    return None


def proof_of(request: ApprovalRequest) -> str:
    """How ``request`` is proved, for messages: ``ed25519 signature`` or ``passkey assertion``."""
    return "passkey assertion" if request.passkey is not None else "ed25519 signature"


def verify_signature(message: bytes, signature: str, public_key: str) -> bool:
    """True when ``signature`` (base64 Ed25519) is ``public_key``'s over ``message``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


class Endorsement(BaseModel):
    """An administrator's signature over one registry entry, as it stands.

    Attributes:
        by: Key id of the administrator key that signed.
        at: When (ISO 8601).
        signature: base64 Ed25519 over `Approver.endorsement_message` for its registry.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    by: str
    at: str
    signature: str


class Approver(BaseModel):
    """One registered approver (or operator: the operators' registry holds the same entries).

    Attributes:
        name: Unique approver id (also their Cedar principal, `Approver::"name"`).
        roles: Roles approver policies test, e.g. ``support_lead``.
        public_key: base64 raw Ed25519 public key, for answers from the CLI; empty for an
            approver who answers on the web page only.
        key_id: Fingerprint of ``public_key`` (empty with it).
        passkeys: WebAuthn credentials for answers on the web page.
        changed_at: When the administrator endorsed this state of the entry (signed with
            it, unlike the endorsement's own ``at``): a host that saw a newer state takes no
            older one, so a registry file rolled back cannot re-activate a revoked key.
        demo_key: The Ed25519 key pair was made on the tiergate host (the demo's and dev's
            labeled demo approvers); a real approver's private key never is.
        active: False once revoked; a revoked approver's signatures are refused.
        endorsement: An administrator's signature over this entry; workers take no entry
            without a valid one by a key they are configured to trust.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    roles: list[str]
    public_key: str = ""
    key_id: str = ""
    passkeys: list[Passkey] = Field(default_factory=list)
    demo_key: bool = False
    changed_at: str = ""
    active: bool = True
    created_at: str
    revoked_at: str | None = None
    endorsement: Endorsement | None = None

    def endorsement_message(self, registry: str) -> bytes:
        """What an administrator signs: every field but the endorsement, and which
        registry (``approvers`` or ``operators``) the entry belongs to."""
        body = self.model_dump(mode="json", exclude={"endorsement"})
        # Fields added after v1 are left out while they hold their default, so an entry
        # endorsed before they existed still verifies.
        for field, default in (("passkeys", []), ("demo_key", False), ("changed_at", "")):
            if body.get(field) == default:
                body.pop(field, None)
        return f"tiergate-registry-v1\n{registry}\n{canonical_json(body)}".encode()

    def endorsed_by(self, admins: list[str], registry: str) -> bool:
        """Whether one of ``admins`` (base64 public keys) endorsed this entry as it stands."""
        endorsement = self.endorsement
        if endorsement is None:
            return False
        message = self.endorsement_message(registry)
        return any(
            key_id(admin) == endorsement.by
            and verify_signature(message, endorsement.signature, admin)
            for admin in admins
        )


class RegistrySnapshot(BaseModel):
    """The registry as a run saw it; ``version`` is the sha256 of its canonical JSON.

    Guaranteed: no two entries are one person (`person`) and no public key or passkey
    belongs to two entries, so distinct names in a wait are distinct keys and distinct people.
    """

    model_config = ConfigDict(extra="forbid")

    approvers: dict[str, Approver] = Field(default_factory=dict)
    version: str = ""

    @model_validator(mode="after")
    def _one_entry_per_person_and_key(self) -> RegistrySnapshot:
        people: dict[str, str] = {}
        keys: dict[str, str] = {}
        for name, entry in self.approvers.items():
            if entry.name != name:
                raise ValueError(f"registry entry {name!r} names {entry.name!r}")
            if (other := people.setdefault(person(name), name)) != name:
                raise ValueError(f"approvers {other!r} and {name!r} are one name once case-folded")
            held = [entry.public_key] if entry.public_key else []
            held += [p.public_key for p in entry.passkeys]
            held += [f"credential:{p.credential_id}" for p in entry.passkeys]
            for key in held:
                if (other := keys.setdefault(key, name)) != name:
                    raise ValueError(f"approvers {other!r} and {name!r} share one key")
        return self

    def endorsed(self, admins: list[str], registry: str) -> RegistrySnapshot:
        """Only the entries one of ``admins`` endorsed: what a worker trusts."""
        return RegistrySnapshot.of(
            {n: a for n, a in self.approvers.items() if a.endorsed_by(admins, registry)}
        )

    @classmethod
    def of(cls, approvers: dict[str, Approver]) -> RegistrySnapshot:
        canonical = json.dumps(
            {k: v.model_dump() for k, v in sorted(approvers.items())}, sort_keys=True
        )
        return cls(
            approvers=approvers, version="sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
        )
