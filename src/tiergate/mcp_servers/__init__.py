"""Model Context Protocol servers as governed toolsets.

An agent config names MCP servers and lists the tools it may use, each with its tier; the
worker connects once at start (`discover`), governs the listed tools by their schemas and
annotations (`governed_spec`), pins them into every run it loads like any tool, and runs
each verified call through a session it keeps open (`McpHub`, `McpBackend`).
"""

from tiergate.mcp_servers._backend import META_PREFIX, McpBackend, discover
from tiergate.mcp_servers._hub import McpHub
from tiergate.mcp_servers._specs import ListedTool, governed_spec, governed_specs, wire_arguments

__all__ = [
    "META_PREFIX",
    "ListedTool",
    "McpBackend",
    "McpHub",
    "discover",
    "governed_spec",
    "governed_specs",
    "wire_arguments",
]
