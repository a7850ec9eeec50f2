"""The approvals web page (`tiergate approvals web`)."""

from tiergate.web._app import Limiter, Session, WebContext, build_app
from tiergate.web._server import WebServer

__all__ = ["Limiter", "Session", "WebContext", "WebServer", "build_app"]
