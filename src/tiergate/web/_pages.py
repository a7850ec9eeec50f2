"""The page's HTML: Jinja2 templates rendered with the signed-in approver and their form token."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, Response

from tiergate.web._sessions import PRE_COOKIE, Session, set_cookie

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render(name: str, **values: Any) -> str:
    return _templates.get_template(name).render(**values)


def page(
    name: str, status: int = 200, session: Session | None = None, **values: Any
) -> HTMLResponse:
    """A full page; its forms carry ``session``'s CSRF token."""
    html = render(
        name,
        approver=session.approver if session else None,
        csrf=session.csrf if session else "",
        **values,
    )
    return HTMLResponse(html, status_code=status)


def signin_page(message: str = "", status: int = 200) -> HTMLResponse:
    """The sign-in form, with a fresh pre-sign-in token in its form and in a cookie
    (double submit: a cross-site form can send neither)."""
    pre = secrets.token_urlsafe(16)
    response = page("signin.html", status, title="Sign in", pre_csrf=pre, message=message)
    set_cookie(response, PRE_COOKIE, pre, 600)
    return response


def message_page(
    session: Session | None, message: str, status: int, back: str = "/", ok: bool = False
) -> Response:
    return page(
        "message.html", status, session=session, title="tiergate", message=message, back=back, ok=ok
    )


def same(a: str, b: str) -> bool:
    """Constant-time equality of two tokens, neither empty."""
    return bool(a) and bool(b) and hmac.compare_digest(a, b)


def age(since: str, now: datetime) -> str:
    if not since:
        return ""
    seconds = int((now - datetime.fromisoformat(since)).total_seconds())
    return (
        f"{seconds // 3600}h {seconds % 3600 // 60}m"
        if seconds >= 3600
        else f"{seconds // 60}m {seconds % 60}s"
    )
