"""The Cedar schema, generated from the tools' specs so it cannot drift from the tools.

Every tool is a Cedar action whose context carries the call's validated arguments (`input`),
its registered tier, the step number and what the run has done so far (`session`, the
common type ``Session``: see `tiergate.core.Session`). `tiergate.emit` is the action output
rules are written against: it is asked for every piece of content leaving the system.
"""

from __future__ import annotations

from collections.abc import Iterable

from tiergate.core import EMIT_ACTION, ToolSpec

OUTPUT_FACTS_TYPE = '{ "contains_pii": Bool, "pii_kinds": Set<String>, "size_bytes": Long }'


def cedar_schema(tools: Iterable[ToolSpec], session_tools: Iterable[ToolSpec] | None = None) -> str:
    """Cedar schema text (human-readable format) for the given tools; the session describes
    ``session_tools`` (an agent's allowlisted tools: the only ones its runs can call)."""
    tools = list(tools)
    lines = [
        "entity Agent;",
        "entity Tool;",
        session_type(tools if session_tools is None else session_tools),
        "",
    ]
    for spec in tools:
        context = (
            f'{{ "input": {record_type(spec)}, "tier": Long, "step": Long, "session": Session }}'
        )
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


def session_type(tools: Iterable[ToolSpec]) -> str:
    """The common type ``Session``: counts per tool, sums and key values of declared fields."""
    tools = sorted(tools, key=lambda spec: spec.name)

    def sums(spec: ToolSpec) -> str:
        kinds = spec.argument_schema.cedar
        fields = ", ".join(
            f'"{f}": {"__cedar::decimal" if kinds[f][0] == "decimal" else "Long"}'
            for f in spec.session_sums
        )
        return f'"{spec.name}": {{ {fields} }}'

    calls = ", ".join(f'"{spec.name}": Long' for spec in tools)
    summed = ", ".join(sums(spec) for spec in tools if spec.session_sums)
    seen = ", ".join(
        f'"{spec.name}": {{ ' + ", ".join(f'"{f}": Set<String>' for f in spec.session_keys) + " }"
        for spec in tools
        if spec.session_keys
    )
    return (
        f'type Session = {{ "calls": {{ {calls} }}, "sums": {{ {summed} }}, '
        f'"sums_after": {{ {summed} }}, "seen": {{ {seen} }}, "denials": Long, '
        f'"invalid_proposals": Long, "seconds": Long }};'
    )


def with_session(schema_text: str, session_tools: Iterable[ToolSpec]) -> str:
    """``schema_text`` with ``context.session`` as `cedar_schema` describes it today.

    For schemas tiergate generated before decisions saw the session (issue #24), pinned by
    the runs of that time: every tool action's context gains ``"session": Session``, for
    the ``Session`` of ``session_tools`` (the run's pinned tools). A schema that has the
    session already, or one not in this generator's format, is returned as it is.
    """
    if "type Session" in schema_text:
        return schema_text
    before, after = (
        '"tier": Long, "step": Long }',
        '"tier": Long, "step": Long, "session": Session }',
    )
    upgraded = schema_text.replace(before, after)
    return upgraded.replace("entity Tool;\n", f"entity Tool;\n{session_type(session_tools)}\n", 1)
