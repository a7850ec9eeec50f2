"""The approvals web page (`tiergate approvals web`)."""

from tiergate.web._app import build_app
from tiergate.web._context import Limiter, SharedLimiter, SignInLimits, WebContext
from tiergate.web._server import TLS, WebServer
from tiergate.web._sessions import Session

__all__ = [
    "TLS",
    "Limiter",
    "Session",
    "SharedLimiter",
    "SignInLimits",
    "WebContext",
    "WebServer",
    "build_app",
]
