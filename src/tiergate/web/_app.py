"""The approvals web page: as safe as the CLI, for approvers who do not live in a terminal.

Server-rendered (Starlette + Jinja2) with a few lines of JavaScript to poll the queue. The
page never decides anything itself: an approver's click becomes the same signed
`approval` update the CLI sends (`tiergate.approvals.client.decide`, recorded ``via web``),
signed with the key the registry holds for the signed-in approver, and the workflow verifies
it exactly as it verifies a CLI answer. The page only refuses early what the workflow would
refuse anyway, so a person gets a clear message instead of a silent no.

Security: scrypt password hashes or one-time tokens (`tiergate approvers password|token`),
server-side sessions in HttpOnly SameSite=Strict cookies, a CSRF token on every form (the
sign-in form included, double-submit), sign-in rate limits per client and name, and
authorization by the agent's Cedar approver policy for every page and action.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from tiergate.approvals import ApproverRegistry
from tiergate.approvals._credentials import Credentials
from tiergate.approvals.client import decide, list_pending, pending_of
from tiergate.cluster import codec_for
from tiergate.core import WORKFLOW_NAME, ApprovalDecision, ApproverGate, PendingAction, RunSummary
from tiergate.errors import ApprovalRefusedError, NotWaitingError, TiergateError
from tiergate.forensics import (
    Timeline,
    build_timeline,
    fetch_history,
    fetch_run_chain,
    read_history,
)
from tiergate.sensitive import Redactor
from tiergate.settings import Settings

SESSION_COOKIE = "tg_session"
PRE_COOKIE = "tg_signin"
SESSION_SECONDS = 8 * 3600
#: Sign-in failures allowed per client address and per approver name in the window.
MAX_FAILURES, FAILURE_WINDOW = 5, 300.0
POLL_SECONDS = 2
#: Runs whose pinned approver policy the page keeps in memory.
MAX_CACHED_RUNS = 2048


@dataclass
class Session:
    approver: str
    csrf: str
    expires: float


@dataclass
class Limiter:
    """Sign-in failures per key (client address, approver name), over a sliding window."""

    failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def blocked(self, *keys: str) -> float:
        """Seconds until the first of ``keys`` may try again (0 when none is blocked)."""
        now = time.monotonic()
        wait = 0.0
        for key in keys:
            window = self.failures[key]
            while window and now - window[0] > FAILURE_WINDOW:
                window.popleft()
            if len(window) >= MAX_FAILURES:
                wait = max(wait, FAILURE_WINDOW - (now - window[0]))
        return wait

    def failed(self, *keys: str) -> None:
        for key in keys:
            self.failures[key].append(time.monotonic())


@dataclass
class WebContext:
    client: Client
    settings: Settings
    ui_url: str | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    limiter: Limiter = field(default_factory=Limiter)
    gates: OrderedDict[str, ApproverGate] = field(default_factory=OrderedDict)

    @property
    def registry(self) -> ApproverRegistry:
        return ApproverRegistry(self.settings.home)

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.settings.home)

    async def may_decide(self, approver: str, pending: PendingAction) -> bool:
        """The approver policy the run pinned, applied as the workflow will apply it."""
        entry = self.registry.snapshot().approvers.get(approver)
        if entry is None or not entry.active or approver == pending.requester:
            return False
        gate = await self._approver_gate(pending.run_id)
        if gate is None:
            return False
        allowed, _ = gate.may_decide(
            approver, entry.roles, pending.agent, pending.tool, pending.tier, pending.arguments
        )
        return allowed

    async def _approver_gate(self, run_id: str) -> ApproverGate | None:
        """The approver policy run ``run_id`` is pinned to, read from its history once."""
        gate = self.gates.get(run_id)
        if gate is None:
            try:
                bundle = read_history(await fetch_history(self.client, run_id)).pinned_bundle()
            except TiergateError:
                return None
            gate = self.gates[run_id] = ApproverGate(bundle.approver_policy)
            while len(self.gates) > MAX_CACHED_RUNS:
                self.gates.popitem(last=False)
        self.gates.move_to_end(run_id)
        return gate


_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _page(
    name: str, status: int = 200, session: Session | None = None, **values: Any
) -> HTMLResponse:
    html = _templates.get_template(name).render(
        approver=session.approver if session else None,
        csrf=session.csrf if session else "",
        **values,
    )
    response = HTMLResponse(html, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'"
    )
    return response


def _set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="strict", path="/", secure=False
    )


def _same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a, b)


def _age(since: str, now: datetime) -> str:
    if not since:
        return ""
    seconds = int((now - datetime.fromisoformat(since)).total_seconds())
    return (
        f"{seconds // 3600}h {seconds % 3600 // 60}m"
        if seconds >= 3600
        else f"{seconds // 60}m {seconds % 60}s"
    )


def build_app(context: WebContext) -> Starlette:
    """The ASGI app over ``context`` (client, settings, sessions)."""

    def session_of(request: Request) -> Session | None:
        sid = request.cookies.get(SESSION_COOKIE, "")
        session = context.sessions.get(sid)
        if session is None:
            return None
        if session.expires < time.time():
            context.sessions.pop(sid, None)
            return None
        return session

    def signin_page(message: str = "", status: int = 200) -> HTMLResponse:
        pre = secrets.token_urlsafe(16)
        response = _page("signin.html", status, title="Sign in", pre_csrf=pre, message=message)
        _set_cookie(response, PRE_COOKIE, pre, 600)
        return response

    def require(request: Request) -> Session | Response:
        session = session_of(request)
        if session is None:
            expired = request.cookies.get(SESSION_COOKIE) is not None
            return signin_page(
                "Your session has expired; sign in again." if expired else "Sign in first.",
                401,
            )
        return session

    def start_session(approver: str) -> Response:
        sid = secrets.token_urlsafe(32)
        context.sessions[sid] = Session(
            approver, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS
        )
        response = RedirectResponse("/", status_code=303)
        _set_cookie(response, SESSION_COOKIE, sid, SESSION_SECONDS)
        response.delete_cookie(PRE_COOKIE, path="/")
        return response

    async def signin_get(request: Request) -> Response:
        return signin_page()

    async def signin_post(request: Request) -> Response:
        form = await request.form()
        if not _same(str(form.get("csrf", "")), request.cookies.get(PRE_COOKIE, "")):
            return signin_page("The sign-in form expired; try again.", 403)
        name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
        client_key = f"ip:{request.client.host if request.client else '?'}"
        wait = context.limiter.blocked(client_key, f"name:{name}")
        if wait:
            return signin_page(
                f"Too many failed sign-ins; try again in {int(wait) + 1} seconds.", 429
            )
        entry = context.registry.snapshot().approvers.get(name)
        if (
            entry is None
            or not entry.active
            or not context.credentials.verify_password(name, password)
        ):
            context.limiter.failed(client_key, f"name:{name}")
            return signin_page("Wrong approver name or password.", 401)
        return start_session(name)

    async def signin_token(request: Request) -> Response:
        name = context.credentials.redeem_token(request.path_params["token"])
        entry = context.registry.snapshot().approvers.get(name or "")
        if name is None or entry is None or not entry.active:
            return signin_page("That sign-in link is invalid, used or expired.", 401)
        return start_session(name)

    async def signout(request: Request) -> Response:
        session = session_of(request)
        form = await request.form()
        if session is not None and _same(str(form.get("csrf", "")), session.csrf):
            context.sessions.pop(request.cookies.get(SESSION_COOKIE, ""), None)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def visible_pending(session: Session, request: Request) -> list[dict[str, Any]]:
        now = datetime.now(UTC)
        rows = []
        for p in await list_pending(context.client):
            if not await context.may_decide(session.approver, p):
                continue
            sla = datetime.fromisoformat(p.sla_at) if p.sla_at else None
            left = int((sla - now).total_seconds()) if sla else None
            rows.append(
                {
                    "run_id": p.run_id,
                    "agent": p.agent,
                    "tool": p.tool,
                    "amount": p.arguments.get("amount_usd", ""),
                    "tier": p.tier,
                    "age": _age(p.waiting_since, now),
                    "age_seconds": (now - datetime.fromisoformat(p.waiting_since)).total_seconds()
                    if p.waiting_since
                    else 0,
                    "sla": "overdue"
                    if p.escalated or (left is not None and left < 0)
                    else f"{left}s left",
                    "overdue": p.escalated or (left is not None and left < 0),
                    "approved": len(p.approved_by),
                    "required": p.required_approvals,
                }
            )
        agent, tier = request.query_params.get("agent", ""), request.query_params.get("tier", "")
        rows = [
            r
            for r in rows
            if (not agent or agent in r["agent"]) and (not tier or str(r["tier"]) == tier)
        ]
        sort = request.query_params.get("sort", "age")
        keys = {
            "agent": lambda r: r["agent"],
            "tool": lambda r: r["tool"],
            "amount": lambda r: float(r["amount"] or 0),
            "tier": lambda r: -r["tier"],
            "age": lambda r: -r["age_seconds"],
        }
        return sorted(rows, key=keys.get(sort, keys["age"]))

    async def queue(request: Request) -> Response:
        session = require(request)
        if not isinstance(session, Session):
            return session
        return _page(
            "queue.html",
            session=session,
            title="Queue",
            rows=await visible_pending(session, request),
            agent_filter=request.query_params.get("agent", ""),
            tier_filter=request.query_params.get("tier", ""),
            sort=request.query_params.get("sort", "age"),
            poll_seconds=POLL_SECONDS,
        )

    async def queue_rows(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return Response("sign in again", status_code=401)
        html = _templates.get_template("rows.html").render(
            rows=await visible_pending(session, request)
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def ui_link(run_id: str) -> str:
        base = context.ui_url or ""
        return f"{base}/namespaces/{context.settings.namespace}/workflows/{run_id}"

    async def approval_page(
        session: Session,
        pending: PendingAction,
        message: str = "",
        ok: bool = False,
        status: int = 200,
    ) -> Response:
        chain = await fetch_run_chain(context.client, pending.run_id)
        timeline: Timeline = build_timeline(
            chain[-1], Redactor(context.settings.redaction), earlier=chain[:-1]
        )
        return _page(
            "approval.html",
            status,
            session=session,
            title=f"Approve {pending.tool}",
            pending=pending,
            arguments=json.dumps(
                Redactor(context.settings.redaction).value(pending.arguments),
                indent=2,
                sort_keys=True,
            ),
            already=session.approver in pending.approved_by,
            timeline=timeline,
            ui_link=ui_link(pending.run_id),
            message=message,
            ok=ok,
        )

    def message_page(
        session: Session, message: str, status: int, back: str = "/", ok: bool = False
    ) -> Response:
        return _page(
            "message.html",
            status,
            session=session,
            title="tiergate",
            message=message,
            back=back,
            ok=ok,
        )

    async def approval_get(request: Request) -> Response:
        session = require(request)
        if not isinstance(session, Session):
            return session
        run_id = request.path_params["run_id"]
        try:
            pending = await pending_of(context.client, run_id)
        except NotWaitingError:
            return message_page(session, f"Run {run_id} is not waiting for an approval.", 404)
        if not await context.may_decide(session.approver, pending):
            # Same answer as for a run that does not wait: nothing about it leaks.
            return message_page(session, f"Run {run_id} is not waiting for an approval.", 404)
        return await approval_page(session, pending)

    async def approval_post(request: Request) -> Response:
        session = require(request)
        if not isinstance(session, Session):
            return session
        form = await request.form()
        if not _same(str(form.get("csrf", "")), session.csrf):
            return message_page(
                session,
                "The form's security token is missing or wrong; nothing was changed. Reload the page and try again.",
                403,
            )
        run_id = request.path_params["run_id"]
        try:
            pending = await pending_of(context.client, run_id)
        except NotWaitingError:
            return message_page(
                session,
                "This run is no longer waiting: it was decided or moved on. Nothing was changed.",
                409,
            )
        if not await context.may_decide(session.approver, pending):
            return message_page(
                session,
                "You are not allowed to decide this action (approver policy). Nothing was changed.",
                403,
            )
        if str(form.get("digest", "")) != pending.call_digest:
            return await approval_page(
                session,
                pending,
                "The action changed since you opened it; review it again.",
                status=409,
            )
        decision = str(form.get("decision", ""))
        if decision not in ("approve", "deny"):
            return await approval_page(session, pending, "Choose approve or deny.", status=400)
        if session.approver in pending.approved_by:
            return await approval_page(
                session,
                pending,
                "You already approved this action; a second approval must come from someone else.",
                status=409,
            )
        try:
            receipt = await decide(
                context.client,
                context.registry,
                run_id,
                session.approver,
                ApprovalDecision(decision),
                str(form.get("justification", "")).strip(),
                via="web",
            )
        except ApprovalRefusedError as error:
            return await approval_page(
                session,
                pending,
                f"Refused ({error.code}): {error.reason}. Nothing was changed.",
                status=409,
            )
        except NotWaitingError:
            return message_page(
                session,
                "This run is no longer waiting: it was decided or moved on. Nothing was changed.",
                409,
            )
        if receipt.status in ("approved", "denied"):
            done = "Approved" if decision == "approve" else "Denied"
            return message_page(
                session, f"{done}: the run resumes ({receipt.status}).", 200, ok=True
            )
        return message_page(
            session,
            f"Recorded: {len(receipt.approved_by)} of {receipt.required} approvals so far.",
            200,
            ok=True,
        )

    async def history(request: Request) -> Response:
        session = require(request)
        if not isinstance(session, Session):
            return session
        rows = []
        query = f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Completed"'
        async for wf in context.client.list_workflows(query, limit=50):
            summary = await context.client.get_workflow_handle(
                wf.id, result_type=RunSummary
            ).result()
            for step in summary.steps:
                wait = step.approval
                if wait is None or step.decision is None:
                    continue
                shown = PendingAction(
                    step=step.step,
                    tool=wait.original.tool or "",
                    arguments=wait.original.arguments or {},
                    call_digest=wait.original.call_digest or "",
                    reason="",
                    tier=wait.original.tier or 0,
                    verdict=wait.original.verdict,
                    policy_ids=wait.original.policy_ids,
                    policy_version=wait.original.policy_version,
                    requester="",
                    run_id=summary.workflow_id,
                    agent=summary.agent,
                )
                if not await context.may_decide(session.approver, shown):
                    continue
                rows.append(
                    {
                        "at": wait.decided_at or "",
                        "run_id": summary.workflow_id,
                        "agent": summary.agent,
                        "tool": shown.tool,
                        "tier": shown.tier,
                        "status": wait.status,
                        "answers": ", ".join(
                            f"{a.decision} by {a.approver} via {a.via}" for a in wait.approvals
                        ),
                    }
                )
        rows.sort(key=lambda r: r["at"], reverse=True)
        return _page("history.html", session=session, title="History", rows=rows)

    codec = codec_for(context.settings)

    def codec_allowed(request: Request) -> bool:
        token = context.settings.codec_token
        sent = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return codec is not None and token is not None and _same(sent, token.get_secret_value())

    def cors(response: Response) -> Response:
        if context.ui_url:
            response.headers["Access-Control-Allow-Origin"] = context.ui_url.rstrip("/")
            response.headers["Access-Control-Allow-Headers"] = (
                "authorization,content-type,x-namespace"
            )
            response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    async def codec_endpoint(request: Request) -> Response:
        """Temporal's codec-server protocol, for the Web UI and operators' tools."""
        if request.path_params["op"] not in ("encode", "decode"):
            return Response(status_code=404)
        if request.method == "OPTIONS":
            return cors(Response(status_code=200))
        if not codec_allowed(request):
            return cors(Response("codec endpoint: bearer token required", status_code=401))
        assert codec is not None
        body = await request.json()
        payloads = [json_format.ParseDict(p, Payload()) for p in body.get("payloads", [])]
        try:
            if request.path_params["op"] == "encode":
                converted = await codec.encode(payloads)
            else:
                converted = await codec.decode(payloads)
        except TiergateError as error:
            return cors(Response(str(error), status_code=400))
        result = {"payloads": [json_format.MessageToDict(p) for p in converted]}
        return cors(JSONResponse(result))

    return Starlette(
        routes=[
            Route("/codec/{op:str}", codec_endpoint, methods=["POST", "OPTIONS"]),
            Route("/signin", signin_get, methods=["GET"]),
            Route("/signin", signin_post, methods=["POST"]),
            Route("/signin/token/{token}", signin_token, methods=["GET"]),
            Route("/signout", signout, methods=["POST"]),
            Route("/", queue, methods=["GET"]),
            Route("/queue/rows", queue_rows, methods=["GET"]),
            Route("/approvals/{run_id}", approval_get, methods=["GET"]),
            Route("/approvals/{run_id}", approval_post, methods=["POST"]),
            Route("/history", history, methods=["GET"]),
        ]
    )
