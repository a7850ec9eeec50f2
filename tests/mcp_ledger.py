"""A ledger MCP server of our own, built with the MCP SDK, for tiergate's MCP tests.

    python tests/mcp_ledger.py stdio
    python tests/mcp_ledger.py http PORT        # streamable HTTP on 127.0.0.1:PORT/mcp

``LEDGER_SCHEMA_FILE`` names a file that, when it reads ``2``, gives ``transfer`` a required
``memo`` (the server's schema changed). ``LEDGER_LOG`` names a file each applied transfer is appended to (one JSON line with the
``_meta`` tiergate sent), ``LEDGER_TOKEN`` makes the HTTP server want
``Authorization: Bearer <token>``. Transfers apply each idempotency key once.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

ledger = MCPServer("ledger")
BALANCES = {"ACC-1": 120, "ACC-2": 5}
APPLIED: dict[str, dict[str, Any]] = {}


@ledger.tool(annotations=ToolAnnotations(read_only_hint=True))
def balance(account: str) -> dict[str, Any]:
    """The balance of one account."""
    if account not in BALANCES:
        raise ToolError(f"no account {account}")
    return {"account": account, "balance": BALANCES[account]}


def _apply(account: str, amount: float, ctx: Context) -> dict[str, Any]:
    meta = dict(ctx.request_context.meta or {})
    key = str(meta.get("io.tiergate/idempotency_key", ""))
    if key and key in APPLIED:
        return APPLIED[key]
    if BALANCES.get(account, 0) < amount:
        raise ToolError(f"insufficient funds in {account}")
    BALANCES[account] -= int(amount)
    result = {"account": account, "moved": amount, "balance": BALANCES[account]}
    if key:
        APPLIED[key] = result
    if log := os.environ.get("LEDGER_LOG"):
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps({"account": account, "amount": amount, "meta": meta}) + "\n")
    return result


_WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=True)
_SCHEMA = os.environ.get("LEDGER_SCHEMA_FILE")
if _SCHEMA and Path(_SCHEMA).is_file() and Path(_SCHEMA).read_text().strip() == "2":

    @ledger.tool(name="transfer", annotations=_WRITES)
    def transfer_with_memo(account: str, amount: float, memo: str, ctx: Context) -> dict[str, Any]:
        """Move money out of an account, saying why (schema 2)."""
        return _apply(account, amount, ctx)

else:

    @ledger.tool(annotations=_WRITES)
    def transfer(account: str, amount: float, ctx: Context) -> dict[str, Any]:
        """Move money out of an account."""
        return _apply(account, amount, ctx)


@ledger.tool(annotations=ToolAnnotations(read_only_hint=True))
async def slow(seconds: float) -> dict[str, Any]:
    """Answer after a while."""
    await anyio.sleep(seconds)
    return {"slept": seconds}


@ledger.tool(annotations=ToolAnnotations(read_only_hint=True))
def nested(filter: dict[str, Any]) -> dict[str, Any]:
    """A tool whose nested argument Cedar cannot type."""
    return {"filter": filter}


class BearerOnly:
    """Refuses every request without ``Authorization: Bearer <token>``."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                response: Response = JSONResponse({"error": "unauthorized"}, status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def main() -> None:
    if sys.argv[1:2] == ["http"]:
        app: ASGIApp = ledger.streamable_http_app()
        if token := os.environ.get("LEDGER_TOKEN"):
            app = BearerOnly(app, token)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
    else:
        ledger.run("stdio")


if __name__ == "__main__":
    main()
