"""The approvals web page: as safe as the CLI, for approvers who do not live in a terminal.

Server-rendered (Starlette + Jinja2) with a few lines of JavaScript to poll the queue. It is
Starlette routes behind three middlewares, outermost first: security headers on every
response (`SecurityHeaders`), server-side sessions as Starlette authentication
(`ApproverSessions`), and a CSRF check on every form post (`CsrfProtection`). Sign-in is a
scrypt password or a one-time link (`tiergate approvers password|token`), rate-limited per
client and name; every page and action is authorized by the run's pinned approver policy.
Answers are signed by the approver's passkey in their browser, never by the page
(`tiergate.web._passkeys`).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.routing import Route

from tiergate.cluster import codec_for
from tiergate.web._approvals import (
    approval_challenge,
    approval_get,
    approval_post,
    history,
    queue,
    queue_rows,
)
from tiergate.web._codec import codec_endpoint
from tiergate.web._context import WebContext
from tiergate.web._passkeys import enroll, enroll_options, passkey_page
from tiergate.web._security import CsrfProtection, SecureCookies, SecurityHeaders
from tiergate.web._sessions import ApproverSessions
from tiergate.web._signin import signin_get, signin_post, signin_token, signout

ROUTES = [
    Route("/codec/{op:str}", codec_endpoint, methods=["POST", "OPTIONS"]),
    Route("/signin", signin_get, methods=["GET"]),
    Route("/signin", signin_post, methods=["POST"]),
    Route("/signin/token/{token}", signin_token, methods=["GET"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/", queue, methods=["GET"]),
    Route("/queue/rows", queue_rows, methods=["GET"]),
    Route("/approvals/{run_id}", approval_get, methods=["GET"]),
    Route("/approvals/{run_id}", approval_post, methods=["POST"]),
    Route("/approvals/{run_id}/challenge", approval_challenge, methods=["POST"]),
    Route("/passkey", passkey_page, methods=["GET"]),
    Route("/passkey", enroll, methods=["POST"]),
    Route("/passkey/options", enroll_options, methods=["POST"]),
    Route("/history", history, methods=["GET"]),
]


def build_app(context: WebContext) -> Starlette:
    """The ASGI app over ``context`` (client, settings, sessions)."""
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(SecureCookies, always=context.settings.web_secure_cookies),
            Middleware(AuthenticationMiddleware, backend=ApproverSessions(context.sessions)),
            Middleware(CsrfProtection),
        ],
    )
    app.state.context = context
    app.state.codec = codec_for(context.settings)
    return app
