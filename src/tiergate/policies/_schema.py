"""The Cedar schema, generated from the tool registry so it cannot drift from the tools.

Every tool is a Cedar action whose context carries the call's validated arguments (`input`),
its registered tier and the step number. `tiergate.emit` is the action output rules are
written against: it is asked for every piece of content leaving the system.
"""

from __future__ import annotations

from tiergate.policies._cedar_types import record_type
from tiergate.tools import ToolRegistry

EMIT_ACTION = "tiergate.emit"
FINAL_ANSWER_RESOURCE = "agent.final_answer"

OUTPUT_FACTS_TYPE = '{ "contains_pii": Bool, "pii_kinds": Set<String>, "size_bytes": Long }'


def cedar_schema(tools: ToolRegistry) -> str:
    """Cedar schema text (human-readable format) for the given tools."""
    lines = ["entity Agent;", "entity Tool;", ""]
    for spec in tools:
        context = f'{{ "input": {record_type(spec.args, spec.name)}, "tier": Long, "step": Long }}'
        lines.append(
            f'action "{spec.name}" appliesTo {{ principal: Agent, resource: Tool, context: {context} }};'
        )
    lines.append(
        f'action "{EMIT_ACTION}" appliesTo {{ principal: Agent, resource: Tool, '
        f'context: {{ "field": String, "output": {OUTPUT_FACTS_TYPE} }} }};'
    )
    return "\n".join(lines) + "\n"
