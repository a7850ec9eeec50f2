"""From what an MCP server lists to the spec the gate governs a tool by.

The agent config sets each listed tool's tier and kind; the server's annotations can only
make that stricter, because a server that says its tool writes is believed and one that
says its tool only reads is not trusted to lower anything:

- ``readOnlyHint: false`` makes the tool a write of tier 1 at least;
- a write whose ``destructiveHint`` is true or unsaid (MCP's default is true) is tier 2 at
  least, and ``destructiveHint: true`` marks it irreversible;
- ``idempotentHint`` changes nothing: a retry of a write is safe only when the server
  applies tiergate's idempotency key, which the config says (``honors_idempotency_key``).

The input schema must be one the gate can check and Cedar can type (`compile_arguments`);
extra properties are refused whatever the server says.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tiergate.core import McpServer, ToolKind, ToolSpec, compile_arguments
from tiergate.errors import ToolRegistrationError
from tiergate.tools import Tool


@dataclass(frozen=True)
class ListedTool:
    """One tool as the server's ``tools/list`` describes it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    read_only: bool | None = None
    destructive: bool | None = None


def governed_spec(server: McpServer, listed: ListedTool) -> Tool:
    """The tool ``server.<listed>`` as the gate governs it, or ToolRegistrationError naming
    the server, the tool and what to change."""
    config = server.tools[listed.name]
    name = f"{server.name}.{listed.name}"
    tier, kind, irreversible = config.tier, ToolKind(config.kind), config.irreversible
    if listed.read_only is False:
        kind, tier = ToolKind.WRITE, max(tier, 1)
    if kind is ToolKind.WRITE and listed.destructive is not False:
        tier = max(tier, 2)
    if kind is ToolKind.WRITE and listed.destructive is True:
        irreversible = True
    schema = {**listed.input_schema, "additionalProperties": False}
    schema.pop("$schema", None)
    try:
        arguments = compile_arguments(name, schema)
        spec = ToolSpec.model_validate(
            {
                "name": name,
                "tier": tier,
                "kind": kind,
                "arguments": schema,
                "emits": tuple(config.emits),
                "session_keys": tuple(config.session_keys),
                "session_sums": tuple(config.session_sums),
                "ambiguous_when": {k: tuple(v) for k, v in config.ambiguous_when.items()},
                "description": (config.description or listed.description).split("\n\n")[0][:500],
                "irreversible": irreversible,
                "honors_idempotency_key": config.honors_idempotency_key,
            }
        )
    except ToolRegistrationError as error:
        raise ToolRegistrationError(
            f"MCP server {server.name!r}: {error.message}",
            fix=f"stop listing {listed.name} under mcp_servers.{server.name}.tools",
        ) from None
    return Tool(spec, arguments.model)


def governed_specs(server: McpServer, listing: Iterable[ListedTool]) -> list[Tool]:
    """The governed tools of every tool ``server``'s config lists; a listed tool the server
    does not offer refuses (the config names something that is not there)."""
    offered = {tool.name: tool for tool in listing}
    missing = sorted(set(server.tools) - set(offered))
    if missing:
        raise ToolRegistrationError(
            f"MCP server {server.name!r} does not offer {missing} (it offers {sorted(offered)})",
            fix=f"correct the names under mcp_servers.{server.name}.tools",
        )
    return [governed_spec(server, offered[name]) for name in server.tools]


def wire_arguments(arguments: dict[str, Any], decimals: frozenset[str]) -> dict[str, Any]:
    """A call's canonical arguments as the server's schema wants them: the gate's decimal
    text back to JSON numbers (an integral amount as an integer, else a float)."""
    wire: dict[str, Any] = {}
    for key, value in arguments.items():
        if value is None:
            continue  # canonical form omits a null; the server's schema made it optional
        if key in decimals:
            wire[key] = _number(value)
        else:
            wire[key] = value
    return wire


def _number(value: Any) -> Any:
    if isinstance(value, list):
        return [_number(v) for v in value]
    amount = Decimal(str(value))
    return int(amount) if amount == amount.to_integral_value() else float(amount)
