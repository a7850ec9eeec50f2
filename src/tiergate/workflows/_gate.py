"""The gate: the one deterministic place where a proposed call is allowed, denied or held.

Pure code over a pinned policy bundle: it runs inside the workflow (no activity round trip)
and gives the same answer on replay. Checks, in order: the tool exists, it is allowlisted,
its arguments fit the schema, emitted content passes output rules, Cedar permits it and no
forbid matches; then the tier (registered floor, raised by `@approval` annotations) decides
whether it runs now or waits for approval. Any evaluation error denies: fail closed.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import cedarpy
from pydantic import ValidationError

from tiergate.digest import call_digest
from tiergate.pii import pii_kinds
from tiergate.policies import (
    APPROVAL_LEVELS,
    EMIT_ACTION,
    PolicyBundle,
    decimal_fields,
    no_entities,
    parsed_policies,
    to_cedar_record,
)
from tiergate.tools import ToolRegistry, ToolSpec
from tiergate.workflows._records import Decision, OutputCheck, ToolCallProposal, Verdict


class _CedarAnswer(NamedTuple):
    allowed: bool
    policy_ids: list[str]
    errors: list[str]


class Gate:
    """Decisions for one agent under one pinned policy version."""

    def __init__(self, agent: str, allowlist: list[str], policy: PolicyBundle, tools: ToolRegistry):
        self.agent = agent
        self.allowlist = frozenset(allowlist)
        self.policy = policy
        self.tools = tools
        self._policies = parsed_policies(policy.text)
        self._entities = no_entities()
        self._principal = {"type": "Agent", "id": agent}
        self._approval_tiers = {
            pid: APPROVAL_LEVELS[level]
            for pid, notes in policy.annotations.items()
            if (level := notes.get("approval"))
        }

    def decide(self, proposal: ToolCallProposal, step: int) -> Decision:
        """Decide one tool call. Never raises on bad input; a bad call is a typed deny."""
        spec = self.tools.get(proposal.tool)
        if spec is None:
            return self._deny(proposal.tool, "unknown_tool", f"no tool named {proposal.tool!r}")
        if proposal.tool not in self.allowlist:
            return self._deny(
                proposal.tool,
                "not_in_allowlist",
                f"{proposal.tool} is not in this agent's allowlist",
                registered_tier=spec.tier,
            )
        try:
            arguments = spec.args.model_validate(proposal.arguments)
        except ValidationError as error:
            return self._deny(
                proposal.tool, "invalid_arguments", _describe(error), registered_tier=spec.tier
            )
        # The serializer model_dump wraps: same output, without the wrapper's keyword handling,
        # which cost as much as the dump itself on every decision (bench/gate_latency.py).
        canonical = spec.args.__pydantic_serializer__.to_python(arguments, mode="json")
        digest = call_digest(spec.name, canonical)
        for field in spec.emits:
            check = self.check_output(spec.name, field, str(getattr(arguments, field)))
            if not check.allowed:
                return self._decision(
                    Verdict.DENY,
                    "output_blocked",
                    f"{field} contains {', '.join(check.pii_kinds) or 'blocked content'}; "
                    f"blocked by {', '.join(check.policy_ids) or 'default deny'}",
                    spec,
                    canonical,
                    digest,
                    check.policy_ids,
                    alerts=check.alerts,
                )
        return self._authorize(spec, canonical, digest, step)

    def _authorize(
        self, spec: ToolSpec, canonical: dict[str, Any], digest: str, step: int
    ) -> Decision:
        record = to_cedar_record(canonical, decimal_fields(spec.args))
        context = {"input": record, "tier": spec.tier, "step": step}
        answer = self._ask(spec.name, spec.name, context)
        if answer.errors:
            return self._decision(
                Verdict.DENY,
                "policy_error",
                "policy evaluation failed: " + "; ".join(answer.errors),
                spec,
                canonical,
                digest,
                answer.policy_ids,
            )
        if not answer.allowed:
            code, reason = (
                ("policy_forbid", f"forbidden by {', '.join(answer.policy_ids)}")
                if answer.policy_ids
                else ("no_permit", f"no policy permits {spec.name} with these arguments")
            )
            alerts = self._alerts(answer.policy_ids)
            return self._decision(
                Verdict.DENY,
                code,
                reason,
                spec,
                canonical,
                digest,
                answer.policy_ids,
                alerts=alerts,
            )
        raised = {
            pid: level for pid in answer.policy_ids if (level := self._approval_tiers.get(pid))
        }
        tier = max([spec.tier, *raised.values()])
        tier_ids = sorted(
            pid for pid, level in raised.items() if level == tier and tier > spec.tier
        )
        if tier >= 3:
            verdict = Verdict.NEEDS_DUAL_APPROVAL if tier >= 4 else Verdict.NEEDS_APPROVAL
            who = "two distinct approvers" if tier >= 4 else "one human approval"
            because = f" (raised by {', '.join(tier_ids)})" if tier_ids else ""
            return self._decision(
                verdict,
                "approval_required",
                f"tier {tier}{because} requires {who}",
                spec,
                canonical,
                digest,
                answer.policy_ids,
                tier=tier,
                tier_ids=tier_ids,
            )
        return self._decision(
            Verdict.ALLOW,
            "allowed",
            f"permitted by {', '.join(answer.policy_ids)}",
            spec,
            canonical,
            digest,
            answer.policy_ids,
            tier=tier,
        )

    def check_output(self, resource: str, field: str, text: str) -> OutputCheck:
        """Evaluate output rules (`tiergate.emit`) on content leaving the system."""
        return self.check_output_facts(resource, field, pii_kinds(text), len(text.encode()))

    def check_output_facts(
        self, resource: str, field: str, kinds: list[str], size_bytes: int
    ) -> OutputCheck:
        """Output rules on facts measured elsewhere (a tool result measured in its activity)."""
        facts = {"contains_pii": bool(kinds), "pii_kinds": kinds, "size_bytes": size_bytes}
        answer = self._ask(EMIT_ACTION, resource, {"field": field, "output": facts})
        allowed = answer.allowed and not answer.errors
        return OutputCheck(
            resource=resource,
            field=field,
            allowed=allowed,
            contains_pii=bool(kinds),
            pii_kinds=kinds,
            policy_ids=answer.policy_ids,
            alerts=[] if allowed else self._alerts(answer.policy_ids),
        )

    def _ask(self, action: str, resource: str, context: dict[str, Any]) -> _CedarAnswer:
        request = {
            "principal": self._principal,
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Tool", "id": resource},
            "context": context,
        }
        result = cedarpy.is_authorized(request, self._policies, self._entities)
        diagnostics = result.diagnostics
        names = diagnostics.id_annotations_by_reason
        ids = sorted(names.get(reason, reason) for reason in diagnostics.reasons)
        return _CedarAnswer(result.allowed, ids, list(diagnostics.errors))

    def _alerts(self, policy_ids: list[str]) -> list[str]:
        return sorted(
            alert
            for pid in policy_ids
            if (alert := self.policy.annotations.get(pid, {}).get("alert"))
        )

    def _deny(
        self, tool: str, code: str, reason: str, *, registered_tier: int | None = None
    ) -> Decision:
        return Decision(
            verdict=Verdict.DENY,
            code=code,
            reason=reason,
            tool=tool,
            registered_tier=registered_tier,
            tier=registered_tier,
            policy_version=self.policy.version,
        )

    def _decision(
        self,
        verdict: Verdict,
        code: str,
        reason: str,
        spec: ToolSpec,
        canonical: dict[str, Any],
        digest: str,
        policy_ids: list[str],
        *,
        tier: int | None = None,
        tier_ids: list[str] | None = None,
        alerts: list[str] | None = None,
    ) -> Decision:
        return Decision(
            verdict=verdict,
            code=code,
            reason=reason,
            tool=spec.name,
            arguments=canonical,
            call_digest=digest,
            registered_tier=spec.tier,
            tier=spec.tier if tier is None else tier,
            policy_ids=policy_ids,
            tier_policy_ids=tier_ids or [],
            policy_version=self.policy.version,
            alerts=alerts or [],
        )


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}"
        for item in error.errors()[:5]
    )
