"""The approval state machine, pure: every refusal reason, and what counts as approved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tiergate.approvals import generate_key, public_key_text, sign
from tiergate.config import PACKAGED_AGENTS, compile_agent, parse_agent_yaml
from tiergate.core import (
    ApprovalContext,
    ApprovalDecision,
    ApprovalRequest,
    ApprovalWait,
    Approver,
    ApproverGate,
    Gate,
    PendingAction,
    RegistrySnapshot,
    ToolCallProposal,
    Verdict,
    apply_answer,
    key_id,
    record_for,
    refusal_for,
    verified_key,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.sensitive import pii_kinds

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
KEYS: dict[str, Ed25519PrivateKey] = {
    n: generate_key() for n in ("lead", "fin", "p1", "p2", "gone", "svc")
}
ROLES = {
    "lead": ["support_lead"],
    "fin": ["finance"],
    "p1": ["privacy_officer"],
    "p2": ["privacy_officer"],
    "gone": ["finance"],
    "svc": ["finance"],
}


def registry() -> RegistrySnapshot:
    approvers = {
        name: Approver(
            name=name,
            roles=ROLES[name],
            public_key=public_key_text(key),
            key_id=key_id(public_key_text(key)),
            active=name != "gone",
            created_at=NOW.isoformat(),
        )
        for name, key in KEYS.items()
    }
    return RegistrySnapshot.of(approvers)


def refund_context(approvers: RegistrySnapshot) -> ApprovalContext:
    """The support refund agent's approval context for run ``run-1``, with ``approvers``."""
    path = PACKAGED_AGENTS / "support_refund_agent.yaml"
    bundle = compile_agent(parse_agent_yaml(path.read_text(), str(path)), path, SUPPORT_TOOLS.specs)
    return ApprovalContext(
        run_id="run-1",
        first_run_id="first-1",
        agent=bundle.config.name,
        registry=approvers,
        approvers=ApproverGate(bundle.approver_policy, bundle.tools),
        gate=Gate.of(bundle, detect=pii_kinds),
        answer_ttl=timedelta(minutes=15),
    )


@pytest.fixture(scope="module")
def ctx() -> ApprovalContext:
    return refund_context(registry())


def held(ctx: ApprovalContext, tool: str, **arguments: Any) -> tuple[PendingAction, ApprovalWait]:
    decision = ctx.gate.decide(ToolCallProposal(tool=tool, arguments=arguments), step=3)
    assert decision.verdict in (Verdict.NEEDS_APPROVAL, Verdict.NEEDS_DUAL_APPROVAL)
    assert decision.arguments is not None
    assert decision.call_digest is not None
    pending = PendingAction(
        step=3,
        tool=tool,
        arguments=decision.arguments,
        call_digest=decision.call_digest,
        reason="r",
        tier=decision.tier or 0,
        verdict=decision.verdict,
        policy_ids=decision.policy_ids,
        policy_version=decision.policy_version,
        requester="svc",
        run_id="run-1",
        first_run_id="first-1",
        nonce="nonce-of-the-wait",
        agent=ctx.agent,
        required_approvals=2 if (decision.tier or 0) >= 4 else 1,
    )
    return pending, ApprovalWait(original=decision, required=pending.required_approvals)


def refund(ctx: ApprovalContext, amount: str = "400") -> tuple[PendingAction, ApprovalWait]:
    return held(
        ctx, "payments.issue_refund", order_id="ORD-1", amount_usd=amount, reason_code="damaged"
    )


def answer(
    pending: PendingAction,
    who: str,
    decision: str = "approve",
    signer: str | None = None,
    **fields: Any,
) -> ApprovalRequest:
    request = ApprovalRequest(
        run_id=fields.pop("run_id", "run-1"),
        first_run_id=fields.pop("first_run_id", pending.first_run_id),
        step=fields.pop("step", pending.step),
        nonce=fields.pop("nonce", pending.nonce),
        action_digest=fields.pop("action_digest", pending.call_digest),
        decision=ApprovalDecision(decision),
        approver=who,
        expires_at=fields.pop("expires_at", NOW + timedelta(minutes=10)),
        **fields,
    )
    return sign(request, KEYS[signer or who])


def refund_edited_to(pending: PendingAction, who: str, amount: str) -> ApprovalRequest:
    """``who``'s approval of the pending refund, edited to ``amount``."""
    edit = {"order_id": "ORD-1", "amount_usd": amount, "reason_code": "damaged"}
    return answer(pending, who, edited_arguments=edit)


