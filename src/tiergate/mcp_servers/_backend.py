"""MCP servers as a worker's tool backend: discovery at start, one ``tools/call`` per call.

Each verified call carries, in the request's ``_meta``, the run, the step and the call's
idempotency key (``io.tiergate/run_id``, ``io.tiergate/step``,
``io.tiergate/idempotency_key``), so a server that honors the key applies a retried write
once. The call's scoped credential is not sent: it is for tiergate's own backends, and a
third-party server has no use for it.

A result the server marks as an error is the tool's answer (recorded as a failed call and
fed back to the model, not retried); a server that is down or silent raises
`McpServerError`, which the usual retry table handles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tiergate.core import McpServer, compile_arguments
from tiergate.errors import ToolBackendError
from tiergate.mcp_servers._hub import McpHub
from tiergate.mcp_servers._specs import governed_specs, wire_arguments
from tiergate.tools import Tool, ToolCall

#: The ``_meta`` prefix of what tiergate tells a server about a call.
META_PREFIX = "io.tiergate/"


@dataclass(frozen=True)
class _Route:
    server: str
    tool: str
    decimals: frozenset[str]


def discover(servers: list[McpServer]) -> tuple[McpHub, list[Tool]]:
    """Open a session to each server and govern the tools its config lists; on any
    failure the sessions opened so far are closed and the error (naming the server) raised."""
    hub = McpHub(servers)
    try:
        tools = [
            tool for server in servers for tool in governed_specs(server, hub.listing(server.name))
        ]
    except BaseException:
        hub.close()
        raise
    return hub, tools


class McpBackend:
    """Runs verified calls of MCP tools through the hub's sessions."""

    def __init__(self, hub: McpHub, tools: list[Tool]) -> None:
        self.hub = hub
        self._routes: dict[str, _Route] = {}
        for tool in tools:
            server, _, remote = tool.name.partition(".")
            decimals = compile_arguments(tool.name, tool.spec.arguments).decimals
            self._routes[tool.name] = _Route(server, remote, decimals)

    def __contains__(self, name: object) -> bool:
        return name in self._routes

    def run(self, tool: Tool, arguments: BaseModel, call: ToolCall) -> tuple[dict[str, Any], bool]:
        route = self._routes.get(tool.name)
        if route is None:
            raise ToolBackendError(f"no MCP server of this worker serves {tool.name}")
        wire = wire_arguments(arguments.model_dump(mode="json"), route.decimals)
        meta = {
            f"{META_PREFIX}run_id": call.run_id,
            f"{META_PREFIX}step": call.step,
            f"{META_PREFIX}idempotency_key": call.idempotency_key,
        }
        result = self.hub.call(route.server, route.tool, wire, meta)
        content = [block.model_dump(mode="json", exclude_none=True) for block in result.content]
        if result.is_error:
            text = " ".join(str(block.get("text", "")) for block in content).strip()
            raise ToolBackendError(f"{tool.name} returned an error: {text or json.dumps(content)}")
        if isinstance(result.structured_content, dict):
            return dict(result.structured_content), False
        # The server cannot tell tiergate it replayed a key; it answers as it answered.
        return {"content": content}, False
