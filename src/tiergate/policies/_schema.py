"""The Cedar schema, generated from the tools' specs so it cannot drift from the tools.

Every tool is a Cedar action whose context carries the call's validated arguments (`input`),
its registered tier and the step number. `tiergate.emit` is the action output rules are
written against: it is asked for every piece of content leaving the system.
"""

from __future__ import annotations

from collections.abc import Iterable

from tiergate.core import EMIT_ACTION, ToolSpec

OUTPUT_FACTS_TYPE = '{ "contains_pii": Bool, "pii_kinds": Set<String>, "size_bytes": Long }'


def cedar_schema(tools: Iterable[ToolSpec]) -> str:
    """Cedar schema text (human-readable format) for the given tools."""
    lines = ["entity Agent;", "entity Tool;", ""]
    for spec in tools:
        context = f'{{ "input": {record_type(spec)}, "tier": Long, "step": Long }}'
        lines.append(
            f'action "{spec.name}" appliesTo {{ principal: Agent, resource: Tool, context: {context} }};'
        )
    lines.append(
        f'action "{EMIT_ACTION}" appliesTo {{ principal: Agent, resource: Tool, '
        f'context: {{ "field": String, "output": {OUTPUT_FACTS_TYPE} }} }};'
    )
    return "\n".join(lines) + "\n"


def record_type(spec: ToolSpec) -> str:
    """The Cedar record type of a tool's arguments, e.g. `{ "invoice_id": String, "amount": __cedar::decimal }`."""
    attributes = []
    for name, (ctype, optional) in spec.argument_schema.cedar.items():
        ctype = "__cedar::decimal" if ctype == "decimal" else ctype
        attributes.append(f'"{name}"{"?" if optional else ""}: {ctype}')
    return "{ " + ", ".join(attributes) + " }"
