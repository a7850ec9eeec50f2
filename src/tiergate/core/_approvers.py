"""Who may answer an approval: approvers are Cedar principals, approver policies decide.

The request is `principal = Approver::"name"` (attribute `roles`), `action = Action::"approve"`
(the authority to approve is also the authority to deny), `resource = Tool::"<tool>"`, and the
context carries the tier, the agent and, for money-moving tools, the amount.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import cedarpy

from tiergate.core._cedar import PolicyBundle, parsed_policies, to_cedar_value

APPROVER_SCHEMA = """entity Approver = { "roles": Set<String> };
entity Tool;
action "approve" appliesTo {
  principal: Approver, resource: Tool,
  context: { "tier": Long, "agent": String, "amount_usd"?: __cedar::decimal }
};
"""


class ApproverGate:
    """Evaluates approver policies pinned for a run."""

    def __init__(self, bundle: PolicyBundle) -> None:
        self.bundle = bundle
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
        context: dict[str, Any] = {"tier": tier, "agent": agent}
        if "amount_usd" in arguments:
            try:
                context["amount_usd"] = to_cedar_value(Decimal(str(arguments["amount_usd"])))
            except InvalidOperation:
                return False, []
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
