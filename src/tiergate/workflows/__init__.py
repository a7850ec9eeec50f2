"""The Temporal shell: AgentRunWorkflow, continue-as-new, the retry table, telemetry, the sandbox."""

from tiergate.workflows._attributes import (
    AGENT_ATTRIBUTE,
    AGENT_VERSION_ATTRIBUTE,
    PENDING_APPROVAL_ATTRIBUTE,
    SEARCH_ATTRIBUTES,
    SHADOW_ATTRIBUTE,
    VARIANT_ATTRIBUTE,
)
from tiergate.workflows._carry import (
    CONTINUE_AS_NEW_BYTES,
    CONTINUE_AS_NEW_EVENTS,
    should_continue,
)
from tiergate.workflows._retry import (
    budgeted_retry,
    safe_to_retry,
    tool_retry,
)
from tiergate.workflows._run import (
    FAIL_RUN_ON,
    AgentRunWorkflow,
)
from tiergate.workflows._sandbox import (
    PASSTHROUGH_MODULES,
    ensure_bytecode,
    workflow_runner,
)

__all__ = [
    "AGENT_ATTRIBUTE",
    "AGENT_VERSION_ATTRIBUTE",
    "CONTINUE_AS_NEW_BYTES",
    "CONTINUE_AS_NEW_EVENTS",
    "FAIL_RUN_ON",
    "PASSTHROUGH_MODULES",
    "PENDING_APPROVAL_ATTRIBUTE",
    "SEARCH_ATTRIBUTES",
    "SHADOW_ATTRIBUTE",
    "VARIANT_ATTRIBUTE",
    "AgentRunWorkflow",
    "budgeted_retry",
    "ensure_bytecode",
    "safe_to_retry",
    "should_continue",
    "tool_retry",
    "workflow_runner",
]
