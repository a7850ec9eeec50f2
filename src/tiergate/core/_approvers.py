"""Who may answer an approval: approvers are Cedar principals, approver policies decide.

The request is `principal = Approver::"name"` (attribute `roles`), `action = Action::"approve"`
(the authority to approve is also the authority to deny), `resource = Tool::"<tool>"`, and the
context carries the tier, the agent and the call's validated arguments (`input`), so a policy
can bound what one role may approve: `context.input has amount &&
context.input.amount.lessThanOrEqual(decimal("500.00"))`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import cedarpy

from tiergate.core._cedar import PolicyBundle, parsed_policies, to_cedar_record
from tiergate.core._tools import ToolSpec


def approver_schema(tools: Iterable[ToolSpec]) -> str:
    """The approver policies' Cedar schema for these tools.

    One ``approve`` action serves every tool, so ``context.input`` has every tool's
    arguments, each optional (a policy asks ``context.input has x`` first). An argument two
    tools type differently is left out: a policy naming it fails validation instead of
    meaning one thing for one tool and another for the other.
    """
    types: dict[str, str | None] = {}
    for spec in tools:
        for name, (ctype, _) in spec.argument_schema.cedar.items():
            ctype = "__cedar::decimal" if ctype == "decimal" else ctype
            types[name] = ctype if types.get(name, ctype) == ctype else None
    attributes = ", ".join(f'"{name}"?: {ctype}' for name, ctype in sorted(types.items()) if ctype)
    return (
        'entity Approver = { "roles": Set<String> };\n'
        "entity Tool;\n"
        'action "approve" appliesTo {\n'
        "  principal: Approver, resource: Tool,\n"
        f'  context: {{ "tier": Long, "agent": String, "input": {{ {attributes} }} }}\n'
        "};\n"
    )


_CONTEXT_KEYS = frozenset({"tier", "agent", "input"})


class ApproverGate:
    """Evaluates approver policies pinned for a run, on the run's pinned tool specs."""

    def __init__(self, bundle: PolicyBundle, tools: Mapping[str, ToolSpec]) -> None:
        self.bundle = bundle
        self.tools = tools
        self._policies = parsed_policies(bundle.text)

    def may_decide(
        self,
        approver: str,
        roles: list[str],
        agent: str,
        tool: str,
        tier: int,
        arguments: dict[str, Any],
    ) -> tuple[bool, list[str]]:
        """Whether ``approver`` may approve or deny this action, and the policies that said so."""
        spec = self.tools.get(tool)
        decimals = spec.argument_schema.decimals if spec is not None else frozenset()
        record = to_cedar_record(arguments, decimals) if spec is not None else {}
        # Runs pinned before `input` existed carry approver policies that read an argument
        # at the top of the context (`context.amount_usd`); they must decide on replay as
        # they did. The schema new policies are checked against has no such attributes.
        legacy = {k: v for k, v in record.items() if k not in _CONTEXT_KEYS}
        context = {**legacy, "tier": tier, "agent": agent, "input": record}
        request = {
            "principal": {"type": "Approver", "id": approver},
            "action": {"type": "Action", "id": "approve"},
            "resource": {"type": "Tool", "id": tool},
            "context": context,
        }
        entity = {
            "uid": {"type": "Approver", "id": approver},
            "attrs": {"roles": roles},
            "parents": [],
        }
        result = cedarpy.is_authorized(request, self._policies, [entity])
        names = result.diagnostics.id_annotations_by_reason
        ids = sorted(names.get(r, r) for r in result.diagnostics.reasons)
        return result.allowed and not result.diagnostics.errors, ids
