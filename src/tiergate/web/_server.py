"""Serving the approvals page inside a running event loop (beside a worker, or in tests)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import uvicorn
from starlette.applications import Starlette


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host command (dev, demo, web) owns Ctrl-C; uvicorn must not take it over.
        yield


@dataclass(frozen=True)
class TLS:
    """A certificate and its key, PEM files, for serving HTTPS."""

    cert: Path
    key: Path


class WebServer:
    """`async with WebServer(app, host, port) as server:` serves until the block ends.

    With ``tls`` it serves HTTPS itself; with ``forwarded_allow_ips`` it believes
    ``X-Forwarded-Proto`` from those proxies (so a TLS proxy in front counts as TLS).
    """

    def __init__(
        self,
        app: Starlette,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        tls: TLS | None = None,
        forwarded_allow_ips: str | None = None,
    ) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=str(tls.cert) if tls else None,
            ssl_keyfile=str(tls.key) if tls else None,
            proxy_headers=forwarded_allow_ips is not None,
            forwarded_allow_ips=forwarded_allow_ips,
        )
        self.server = _QuietServer(config)
        self.host, self.port, self.scheme = host, port, "https" if tls else "http"
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def browser_url(self) -> str:
        """The address to open in a browser. Passkeys are bound to a host name and browsers
        refuse them on a bare IP address, so a loopback or any-address bind is shown as
        ``localhost`` (a secure context even over plain HTTP)."""
        local = self.host in ("127.0.0.1", "0.0.0.0", "::1", "::")
        return f"{self.scheme}://{'localhost' if local else self.host}:{self.port}"

    async def __aenter__(self) -> WebServer:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises the reason it could not start (port in use)
            await asyncio.sleep(0.02)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task