def code(
    ctx: ApprovalContext,
    request: ApprovalRequest,
    pending: PendingAction | None,
    wait: ApprovalWait | None,
) -> str | None:
    refusal = refusal_for(request, pending, wait, ctx, NOW)
    return refusal.code if refusal else None


class TestAccepted:
    def test_authorized_lead_approves_a_400_refund(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        request = answer(pending, "lead", justification="ok")
        assert code(ctx, request, pending, wait) is None
        record = record_for(request, pending, ctx, NOW)
        assert record.verified
        assert record.key_id == ctx.registry.approvers["lead"].key_id
        assert record.approver_policy_ids == ["support_leads_approve_refunds_up_to_500"]
        assert verified_key(request, ctx.registry.approvers["lead"]) == record.key_id

    def test_edit_to_a_smaller_refund_is_accepted(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        request = answer(
            pending,
            "lead",
            edited_arguments={"order_id": "ORD-1", "amount_usd": "45", "reason_code": "damaged"},
        )
        assert code(ctx, request, pending, wait) is None


class TestRefused:
    @pytest.mark.parametrize(
        ("fields", "expected"),
        [
            ({"run_id": "run-2"}, "wrong_run"),
            # The same workflow id, started again: an answer copied from the old history.
            ({"first_run_id": "first-0"}, "wrong_execution"),
            ({"step": 4}, "wrong_step"),
            ({"nonce": "an-earlier-wait"}, "wrong_wait"),
            ({"action_digest": "0" * 64}, "action_changed"),
            ({"expires_at": NOW - timedelta(seconds=1)}, "approval_expired"),
            # The signer does not pick the lifetime: a hundred-year answer is refused.
            ({"expires_at": NOW + timedelta(days=36_500)}, "lifetime_too_long"),
            ({"expires_at": NOW + timedelta(minutes=16)}, "lifetime_too_long"),
        ],
    )
    def test_misaddressed_or_stale(
        self, ctx: ApprovalContext, fields: dict[str, Any], expected: str
    ) -> None:
        pending, wait = refund(ctx)
        assert code(ctx, answer(pending, "lead", **fields), pending, wait) == expected

    def test_not_waiting(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        assert code(ctx, answer(pending, "lead"), None, None) == "not_waiting"
        wait.status = "approved"
        assert code(ctx, answer(pending, "lead"), pending, wait) == "not_waiting"

    def test_unknown_approver(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        request = answer(pending, "lead").model_copy(update={"approver": "mallory"})
        assert code(ctx, request, pending, wait) == "unknown_approver"

    def test_revoked_key(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        assert code(ctx, answer(pending, "gone"), pending, wait) == "key_revoked"

    def test_missing_and_bad_signatures(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        unsigned = answer(pending, "lead").model_copy(update={"signature": ""})
        assert code(ctx, unsigned, pending, wait) == "missing_signature"
        tampered = answer(pending, "lead").model_copy(
            update={"justification": "changed after signing"}
        )
        assert code(ctx, tampered, pending, wait) == "bad_signature"

    def test_forged_with_an_unregistered_key(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        forged = sign(answer(pending, "lead").model_copy(update={"signature": ""}), generate_key())
        assert code(ctx, forged, pending, wait) == "bad_signature"

    def test_requester_cannot_approve(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        assert code(ctx, answer(pending, "svc"), pending, wait) == "self_approval"

    @pytest.mark.parametrize("requester", ["SVC", "Svc", "\uff53\uff56\uff43"])
    def test_requester_in_another_case_or_width_is_still_the_requester(
        self, ctx: ApprovalContext, requester: str
    ) -> None:
        pending, wait = refund(ctx)
        pending = pending.model_copy(update={"requester": requester})
        assert code(ctx, answer(pending, "svc"), pending, wait) == "self_approval"

    def test_an_editor_cannot_approve_their_own_edit_again(self, ctx: ApprovalContext) -> None:
        """Dual control: one person who edits the action has answered it, once."""
        pending, wait = held(ctx, "users.delete_data", user_id="U-1", justification="asked")
        edit = answer(
            pending,
            "p1",
            justification="only this user",
            edited_arguments={"user_id": "U-2", "justification": "asked"},
        )
        assert code(ctx, edit, pending, wait) is None
        record = record_for(edit, pending, ctx, NOW)
        pending, _ = apply_answer(edit, record, pending, wait, ctx, NOW)
        assert pending.approved_by == ["p1"]
        again = answer(pending, "p1", justification="approving my edit")
        assert code(ctx, again, pending, wait) == "duplicate_approver"
        assert code(ctx, answer(pending, "p2", justification="second"), pending, wait) is None

    def test_the_approver_policy_judges_the_edited_call(self, ctx: ApprovalContext) -> None:
        """A lead allowed up to $500 cannot edit a $400 refund to $990 and approve it."""
        pending, wait = refund(ctx)
        raised = refund_edited_to(pending, "lead", "990")
        assert code(ctx, raised, pending, wait) == "not_authorized"
        assert code(ctx, answer(pending, "lead"), pending, wait) is None

    def test_duplicate_approver(self, ctx: ApprovalContext) -> None:
        pending, wait = held(ctx, "users.delete_data", user_id="U-1", justification="asked")
        first = answer(pending, "p1", justification="verified identity")
        wait.approvals.append(record_for(first, pending, ctx, NOW))
        pending.approved_by.append("p1")
        assert (
            code(ctx, answer(pending, "p1", justification="again"), pending, wait)
            == "duplicate_approver"
        )
        assert code(ctx, answer(pending, "p2", justification="second"), pending, wait) is None

    def test_without_the_role_or_over_the_limit(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        assert code(ctx, answer(pending, "p1"), pending, wait) == "not_authorized"
        big, big_wait = refund(ctx, "600")
        assert code(ctx, answer(big, "lead"), big, big_wait) == "not_authorized"
        assert code(ctx, answer(big, "fin"), big, big_wait) is None

    def test_deny_needs_a_reason(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        assert code(ctx, answer(pending, "lead", "deny"), pending, wait) == "reason_required"
        assert (
            code(ctx, answer(pending, "lead", "deny", justification="fraud"), pending, wait) is None
        )

    def test_tier_four_approval_needs_a_justification(self, ctx: ApprovalContext) -> None:
        pending, wait = held(ctx, "users.delete_data", user_id="U-1", justification="asked")
        assert code(ctx, answer(pending, "p1"), pending, wait) == "justification_required"

    def test_edits_are_gated_again(self, ctx: ApprovalContext) -> None:
        pending, wait = refund(ctx)
        too_big = refund_edited_to(pending, "lead", "5000")
        assert code(ctx, too_big, pending, wait) == "edit_denied"
        malformed = answer(pending, "lead", edited_arguments={"order_id": "nope"})
        assert code(ctx, malformed, pending, wait) == "edit_denied"
        on_deny = answer(
            pending, "lead", "deny", justification="x", edited_arguments={"order_id": "ORD-1"}
        )
        assert code(ctx, on_deny, pending, wait) == "edit_on_deny"


def test_signature_covers_every_field() -> None:
    key = generate_key()
    request = sign(
        ApprovalRequest(
            run_id="r",
            first_run_id="f",
            step=1,
            nonce="n" * 16,
            action_digest="a" * 64,
            decision=ApprovalDecision.APPROVE,
            approver="x",
            expires_at=NOW,
        ),
        key,
    )
    public = public_key_text(key)
    entry = Approver(name="x", roles=["r"], public_key=public, key_id=key_id(public), created_at="")
    assert verified_key(request, entry) == entry.key_id
    for change in (
        {"step": 2},
        {"first_run_id": "g"},
        {"nonce": "m" * 16},
        {"decision": ApprovalDecision.DENY},
        {"via": "web"},
        {"expires_at": NOW + timedelta(days=1)},
        {"edited_arguments": {"a": 1}},
        {"action_digest": "b" * 64},
    ):
        assert verified_key(request.model_copy(update=change), entry) is None, change


def test_a_registry_holds_one_entry_per_person_and_per_key() -> None:
    entries = registry().approvers
    lead = entries["lead"]
    with pytest.raises(ValueError, match="one name once case-folded"):
        RegistrySnapshot.of({**entries, "Lead": lead.model_copy(update={"name": "Lead"})})
    twin = lead.model_copy(update={"name": "twin"})
    with pytest.raises(ValueError, match="share one key"):
        RegistrySnapshot.of({**entries, "twin": twin})
