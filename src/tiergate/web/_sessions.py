"""Server-side sessions of signed-in approvers, as Starlette authentication.

The cookie holds only a random session id; the session (approver, its CSRF token, expiry,
what it is in the middle of) is kept in the shared store under the id's sha256, so every
replica of the page serves the same signed-in approver, and signing out or expiring ends
it everywhere at once. Starlette's `AuthenticationMiddleware` runs `ApproverSessions` on
every request: a handler sees the approver as ``request.user`` and the session as
``request.user.session``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection
from starlette.responses import Response

from tiergate.core import ApprovalRequest
from tiergate.state import Database, Tx

SESSION_COOKIE = "tg_session"
PRE_COOKIE = "tg_signin"
SESSION_SECONDS = 8 * 3600


#: Answers a session keeps prepared for a passkey at once (one per run it is deciding).
MAX_PREPARED = 16


@dataclass
class Session:
    """One signed-in approver, as read at the start of a request.

    ``enrolling``: the challenge of the passkey enrollment under way. ``prepared``: per run,
    the unsigned answer whose signing message the approver's passkey was asked to sign;
    only that answer is sent, whatever the final form says. Change them through the
    `SessionStore`, which writes the store.
    """

    key: str
    approver: str
    csrf: str
    expires: float
    enrolling: bytes | None = None
    prepared: OrderedDict[str, ApprovalRequest] = field(default_factory=OrderedDict)


def _key(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _prepared_json(prepared: OrderedDict[str, ApprovalRequest]) -> str:
    return json.dumps([[run, answer.model_dump(mode="json")] for run, answer in prepared.items()])


def _read_prepared(text: str) -> OrderedDict[str, ApprovalRequest]:
    return OrderedDict(
        (str(run), ApprovalRequest.model_validate(answer)) for run, answer in json.loads(text)
    )


class SessionStore:
    """Sessions in the shared store, by the sha256 of their id (whoever reads the table
    cannot take a session over from it); an expired session is dropped when next looked
    up, and all expired ones whenever a session opens."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def open(self, approver: str) -> str:
        sid, now = secrets.token_urlsafe(32), time.time()

        def work(tx: Tx) -> None:
            tx.execute("DELETE FROM web_sessions WHERE expires_at < ?", (now,))
            tx.execute(
                "INSERT INTO web_sessions VALUES (?, ?, ?, ?, NULL, '[]')",
                (_key(sid), approver, secrets.token_urlsafe(32), now + SESSION_SECONDS),
            )

        self.database.transaction(work)
        return sid

    def current(self, sid: str) -> Session | None:
        if not sid:
            return None
        key = _key(sid)
        row = self.database.transaction(
            lambda tx: tx.one(
                "SELECT approver, csrf, expires_at, enrolling, prepared FROM web_sessions "
                "WHERE sid_hash = ?",
                (key,),
            )
        )
        if row is None:
            return None
        approver, csrf, expires, enrolling, prepared = row
        if float(expires) < time.time():
            self.close(sid)
            return None
        answers = _read_prepared(str(prepared))
        challenge = base64.b64decode(enrolling) if enrolling is not None else None
        return Session(key, str(approver), str(csrf), float(expires), challenge, answers)

    def close(self, sid: str) -> None:
        """Ends the session ``sid`` (signing out)."""
        key = _key(sid)
        self.database.transaction(
            lambda tx: tx.execute("DELETE FROM web_sessions WHERE sid_hash = ?", (key,))
        )

    def expire(self, session: Session) -> None:
        """Ends ``session`` as if its time had run out (tests, an operator's sweep)."""
        self.database.transaction(
            lambda tx: tx.execute(
                "UPDATE web_sessions SET expires_at = 0 WHERE sid_hash = ?", (session.key,)
            )
        )

    def prepare(self, session: Session, run_id: str, answer: ApprovalRequest) -> None:
        """Keeps ``answer`` as the one ``session`` may send for ``run_id`` (newest
        `MAX_PREPARED` runs kept)."""

        def work(tx: Tx) -> None:
            prepared = self._prepared(tx, session)
            prepared.pop(run_id, None)
            prepared[run_id] = answer
            while len(prepared) > MAX_PREPARED:
                prepared.popitem(last=False)
            tx.execute(
                "UPDATE web_sessions SET prepared = ? WHERE sid_hash = ?",
                (_prepared_json(prepared), session.key),
            )

        self.database.transaction(work)

    def take_prepared(self, session: Session, run_id: str) -> ApprovalRequest | None:
        """The answer prepared for ``run_id``, removed in the same transaction: two
        replicas asked at once hand it out once."""

        def work(tx: Tx) -> ApprovalRequest | None:
            prepared = self._prepared(tx, session)
            answer = prepared.pop(run_id, None)
            if answer is not None:
                tx.execute(
                    "UPDATE web_sessions SET prepared = ? WHERE sid_hash = ?",
                    (_prepared_json(prepared), session.key),
                )
            return answer

        return self.database.transaction(work)

    def start_enrolling(self, session: Session, challenge: bytes) -> None:
        self.database.transaction(
            lambda tx: tx.execute(
                "UPDATE web_sessions SET enrolling = ? WHERE sid_hash = ?",
                (base64.b64encode(challenge).decode(), session.key),
            )
        )

    def take_enrolling(self, session: Session) -> bytes | None:
        """The enrollment challenge under way, cleared in the same transaction."""

        def work(tx: Tx) -> bytes | None:
            row = tx.one("SELECT enrolling FROM web_sessions WHERE sid_hash = ?", (session.key,))
            if row is None or row[0] is None:
                return None
            tx.execute(
                "UPDATE web_sessions SET enrolling = NULL WHERE sid_hash = ?", (session.key,)
            )
            return base64.b64decode(row[0])

        return self.database.transaction(work)

    @staticmethod
    def _prepared(tx: Tx, session: Session) -> OrderedDict[str, ApprovalRequest]:
        row = tx.one("SELECT prepared FROM web_sessions WHERE sid_hash = ?", (session.key,))
        return _read_prepared(str(row[0])) if row is not None else OrderedDict()


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
