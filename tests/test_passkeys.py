"""Passkey answers, pure: what a WebAuthn assertion over an answer binds, and what it does not
let through (other fields, origins, credentials, unverified users, a shared passkey)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from tests.passkeys import SoftPasskey
from tests.test_approval import NOW, ROLES, held, refund, refund_context, registry
from tiergate.core import (
    ApprovalContext,
    ApprovalDecision,
    ApprovalRequest,
    Approver,
    PendingAction,
    RegistrySnapshot,
    b64url,
    record_for,
    refusal_for,
    verified_key,
)

ORIGIN = "https://approvals.example.com"
PASSKEYS = {name: SoftPasskey(ORIGIN) for name in ("lead", "p1", "p2")}


def with_passkeys() -> RegistrySnapshot:
    """The test registry, where lead, p1 and p2 hold a passkey and no Ed25519 key."""
    entries = dict(registry().approvers)
    for name, soft in PASSKEYS.items():
        entries[name] = Approver(
            name=name, roles=ROLES[name], passkeys=[soft.passkey()], created_at=NOW.isoformat()
        )
    return RegistrySnapshot.of(entries)


@pytest.fixture(scope="module")
def ctx() -> ApprovalContext:
    return refund_context(with_passkeys())


def unsigned(pending: PendingAction, who: str, **fields: Any) -> ApprovalRequest:
    return ApprovalRequest(
        run_id="run-1",
        first_run_id=pending.first_run_id,
        step=pending.step,
        nonce=pending.nonce,
        action_digest=pending.call_digest,
        decision=ApprovalDecision(fields.pop("decision", "approve")),
        approver=who,
        via="web",
        expires_at=NOW + timedelta(minutes=10),
        **fields,
    )


def test_a_passkey_answer_is_accepted_and_recorded_with_its_key(ctx: ApprovalContext) -> None:
    pending, wait = refund(ctx)
    request = PASSKEYS["lead"].sign(unsigned(pending, "lead", justification="ok"))
    assert refusal_for(request, pending, wait, ctx, NOW) is None
    record = record_for(request, pending, ctx, NOW)
    entry = ctx.registry.approvers["lead"]
    assert record.key_id == entry.passkeys[0].key_id
    assert record.key_id.startswith("passkey:")
    assert record.verification.startswith("passkey assertion verified with passkey:")


def test_the_assertion_binds_every_field(ctx: ApprovalContext) -> None:
    pending, _ = refund(ctx)
    request = PASSKEYS["lead"].sign(unsigned(pending, "lead"))
    entry = ctx.registry.approvers["lead"]
    assert verified_key(request, entry) == entry.passkeys[0].key_id
    for change in (
        {"step": 4},
        {"first_run_id": "another"},
        {"nonce": "another-wait-nonce"},
        {"decision": ApprovalDecision.DENY},
        {"justification": "changed"},
        {"via": "cli"},
        {"expires_at": NOW + timedelta(days=365)},
        {"edited_arguments": {"order_id": "ORD-1", "amount_usd": "990"}},
        {"action_digest": "b" * 64},
        {"approver": "p1"},
    ):
        assert verified_key(request.model_copy(update=change), entry) is None, change


def test_what_the_passkey_does_not_prove(ctx: ApprovalContext) -> None:
    pending, wait = refund(ctx)
    lead = ctx.registry.approvers["lead"]
    # Another approver's passkey signing as lead.
    forged = PASSKEYS["p1"].sign(unsigned(pending, "lead"))
    assert verified_key(forged, lead) is None
    refusal = refusal_for(forged, pending, wait, ctx, NOW)
    assert refusal is not None
    assert refusal.code == "unknown_key"
    # Another key presenting lead's credential id.
    impostor = SoftPasskey(ORIGIN, credential_id=PASSKEYS["lead"].credential_id)
    refusal = refusal_for(impostor.sign(unsigned(pending, "lead")), pending, wait, ctx, NOW)
    assert refusal is not None
    assert refusal.code == "bad_signature"
    assert "passkey assertion does not verify" in refusal.reason
    # The same authenticator key, but the browser was on another origin (a look-alike page).
    phished = SoftPasskey("https://approvals.example.com.evil.test")
    phished.key, phished.credential_id = PASSKEYS["lead"].key, PASSKEYS["lead"].credential_id
    assert verified_key(phished.sign(unsigned(pending, "lead")), lead) is None
    # No user verification (a touch without PIN or biometric).
    lazy = SoftPasskey(ORIGIN, user_verified=False)
    lazy.key, lazy.credential_id = PASSKEYS["lead"].key, PASSKEYS["lead"].credential_id
    assert verified_key(lazy.sign(unsigned(pending, "lead")), lead) is None
    # A tampered signature.
    good = PASSKEYS["lead"].sign(unsigned(pending, "lead"))
    assert good.passkey is not None
    bad = good.passkey.model_copy(update={"signature": b64url(b"\x30\x06\x02\x01\x01\x02\x01\x01")})
    assert verified_key(good.model_copy(update={"passkey": bad}), lead) is None
    # An Ed25519-only entry verifies no passkey answer, and a passkey entry no empty one.
    assert verified_key(good, ctx.registry.approvers["fin"]) is None
    assert refusal_for(unsigned(pending, "lead"), pending, wait, ctx, NOW) is not None


def test_an_answer_carries_one_proof(ctx: ApprovalContext) -> None:
    pending, _ = refund(ctx)
    signed = PASSKEYS["lead"].sign(unsigned(pending, "lead"))
    with pytest.raises(ValidationError, match="not both"):
        ApprovalRequest.model_validate({**signed.model_dump(), "signature": "c2ln"})


def test_a_passkey_belongs_to_one_approver() -> None:
    entries = dict(with_passkeys().approvers)
    shared = entries["lead"].passkeys[0]
    entries["p2"] = entries["p2"].model_copy(update={"passkeys": [shared]})
    with pytest.raises(ValueError, match="share one key"):
        RegistrySnapshot.of(entries)


def test_dual_control_needs_two_passkeys(ctx: ApprovalContext) -> None:
    pending, wait = held(ctx, "users.delete_data", user_id="U-1", justification="asked")
    first = PASSKEYS["p1"].sign(unsigned(pending, "p1", justification="verified"))
    assert refusal_for(first, pending, wait, ctx, NOW) is None
    wait.approvals.append(record_for(first, pending, ctx, NOW))
    # p1 again, with the same passkey: once per wait, whatever they sign.
    again = PASSKEYS["p1"].sign(unsigned(pending, "p1", justification="me again"))
    refusal = refusal_for(again, pending, wait, ctx, NOW)
    assert refusal is not None
    assert refusal.code == "duplicate_approver"
