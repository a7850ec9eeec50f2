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
    AgentConfig,
    Approvals,
    Budgets,
    ModelTiers,
    Policy,
    PolicyRule,
    Price,
    Prompt,
    TierApproval,
)
from tiergate.config._rules import compile_rule, compile_rules

__all__ = [
    "PACKAGED_AGENTS",
    "PACKAGED_POLICIES",
    "AgentBundle",
    "AgentConfig",
    "Approvals",
    "Budgets",
    "ModelTiers",
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
