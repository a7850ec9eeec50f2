"""Agent configs: models, YAML loading and the compiler of inline rules to Cedar."""

from tiergate.config._load import (
    PACKAGED_AGENTS,
    PACKAGED_POLICIES,
    AgentBundle,
    compile_agent,
    find_agent,
    load_agent,
    load_agent_file,
    load_all_agents,
    parse_agent_yaml,
)
from tiergate.config._models import (
    LOG_FIELDS,
    REQUIRED_LOG_FIELDS,
    AgentConfig,
    Approvals,
    Budgets,
    ModelTiers,
    Observability,
    Policy,
    PolicyRule,
    Price,
    Prompt,
    TierApproval,
)
from tiergate.config._rules import compile_rule, compile_rules

__all__ = [
    "LOG_FIELDS",
    "PACKAGED_AGENTS",
    "PACKAGED_POLICIES",
    "REQUIRED_LOG_FIELDS",
    "AgentBundle",
    "AgentConfig",
    "Approvals",
    "Budgets",
    "ModelTiers",
    "Observability",
    "Policy",
    "PolicyRule",
    "Price",
    "Prompt",
    "TierApproval",
    "compile_agent",
    "compile_rule",
    "compile_rules",
    "find_agent",
    "load_agent",
    "load_agent_file",
    "load_all_agents",
    "parse_agent_yaml",
]
