"""Long-lived MCP sessions a worker shares across its tool calls.

A worker opens one session per server, through the official MCP client, the first time it
needs it (discovery at start), and reuses it for every call; a session that breaks (the
process exited, the connection dropped, a call timed out) is closed in the background and
the next call opens a new one. The hub runs its sessions on an event loop of its own, in
its own thread, so the tool activities (which run in the worker's thread pool) can wait
for a call with a deadline and the worker's own loop never waits on a server.

Every wait is bounded: a session's start and handshake by the server's
``start_timeout_seconds``, each list and call by its ``timeout_seconds``. A server that is
down, hangs or breaks its session raises `McpServerError`, never blocks the caller.

A stdio server's process gets the MCP SDK's minimal environment (``PATH``, ``HOME`` and
the like) plus the config's ``env``: the worker's secrets are not inherited. An HTTP
server's ``headers_env`` values are read from the worker's environment when the session
opens, so they appear in no config, history or log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar, cast

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import get_default_environment
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, RequestParamsMeta

from tiergate.core import McpServer
from tiergate.errors import McpServerError
from tiergate.mcp_servers._specs import ListedTool

T = TypeVar("T")

#: How long closing one session may take before its task is cancelled.
_CLOSE_SECONDS = 5.0


class _Session:
    """One open MCP client, held open by a task of the hub's loop until closed."""

    def __init__(self, server: McpServer, environ: Mapping[str, str]) -> None:
        self.server = server
        self._environ = environ
        self._ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self._task = asyncio.create_task(self._hold(), name=f"mcp-session-{server.name}")

    async def client(self) -> Client:
        try:
            return await asyncio.wait_for(
                asyncio.shield(self._ready), self.server.start_timeout_seconds
            )
        except TimeoutError:
            raise McpServerError(
                f"MCP server {self.server.name!r} did not complete its handshake within "
                f"{self.server.start_timeout_seconds:g}s",
                fix="check that the server starts (run its command by hand) or raise "
                "start_timeout_seconds",
            ) from None

    async def close(self) -> None:
        self._closing.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), _CLOSE_SECONDS)
        except TimeoutError:
            self._task.cancel()
        except BaseException:
            pass  # a broken session's error was reported to its callers; closing goes on

    async def _hold(self) -> None:
        try:
            async with self._connect() as client:
                self._ready.set_result(client)
                await self._closing.wait()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(
                    McpServerError(
                        f"cannot connect to MCP server {self.server.name!r}: {_describe(error)}",
                        fix=_reach_fix(self.server),
                    )
                )
            if isinstance(error, asyncio.CancelledError):
                raise

    def _connect(self) -> AbstractAsyncContextManager[Client]:
        server = self.server
        if server.command is not None:
            parameters = StdioServerParameters(
                command=server.command[0],
                args=server.command[1:],
                env={**get_default_environment(), **server.env},
                cwd=server.cwd,
            )
            return Client(parameters, read_timeout_seconds=server.timeout_seconds, cache=None)
        headers = {}
        for header, variable in server.headers_env.items():
            value = self._environ.get(variable)
            if value is None:
                raise McpServerError(
                    f"MCP server {server.name!r}: header {header} is read from ${variable}, "
                    "which the worker's environment does not set",
                    fix=f"export {variable} for the worker",
                )
            headers[header] = value
        http = httpx2.AsyncClient(headers=headers, timeout=server.timeout_seconds)
        transport = streamable_http_client(str(server.url), http_client=http)
        return Client(transport, read_timeout_seconds=server.timeout_seconds, cache=None)


