"""Server-side sessions of signed-in approvers, as Starlette authentication.

The cookie holds only a random session id; the session (approver, its CSRF token, expiry)
stays on the server, so signing out or expiring ends it everywhere at once. Starlette's
`AuthenticationMiddleware` runs `ApproverSessions` on every request: a handler sees the
approver as ``request.user`` and the session as ``request.user.session``.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection
from starlette.responses import Response

from tiergate.core import ApprovalRequest

SESSION_COOKIE = "tg_session"
PRE_COOKIE = "tg_signin"
SESSION_SECONDS = 8 * 3600


#: Answers a session keeps prepared for a passkey at once (one per run it is deciding).
MAX_PREPARED = 16


@dataclass
class Session:
    """One signed-in approver.

    ``enrolling``: the challenge of the passkey enrollment under way. ``prepared``: per run,
    the unsigned answer whose signing message the approver's passkey was asked to sign;
    only that answer is sent, whatever the final form says.
    """

    approver: str
    csrf: str
    expires: float
    enrolling: bytes | None = None
    prepared: OrderedDict[str, ApprovalRequest] = field(default_factory=OrderedDict)

    def prepare(self, run_id: str, answer: ApprovalRequest) -> None:
        self.prepared.pop(run_id, None)
        self.prepared[run_id] = answer
        while len(self.prepared) > MAX_PREPARED:
            self.prepared.popitem(last=False)


class SessionStore(dict[str, Session]):
    """Session id -> session; an expired session is dropped when next looked up."""

    def open(self, approver: str) -> str:
        sid = secrets.token_urlsafe(32)
        self[sid] = Session(approver, secrets.token_urlsafe(32), time.time() + SESSION_SECONDS)
        return sid

    def current(self, sid: str) -> Session | None:
        session = self.get(sid)
        if session is not None and session.expires < time.time():
            self.pop(sid, None)
            return None
        return session


class Approver(BaseUser):
    """The signed-in approver of a request."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.session.approver


class ApproverSessions(AuthenticationBackend):
    """Authenticates a request by its session cookie (nothing else signs an approver in)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        session = self.store.current(conn.cookies.get(SESSION_COOKIE, ""))
        if session is None:
            return None
        return AuthCredentials(["approver"]), Approver(session)


def session_of(conn: HTTPConnection) -> Session | None:
    """The request's session, None when no approver is signed in."""
    user = conn.user if "user" in conn.scope else None
    return user.session if isinstance(user, Approver) else None


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age, httponly=True, samesite="strict", path="/", secure=False
    )
