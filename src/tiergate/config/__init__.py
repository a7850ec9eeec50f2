"""Agent configs from files: finding, parsing and pinning them into the bundle a run uses."""

from tiergate.config._catalog import AgentCatalog
from tiergate.config._load import (
    PACKAGED_AGENTS,
    PACKAGED_POLICIES,
    agent_versions,
    compile_agent,
    declared_mcp_servers,
    find_agent,
    load_agent,
    load_agent_file,
    load_all_agents,
    parse_agent_yaml,
    tool_schemas_hash,
)

__all__ = [
    "PACKAGED_AGENTS",
    "PACKAGED_POLICIES",
    "AgentCatalog",
    "agent_versions",
    "compile_agent",
    "declared_mcp_servers",
    "find_agent",
    "load_agent",
    "load_agent_file",
    "load_all_agents",
    "parse_agent_yaml",
    "tool_schemas_hash",
]