class McpHub:
    """The MCP sessions of one worker, by server name."""

    def __init__(self, servers: list[McpServer], environ: Mapping[str, str] | None = None) -> None:
        self.servers = {server.name: server for server in servers}
        self._environ = os.environ if environ is None else environ
        self._sessions: dict[str, _Session] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="mcp-hub", daemon=True)
        self._thread.start()

    def listing(self, server: str) -> list[ListedTool]:
        """Every tool ``server`` lists now, asked of the server (never a cache)."""
        return self._wait(server, self._listing(server))

    def call(
        self, server: str, tool: str, arguments: dict[str, Any], meta: dict[str, Any]
    ) -> CallToolResult:
        """The result of one ``tools/call``; McpServerError when the server is unreachable,
        breaks the session, or does not answer within its timeout."""
        return self._wait(server, self._call(server, tool, arguments, meta))

    def close(self) -> None:
        """Close every session (stdio processes end) and stop the hub's loop; idempotent."""
        if self._closed:
            return
        self._closed = True
        future = asyncio.run_coroutine_threadsafe(self._close_all(), self._loop)
        try:
            future.result(timeout=_CLOSE_SECONDS * 2)
        except concurrent.futures.TimeoutError:
            future.cancel()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=_CLOSE_SECONDS)

    def _wait(self, server: str, work: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            work.close()
            raise McpServerError(f"the MCP hub is closed; no call to {server!r}")
        config = self.servers[server]
        timeout = config.timeout_seconds
        future = asyncio.run_coroutine_threadsafe(work, self._loop)
        try:
            # The coroutine bounds its own waits (a session it opens, its start too); this
            # bound is for a loop that is stuck.
            bound = config.start_timeout_seconds + timeout * 2 + _CLOSE_SECONDS
            return future.result(timeout=bound)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise McpServerError(
                f"MCP server {server!r} did not answer within {timeout:g}s",
                fix="check the server, or raise its timeout_seconds",
            ) from None

    async def _listing(self, name: str) -> list[ListedTool]:
        session = self._session(name)
        tools, cursor = [], None
        async with self._guarded(session, "tools/list"):
            client = await session.client()
            while True:
                page = await asyncio.wait_for(
                    client.list_tools(cursor=cursor, cache_mode="bypass"),
                    session.server.timeout_seconds,
                )
                tools.extend(page.tools)
                cursor = page.next_cursor
                if cursor is None:
                    break
        return [
            ListedTool(
                name=tool.name,
                description=tool.description or "",
                input_schema=dict(tool.input_schema),
                read_only=tool.annotations.read_only_hint if tool.annotations else None,
                destructive=tool.annotations.destructive_hint if tool.annotations else None,
            )
            for tool in tools
        ]

    async def _call(
        self, name: str, tool: str, arguments: dict[str, Any], meta: dict[str, Any]
    ) -> CallToolResult:
        session = self._session(name)
        async with self._guarded(session, tool):
            client = await session.client()
            return await asyncio.wait_for(
                client.call_tool(tool, arguments, meta=cast(RequestParamsMeta, meta)),
                session.server.timeout_seconds,
            )

    @asynccontextmanager
    async def _guarded(self, session: _Session, what: str) -> AsyncIterator[None]:
        """Any failure of ``what`` on ``session`` as McpServerError, the session dropped:
        a server stuck on a call, or a broken connection, gets a fresh session next time."""
        name, timeout = session.server.name, session.server.timeout_seconds
        try:
            yield
        except McpServerError:
            self._drop(session)
            raise
        except TimeoutError:
            self._drop(session)
            raise McpServerError(
                f"MCP server {name!r} did not answer {what} within {timeout:g}s",
                fix="check the server, or raise its timeout_seconds",
            ) from None
        except Exception as error:
            self._drop(session)
            raise McpServerError(
                f"MCP server {name!r} failed on {what}: {_describe(error)}",
                fix=_reach_fix(session.server),
            ) from None

    def _session(self, name: str) -> _Session:
        session = self._sessions.get(name)
        if session is None:
            session = self._sessions[name] = _Session(self.servers[name], self._environ)
        return session

    def _drop(self, session: _Session) -> None:
        if self._sessions.get(session.server.name) is session:
            del self._sessions[session.server.name]
        task = asyncio.get_running_loop().create_task(session.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_all(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), *self._closing)


def _describe(error: BaseException) -> str:
    if isinstance(error, BaseExceptionGroup) and error.exceptions:
        return _describe(error.exceptions[0])
    if isinstance(error, McpServerError):
        return error.message
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _reach_fix(server: McpServer) -> str:
    if server.command is not None:
        return f"check that `{' '.join(server.command)}` runs and speaks MCP over stdio"
    return f"check that {server.url} is up and serves MCP over streamable HTTP"
