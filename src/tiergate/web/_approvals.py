"""The approver's pages: the queue of what they may decide, one action, the decisions made.

The page decides nothing itself, and signs nothing: an approver's click prepares the
unsigned answer to the action they reviewed, their passkey signs it in the browser
(`tiergate.web._passkeys`), and the page sends it as the same `approval` update the CLI
sends (recorded ``via web``), which the workflow verifies as it verifies any answer. The page
only refuses early what the workflow would refuse anyway, so a person gets a clear message
instead of a silent no.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from tiergate.approvals.client import answer, build_request, list_pending, pending_of, submit
from tiergate.core import (
    WORKFLOW_NAME,
    ApprovalDecision,
    ApprovalReceipt,
    ApprovalRequest,
    ApprovalWait,
    PasskeyAssertion,
    PendingAction,
    RunSummary,
    verified_key,
)
from tiergate.errors import ApprovalRefusedError, NotWaitingError
from tiergate.forensics import build_timeline, fetch_run_chain
from tiergate.sensitive import Redactor
from tiergate.web._context import WebContext
from tiergate.web._pages import age, message_page, page, render, signin_page
from tiergate.web._passkeys import RelyingParty, assertion_options, usable
from tiergate.web._sessions import SESSION_COOKIE, Session, session_of

POLL_SECONDS = 2
_NOT_WAITING = "This run is no longer waiting: it was decided or moved on. Nothing was changed."
_SORTS = {
    "agent": lambda r: r["agent"],
    "tool": lambda r: r["tool"],
    "tier": lambda r: -r["tier"],
    "age": lambda r: -r["age_seconds"],
}


def _signed_in(request: Request) -> tuple[WebContext, Session] | Response:
    """The page's context and the approver's session, or the sign-in page (401)."""
    session = session_of(request)
    if session is None:
        expired = request.cookies.get(SESSION_COOKIE) is not None
        message = "Your session has expired; sign in again." if expired else "Sign in first."
        return signin_page(message, 401)
    return request.app.state.context, session


def _row(p: PendingAction, now: datetime, redactor: Redactor) -> dict[str, Any]:
    sla = datetime.fromisoformat(p.sla_at) if p.sla_at else None
    left = int((sla - now).total_seconds()) if sla else None
    overdue = p.escalated or (left is not None and left < 0)
    since = datetime.fromisoformat(p.waiting_since) if p.waiting_since else now
    return {
        "run_id": p.run_id,
        "agent": p.agent,
        "tool": p.tool,
        "call": redactor.line(p.arguments),
        "tier": p.tier,
        "age": age(p.waiting_since, now),
        "age_seconds": (now - since).total_seconds(),
        "sla": "overdue" if overdue else f"{left}s left",
        "overdue": overdue,
        "approved": len(p.approved_by),
        "required": p.required_approvals,
    }


async def _visible(web: WebContext, session: Session, request: Request) -> list[dict[str, Any]]:
    """What waits that this approver may decide, filtered and sorted as the query asks."""
    now = datetime.now(UTC)
    redactor = Redactor(web.settings.redaction, partial_emails=True)
    rows = [
        _row(p, now, redactor)
        for p in await list_pending(web.client)
        if await web.may_decide(session.approver, p)
    ]
    agent, tier = request.query_params.get("agent", ""), request.query_params.get("tier", "")
    rows = [
        r
        for r in rows
        if (not agent or agent in r["agent"]) and (not tier or str(r["tier"]) == tier)
    ]
    return sorted(rows, key=_SORTS.get(request.query_params.get("sort", "age"), _SORTS["age"]))


async def queue(request: Request) -> Response:
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return signed
    web, session = signed
    entry = web.approvers().approvers.get(session.approver)
    return page(
        "queue.html",
        session=session,
        title="Queue",
        needs_passkey=not usable(entry, RelyingParty.of(request, web))
        and not _demo_signing(web, session),
        rows=await _visible(web, session, request),
        agent_filter=request.query_params.get("agent", ""),
        tier_filter=request.query_params.get("tier", ""),
        sort=request.query_params.get("sort", "age"),
        poll_seconds=POLL_SECONDS,
    )


async def queue_rows(request: Request) -> Response:
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return Response("sign in again", status_code=401)
    web, session = signed
    return HTMLResponse(render("rows.html", rows=await _visible(web, session, request)))


async def _approval_page(
    web: WebContext,
    request: Request,
    session: Session,
    pending: PendingAction,
    message: str = "",
    *,
    ok: bool = False,
    status: int = 200,
) -> Response:
    chain = await fetch_run_chain(web.client, pending.run_id)
    redactor = Redactor(web.settings.redaction, partial_emails=True)
    ui = f"{web.ui_url or ''}/namespaces/{web.settings.namespace}/workflows/{pending.run_id}"
    return page(
        "approval.html",
        status,
        session=session,
        title=f"Approve {pending.tool}",
        pending=pending,
        arguments=json.dumps(
            redactor.value(pending.arguments), indent=2, sort_keys=True, ensure_ascii=False
        ),
        already=session.approver in pending.approved_by,
        has_passkey=bool(
            usable(web.approvers().approvers.get(session.approver), RelyingParty.of(request, web))
        ),
        demo_signing=_demo_signing(web, session),
        timeline=build_timeline(chain[-1], redactor, earlier=chain[:-1]),
        ui_link=ui,
        message=message,
        ok=ok,
    )


async def _decidable(web: WebContext, session: Session, run_id: str) -> PendingAction | None:
    """What ``run_id`` waits for if this approver may decide it; else None, whichever way
    it is not (so nothing about a run an approver may not see leaks)."""
    try:
        pending = await pending_of(web.client, run_id)
    except NotWaitingError:
        return None
    return pending if await web.may_decide(session.approver, pending) else None


async def approval_get(request: Request) -> Response:
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return signed
    web, session = signed
    run_id = request.path_params["run_id"]
    pending = await _decidable(web, session, run_id)
    if pending is None:
        return message_page(session, f"Run {run_id} is not waiting for an approval.", 404)
    return await _approval_page(web, request, session, pending)


_NOT_ALLOWED = "You are not allowed to decide this action (approver policy). Nothing was changed."


async def approval_challenge(request: Request) -> Response:
    """Prepare the approver's answer to the action they reviewed and return the WebAuthn
    options asking their passkey to sign it (JSON; the form's token checked by middleware)."""
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return JSONResponse({"error": "sign in again"}, status_code=401)
    web, session = signed
    run_id = request.path_params["run_id"]
    try:
        pending = await pending_of(web.client, run_id)
    except NotWaitingError:
        return JSONResponse({"error": _NOT_WAITING}, status_code=409)
    if not await web.may_decide(session.approver, pending):
        return JSONResponse({"error": _NOT_ALLOWED}, status_code=403)
    form = await request.form()
    decision = str(form.get("decision", ""))
    refused = _refusal(session, pending, str(form.get("digest", "")), decision)
    if refused is not None:
        return JSONResponse({"error": refused[0]}, status_code=refused[1])
    justification = str(form.get("justification", "")).strip()
    if not justification and (decision == "deny" or pending.tier >= 4):
        # Refused before the approver touches their authenticator for nothing.
        why = "A deny needs a reason." if decision == "deny" else "Tier 4 needs a justification."
        return JSONResponse({"error": why}, status_code=400)
    rp = RelyingParty.of(request, web)
    passkeys = usable(web.approvers().approvers.get(session.approver), rp)
    if not passkeys:
        message = "Enroll a passkey first, and have an administrator endorse it."
        return JSONResponse({"error": message}, status_code=409)
    pinned = await web.pinned_registry(run_id)
    accepted = (
        {p.credential_id for p in usable(pinned.approvers.get(session.approver), rp)}
        if pinned
        else set()
    )
    passkeys = [p for p in passkeys if p.credential_id in accepted]
    if not passkeys:
        message = (
            "Your passkey was endorsed after this run began waiting, and a run takes answers "
            "only from the keys it pinned then: it counts from this run's next wait, and for "
            "runs that begin waiting from now on."
        )
        return JSONResponse({"error": message}, status_code=409)
    prepared = build_request(
        pending, session.approver, ApprovalDecision(decision), justification, via="web"
    )
    web.sessions.prepare(session, run_id, prepared)
    return JSONResponse({"publicKey": assertion_options(prepared, passkeys, rp)})


async def approval_post(request: Request) -> Response:
    """The prepared answer, with the passkey's assertion over it; the form's token was
    checked by `CsrfProtection`."""
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return signed
    web, session = signed
    run_id = request.path_params["run_id"]
    try:
        pending = await pending_of(web.client, run_id)
    except NotWaitingError:
        return message_page(session, _NOT_WAITING, 409)
    if not await web.may_decide(session.approver, pending):
        return message_page(session, _NOT_ALLOWED, 403)
    form = await request.form()
    if form.get("demo") == "1" and _demo_signing(web, session):
        return await _demo_answer(web, request, session, pending, form)
    prepared = web.sessions.take_prepared(session, run_id)
    refused = _refusal(session, pending, str(form.get("digest", "")), str(form.get("decision", "")))
    if refused is None and prepared is None:
        refused = "Approve or deny with your passkey (the page needs JavaScript).", 400
    if refused is None and prepared is not None and not _same_wait(prepared, pending):
        refused = "The action changed since you opened it; review it again.", 409
    if refused is not None or prepared is None:
        message, status = refused or ("", 400)
        return await _approval_page(web, request, session, pending, message, status=status)
    try:
        assertion = PasskeyAssertion.model_validate_json(str(form.get("assertion", "")))
    except ValidationError:
        message = "Your passkey gave no usable answer; try again."
        return await _approval_page(web, request, session, pending, message, status=400)
    return await _answer(web, request, session, pending, prepared, assertion)


def _demo_signing(web: WebContext, session: Session) -> bool:
    """Whether this page may sign for the approver: `demo --keep`, a labeled demo key."""
    entry = web.approvers().approvers.get(session.approver)
    return web.demo_keys and entry is not None and entry.demo_key


async def _demo_answer(
    web: WebContext, request: Request, session: Session, pending: PendingAction, form: Any
) -> Response:
    """The demo's approver answers with the demo key made for them on this host."""
    decision = str(form.get("decision", ""))
    refused = _refusal(session, pending, str(form.get("digest", "")), decision)
    if refused is not None:
        return await _approval_page(web, request, session, pending, refused[0], status=refused[1])
    try:
        receipt = await answer(
            web.client,
            web.registry.private_key(session.approver),
            pending,
            session.approver,
            ApprovalDecision(decision),
            str(form.get("justification", "")).strip(),
            via="demo",
        )
    except ApprovalRefusedError as error:
        message = f"Refused ({error.code}): {error.reason}. Nothing was changed."
        return await _approval_page(web, request, session, pending, message, status=409)
    except NotWaitingError:
        return message_page(session, _NOT_WAITING, 409)
    return _receipt_page(session, receipt, ApprovalDecision(decision))


def _receipt_page(
    session: Session, receipt: ApprovalReceipt, decision: ApprovalDecision
) -> Response:
    if receipt.status in ("approved", "denied"):
        done = "Approved" if decision == ApprovalDecision.APPROVE else "Denied"
        return message_page(session, f"{done}: the run resumes ({receipt.status}).", 200, ok=True)
    so_far = f"Recorded: {len(receipt.approved_by)} of {receipt.required} approvals so far."
    return message_page(session, so_far, 200, ok=True)


def _same_wait(prepared: ApprovalRequest, pending: PendingAction) -> bool:
    return (prepared.step, prepared.nonce, prepared.action_digest) == (
        pending.step,
        pending.nonce,
        pending.call_digest,
    )


def _refusal(
    session: Session, pending: PendingAction, digest: str, decision: str
) -> tuple[str, int] | None:
    """Why the form cannot be sent as it stands (message, status), or None."""
    if digest != pending.call_digest:
        return "The action changed since you opened it; review it again.", 409
    if decision not in ("approve", "deny"):
        return "Choose approve or deny.", 400
    if session.approver in pending.approved_by:
        return (
            "You already approved this action; a second approval must come from someone else.",
            409,
        )
    return None


async def _answer(
    web: WebContext,
    request: Request,
    session: Session,
    pending: PendingAction,
    prepared: ApprovalRequest,
    assertion: PasskeyAssertion,
) -> Response:
    """Send ``prepared`` (the answer the passkey was asked to sign) with its assertion."""
    signed = prepared.model_copy(update={"passkey": assertion})
    entry = web.approvers().approvers.get(session.approver)
    if entry is None or verified_key(signed, entry) is None:
        message = "Your passkey's answer did not verify; nothing was sent. Try again."
        return await _approval_page(web, request, session, pending, message, status=409)
    try:
        receipt = await submit(web.client, signed)
    except ApprovalRefusedError as error:
        message = f"Refused ({error.code}): {error.reason}. Nothing was changed."
        return await _approval_page(web, request, session, pending, message, status=409)
    except NotWaitingError:
        return message_page(session, _NOT_WAITING, 409)
    return _receipt_page(session, receipt, signed.decision)


def _as_pending(summary: RunSummary, step: int, wait: ApprovalWait) -> PendingAction:
    original = wait.original
    return PendingAction(
        step=step,
        tool=original.tool or "",
        arguments=original.arguments or {},
        call_digest=original.call_digest or "",
        reason="",
        tier=original.tier or 0,
        verdict=original.verdict,
        policy_ids=original.policy_ids,
        policy_version=original.policy_version,
        requester="",
        run_id=summary.workflow_id,
        agent=summary.agent,
    )


async def history(request: Request) -> Response:
    """Decided approvals of finished runs that this approver could have decided."""
    signed = _signed_in(request)
    if isinstance(signed, Response):
        return signed
    web, session = signed
    rows = []
    query = f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Completed"'
    async for wf in web.client.list_workflows(query, limit=50):
        summary = await web.client.get_workflow_handle(wf.id, result_type=RunSummary).result()
        for step in summary.steps:
            if (wait := step.approval) is None or step.decision is None:
                continue
            shown = _as_pending(summary, step.step, wait)
            if not await web.may_decide(session.approver, shown):
                continue
            answers = ", ".join(f"{a.decision} by {a.approver} via {a.via}" for a in wait.approvals)
            rows.append(
                {
                    "at": wait.decided_at or "",
                    "run_id": summary.workflow_id,
                    "agent": summary.agent,
                    "tool": shown.tool,
                    "tier": shown.tier,
                    "status": wait.status,
                    "answers": answers,
                }
            )
    rows.sort(key=lambda r: r["at"], reverse=True)
    return page("history.html", session=session, title="History", rows=rows)
