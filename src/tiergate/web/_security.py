"""The page's defences as middleware: security headers on every response, and a CSRF check
on every form post before any handler runs.

CSRF uses double submit: a signed-in approver's forms carry their session's token, and the
sign-in form carries a token also set in a cookie before sign-in. A post whose token does
not match changes nothing. The codec endpoint takes a bearer token instead (no cookies).
"""

from __future__ import annotations

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tiergate.web._pages import message_page, same, signin_page
from tiergate.web._sessions import PRE_COOKIE, session_of

_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
]
#: Paths a cross-site form may post to: none of them acts on an approver's session.
CSRF_EXEMPT = ("/codec/",)


class SecurityHeaders:
    """Adds the headers above to every response (a pure ASGI middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *(h for h in _HEADERS if h[0] not in present),
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


class SecureCookies:
    """Marks every cookie ``Secure`` when the page is served over TLS (uvicorn's own, or a
    proxy's ``X-Forwarded-Proto: https`` from an address uvicorn trusts) or when configured
    to always (``TIERGATE_WEB_SECURE_COOKIES=true``, for a TLS proxy uvicorn does not trust
    with forwarded headers). A pure ASGI middleware, so no route can forget it."""

    def __init__(self, app: ASGIApp, always: bool = False) -> None:
        self.app, self.always = app, always

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.always or scope.get("scheme") == "https"):
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value + b"; Secure")
                    if name == b"set-cookie" and b"secure" not in value.lower()
                    else (name, value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await self.app(scope, receive, secured)


class CsrfProtection(BaseHTTPMiddleware):
    """Refuses a form post whose token is not the session's (or, signing in, the cookie's)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method != "POST" or request.url.path.startswith(CSRF_EXEMPT):
            return await call_next(request)
        await request.body()  # cached first, so the handler reads the same form again
        sent = str((await request.form()).get("csrf", ""))
        if request.url.path == "/signin":
            if not same(sent, request.cookies.get(PRE_COOKIE, "")):
                return signin_page("The sign-in form expired; try again.", 403)
            return await call_next(request)
        session = session_of(request)
        if session is not None and not same(sent, session.csrf):
            return message_page(
                session,
                "The form's security token is missing or wrong; nothing was changed. "
                "Reload the page and try again.",
                403,
            )
        return await call_next(request)
