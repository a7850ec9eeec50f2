"""Signing in and out: scrypt passwords or one-time links; password tries back off
exponentially per client address and per name (a one-time link is never held back)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from tiergate.web._context import WebContext
from tiergate.web._pages import signin_page
from tiergate.web._sessions import PRE_COOKIE, SESSION_COOKIE, SESSION_SECONDS, set_cookie


def context(request: Request) -> WebContext:
    web: WebContext = request.app.state.context
    return web


def start_session(web: WebContext, approver: str) -> Response:
    response = RedirectResponse("/", status_code=303)
    set_cookie(response, SESSION_COOKIE, web.sessions.open(approver), SESSION_SECONDS)
    response.delete_cookie(PRE_COOKIE, path="/")
    return response


async def signin_get(request: Request) -> Response:
    return signin_page()


async def signin_post(request: Request) -> Response:
    """The form's token was checked by `CsrfProtection` before this runs."""
    web = context(request)
    form = await request.form()
    name, password = str(form.get("name", "")).strip(), str(form.get("password", ""))
    client_key = f"ip:{request.client.host if request.client else '?'}"
    wait = web.limits.blocked(client_key, f"name:{name}")
    if wait:
        return signin_page(f"Too many failed sign-ins; try again in {int(wait) + 1} seconds.", 429)
    # The password is checked first, for every name: an unknown name costs the same scrypt
    # work as a known one, so timing does not tell which approver names exist.
    password_ok = web.credentials.verify_password(name, password)
    entry = web.approvers().approvers.get(name)
    if not password_ok or entry is None or not entry.active:
        web.limits.failed(client_key, f"name:{name}")
        return signin_page("Wrong approver name or password.", 401)
    web.limits.succeeded(f"name:{name}")
    return start_session(web, name)


async def signin_token(request: Request) -> Response:
    web = context(request)
    name = web.credentials.redeem_token(request.path_params["token"])
    entry = web.approvers().approvers.get(name or "")
    if name is None or entry is None or not entry.active:
        return signin_page("That sign-in link is invalid, used or expired.", 401)
    return start_session(web, name)


async def signout(request: Request) -> Response:
    """Ends the session (its form token was checked by `CsrfProtection`)."""
    context(request).sessions.close(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
