"""Human approvals end to end on the dev server: durable waits, signed answers, dual control."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Harness, call, final, scripted
from tiergate.approvals import generate_key, sign
from tiergate.approvals.client import (
    build_request,
    decide,
    list_pending,
    one_per_run,
    pending_of,
    submit,
)
from tiergate.core import ApprovalDecision, ApprovalRequest, Outcome, PendingAction, Verdict
from tiergate.errors import ApprovalRefusedError, NotWaitingError
from tiergate.forensics import read_history, ungated_tool_calls

REFUND_400 = call(
    "payments.issue_refund", order_id="ORD-5002", amount_usd="400", reason_code="not_delivered"
)
DELETE = call("users.delete_data", user_id="U-77", justification="customer asked")


@pytest.fixture
def approvers(harness: Harness) -> Harness:
    for name, roles in {
        "lead": ["support_lead"],
        "fin": ["finance"],
        "p1": ["privacy_officer"],
        "p2": ["privacy_officer"],
        "svc": ["finance"],
    }.items():
        harness.registry.add(name, roles, demo_key=True)
    return harness


async def answer(
    h: Harness,
    run_id: str,
    who: str,
    decision: str = "approve",
    text: str = "ok",
    edit: dict[str, Any] | None = None,
) -> Any:
    return await decide(
        h.env.client, h.registry, run_id, who, ApprovalDecision(decision), text, edit
    )


class TestTierThree:
    async def test_one_approval_executes_the_refund_once(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(
                agent, input={}, requester="svc", model_overrides=scripted(REFUND_400, final())
            )
            pending = await h.pending(handle)
            assert (pending.tool, pending.tier, pending.required_approvals) == (
                "payments.issue_refund",
                3,
                1,
            )
            assert pending.arguments["amount_usd"] == "400.00"
            assert pending.requester == "svc"
            assert h.store.rows("refunds") == []
            receipt = await answer(h, handle.id, "lead", text="customer is right")
            assert (receipt.status, receipt.approved_by) == ("approved", ["lead"])
            summary = await handle.result()
        assert summary.outcome == Outcome.COMPLETED
        step = summary.steps[0]
        assert step.decision is not None
        assert (step.decision.verdict, step.decision.code) == (Verdict.ALLOW, "approved")
        assert step.approval is not None
        record = step.approval.approvals[0]
        assert (record.approver, record.verified, record.via) == ("lead", True, "cli")
        assert record.key_id == h.registry.snapshot().approvers["lead"].key_id
        assert len(h.store.rows("refunds")) == 1
        assert ungated_tool_calls(await h.history(handle.id)) == []

    async def test_approve_with_an_edit_runs_the_edited_call(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
            await h.pending(handle)
            edit = {"order_id": "ORD-5002", "amount_usd": "45", "reason_code": "goodwill"}
            await answer(h, handle.id, "lead", edit=edit)
            summary = await handle.result()
        assert [(r["amount_usd"], r["reason_code"]) for r in h.store.rows("refunds")] == [
            ("45.00", "goodwill")
        ]
        decision = summary.steps[0].decision
        assert decision is not None
        assert decision.arguments == {
            "order_id": "ORD-5002",
            "amount_usd": "45.00",
            "reason_code": "goodwill",
        }
        assert ungated_tool_calls(await h.history(handle.id)) == []

    async def test_deny_ends_the_step_with_the_reason(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(
                agent, input={}, model_overrides=scripted(REFUND_400, final("no refund"))
            )
            await h.pending(handle)
            receipt = await answer(h, handle.id, "lead", "deny", "order was delivered, photo proof")
            assert receipt.status == "denied"
            summary = await handle.result()
        decision = summary.steps[0].decision
        assert decision is not None
        assert (decision.verdict, decision.code) == (Verdict.DENY, "approval_denied")
        assert "photo proof" in decision.reason
        assert summary.outcome == Outcome.COMPLETED  # on_deny: continue — the model answered
        assert h.store.rows("refunds") == []

    async def test_deny_can_escalate_the_run(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a", approvals={"on_deny": "escalate"})
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
            await h.pending(handle)
            await answer(h, handle.id, "lead", "deny", "no")
            summary = await handle.result()
        assert summary.outcome == Outcome.ESCALATED


class TestDualControl:
    async def test_two_distinct_approvers_with_justification(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(
                agent, input={}, requester="p2", model_overrides=scripted(DELETE, final())
            )
            pending = await h.pending(handle)
            assert (pending.tier, pending.required_approvals) == (4, 2)
            with pytest.raises(ApprovalRefusedError) as refused:
                await answer(h, handle.id, "p1", text="")
            assert refused.value.code == "justification_required"
            first = await answer(h, handle.id, "p1", text="identity verified")
            assert (first.status, first.approved_by) == ("waiting", ["p1"])
            assert h.store.rows("users")[0]["deleted"] == 0
            with pytest.raises(ApprovalRefusedError) as again:
                await answer(h, handle.id, "p1", text="me again")
            assert again.value.code == "duplicate_approver"
            with pytest.raises(ApprovalRefusedError) as requester:
                await answer(h, handle.id, "p2", text="I asked for it")
            assert requester.value.code == "self_approval"
            assert (await pending_of(h.env.client, handle.id)).approved_by == ["p1"]
            h.registry.add("p3", ["privacy_officer"], demo_key=True)
            with pytest.raises(ApprovalRefusedError) as unpinned:
                await answer(h, handle.id, "p3", text="new here")
            assert unpinned.value.code == "unknown_approver"  # the registry is pinned at wait start
            summary_before = await pending_of(h.env.client, handle.id)
            assert summary_before.approved_by == ["p1"]

    async def test_any_deny_denies(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(DELETE, final()))
            await h.pending(handle)
            await answer(h, handle.id, "p1", text="fine by me")
            await answer(h, handle.id, "p2", "deny", "legal hold on this account")
            summary = await handle.result()
        assert summary.steps[0].decision is not None
        assert summary.steps[0].decision.code == "approval_denied"
        assert h.store.rows("users")[0]["deleted"] == 0


class TestRefusals:
    """Each is refused with its reason and changes nothing."""

    async def test_forged_and_misaddressed_answers(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
            pending = await h.pending(handle)
            lead_key = h.registry.private_key("lead")

            async def refused(request: ApprovalRequest) -> str:
                with pytest.raises(ApprovalRefusedError) as error:
                    await submit(h.env.client, request)
                return error.value.code

            base = build_request(pending, "lead", ApprovalDecision.APPROVE, "ok")
            assert await refused(sign(base, generate_key())) == "bad_signature"
            assert await refused(base) == "missing_signature"
            assert (
                await refused(sign(base.model_copy(update={"step": 9}), lead_key)) == "wrong_step"
            )
            assert (
                await refused(sign(base.model_copy(update={"action_digest": "f" * 64}), lead_key))
                == "action_changed"
            )
            expired = base.model_copy(update={"expires_at": base.expires_at.replace(year=2020)})
            assert await refused(sign(expired, lead_key)) == "approval_expired"
            assert (
                await refused(
                    sign(base.model_copy(update={"approver": "p1"}), h.registry.private_key("p1"))
                )
                == "not_authorized"
            )
            deny = build_request(pending, "lead", ApprovalDecision.DENY, "")
            assert await refused(sign(deny, lead_key)) == "reason_required"
            still = await pending_of(h.env.client, handle.id)
            assert still.approved_by == []
            assert still.call_digest == pending.call_digest
            await answer(h, handle.id, "lead")
            await handle.result()
        history = await h.history(handle.id)
        view = read_history(history)
        assert view.summary is not None
        assert view.summary.steps[0].approval is not None
        assert [a.approver for a in view.summary.steps[0].approval.approvals] == ["lead"]

    async def test_revoked_mid_wait_is_refused_and_recorded(self, approvers: Harness) -> None:
        h = approvers
        agent = h.add_agent("a")
        async with h.worker():
            handle = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
            await h.pending(handle)
            h.registry.revoke("lead")  # after the run pinned its snapshot
            with pytest.raises(ApprovalRefusedError) as error:
                await answer(h, handle.id, "lead")
            assert error.value.code == "key_revoked"
            await answer(h, handle.id, "fin")
            summary = await handle.result()
        approval = summary.steps[0].approval
        assert approval is not None
        assert [(r.approver, r.code) for r in approval.refusals] == [("lead", "key_revoked")]
        assert [a.approver for a in approval.approvals] == ["fin"]

    async def test_answer_to_a_run_that_is_not_waiting(self, approvers: Harness) -> None:
        h = approvers
        summary = await h.run(h.add_agent("a"), input={}, model_overrides=scripted(final()))
        with pytest.raises(NotWaitingError):
            await answer(h, summary.workflow_id, "lead")


async def test_pending_approvals_are_listed_across_runs(approvers: Harness) -> None:
    h = approvers
    agent = h.add_agent("a")
    async with h.worker():
        refund = await h.start(agent, input={}, model_overrides=scripted(REFUND_400, final()))
        delete = await h.start(agent, input={}, model_overrides=scripted(DELETE, final()))
        await h.pending(refund)
        await h.pending(delete)
        for _ in range(100):  # visibility is eventually consistent
            listed = {p.run_id: p for p in await list_pending(h.env.client)}
            if {refund.id, delete.id} <= set(listed):
                break
        assert listed[refund.id].tool == "payments.issue_refund"
        assert listed[delete.id].required_approvals == 2
        await answer(h, refund.id, "lead", "deny", "not today")
        await answer(h, delete.id, "p1", "deny", "not today")
        await refund.result()
        await delete.result()


async def test_tier_two_actions_are_sampled_for_review(approvers: Harness) -> None:
    h = approvers
    agent = h.add_agent("a", approvals={"review_fraction": 1.0})
    small = call(
        "payments.issue_refund", order_id="ORD-5001", amount_usd="20", reason_code="damaged"
    )
    summary = await h.run(
        agent,
        input={},
        model_overrides=scripted(small, call("crm.read_ticket", ticket_id="T-1001"), final()),
    )
    from tiergate.activities import ReviewStore

    queued = ReviewStore(h.settings.database()).list()
    assert [(q["run_id"], q["step"], q["tool"]) for q in queued] == [
        (summary.workflow_id, 1, "payments.issue_refund")
    ]
    assert summary.steps[0].review_sampled
    assert not summary.steps[1].review_sampled  # tier 0 is never sampled


def _waiting(run_id: str, since: str, approved_by: list[str]) -> PendingAction:
    return PendingAction(
        step=1,
        tool="crm.refund",
        arguments={"amount": 30},
        call_digest="d",
        reason="tier 3",
        tier=3,
        verdict=Verdict.NEEDS_APPROVAL,
        policy_ids=[],
        policy_version="v",
        requester="agent",
        run_id=run_id,
        waiting_since=since,
        approved_by=approved_by,
    )


def test_a_run_listed_on_two_visibility_pages_is_shown_once() -> None:
    """Regression from the load drill: paging 10,000 waiting runs returned some twice while
    their records changed; the approver list showed (and counted) them twice."""
    listed = [
        _waiting("r-2", "2026-11-24T10:02:00", []),
        _waiting("r-1", "2026-11-24T10:01:00", []),
        _waiting("r-2", "2026-11-24T10:02:00", ["alice"]),
    ]
    shown = one_per_run(listed)
    assert [p.run_id for p in shown] == ["r-1", "r-2"]
    assert shown[1].approved_by == ["alice"]
