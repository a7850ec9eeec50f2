"""The gate: the one deterministic place where a proposed call is allowed, denied or held.

Pure code over a pinned policy bundle: it runs inside the workflow (no activity round trip)
and gives the same answer on replay. Checks, in order: the tool exists, it is allowlisted,
its arguments fit the schema, emitted content passes output rules, Cedar permits it and no
forbid matches; then the tier (registered floor, raised by `@approval` annotations) decides
whether it runs now or waits for approval. Any evaluation error denies: fail closed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import cedarpy
from pydantic import ValidationError

from tiergate.core._agent import AgentBundle
from tiergate.core._cedar import (
    APPROVAL_LEVELS,
    EMIT_ACTION,
    PolicyBundle,
    no_entities,
    parsed_policies,
    to_cedar_record,
)
from tiergate.core._decision import Allowed, Decision, Denied, Held, OutputCheck, Verdict
from tiergate.core._digest import call_digest
from tiergate.core._flips import flip
from tiergate.core._proposal import ToolCallProposal
from tiergate.core._session import NOTHING_YET, RunSoFar
from tiergate.core._tools import ToolSpec

#: Finds sensitive data in text: the kinds found (``email``, ``card_number`` ...), none if clean.
#: Output rules see these as ``output.contains_pii`` and ``output.pii_kinds``.
Detector = Callable[[str], list[str]]


class _CedarAnswer(NamedTuple):
    allowed: bool
    policy_ids: list[str]
    errors: list[str]


class Gate:
    """Decisions for one agent under one pinned policy version and one pinned set of tools."""

    def __init__(
        self,
        agent: str,
        allowlist: list[str],
        policy: PolicyBundle,
        tools: Mapping[str, ToolSpec],
        *,
        detect: Detector,
        other_tools: Iterable[str] = (),
    ):
        self.agent = agent
        self.detect = detect
        self.allowlist = frozenset(allowlist)
        self.policy = policy
        self.tools = dict(tools)
        self.other_tools = frozenset(other_tools)
        self._policies = parsed_policies(policy.text)
        # Log-only policies are evaluated with the enforced ones, on a second policy set,
        # only to record where they would change a decision: bundles without them pay nothing.
        self._with_log_only = (
            parsed_policies(policy.text + "\n" + policy.log_only_text)
            if policy.log_only_text
            else None
        )
        self._log_only = policy.log_only_ids
        self._reads_session = policy.reads_session or "context.session" in policy.log_only_text
        self._entities = no_entities()
        self._principal = {"type": "Agent", "id": agent}
        self._approval_tiers = {
            pid: APPROVAL_LEVELS[level]
            for pid, notes in policy.annotations.items()
            if (level := notes.get("approval"))
        }

    @classmethod
    def of(cls, bundle: AgentBundle, *, detect: Detector) -> Gate:
        """The gate of a run pinned to ``bundle``: its policy set and its tools' specs."""
        config = bundle.config
        return cls(
            config.name,
            config.allowed_tools,
            bundle.policy,
            bundle.tools,
            detect=detect,
            other_tools=bundle.other_tools,
        )

    def decide(
        self, proposal: ToolCallProposal, step: int, so_far: RunSoFar = NOTHING_YET
    ) -> Decision:
        """Decide one tool call in a run that has done ``so_far`` (``context.session``).
        Never raises on bad input; a bad call is a typed deny. Decided by the enforced
        policies alone; where the log-only ones would change that, `would_flip` says how."""
        decision = self._decide(proposal, step, so_far, self._policies)
        if self._with_log_only is None:
            return decision
        logged = self._decide(proposal, step, so_far, self._with_log_only)
        if (would := flip(decision, logged, self._log_only)) is None:
            return decision
        return decision.model_copy(update={"would_flip": would})

    def _decide(
        self,
        proposal: ToolCallProposal,
        step: int,
        so_far: RunSoFar,
        policies: cedarpy.PolicySet,
    ) -> Decision:
        spec = self.tools.get(proposal.tool)
        if spec is None and proposal.tool in self.other_tools:
            return self._refuse(
                proposal.tool,
                "not_in_allowlist",
                f"{proposal.tool} is not in this agent's allowlist",
            )
        if spec is None:
            return self._refuse(proposal.tool, "unknown_tool", f"no tool named {proposal.tool!r}")
        if proposal.tool not in self.allowlist:
            return self._refuse(
                proposal.tool,
                "not_in_allowlist",
                f"{proposal.tool} is not in this agent's allowlist",
                registered_tier=spec.tier,
            )
        try:
            canonical = spec.canonical_arguments(proposal.arguments)
        except ValidationError as error:
            return self._refuse(
                proposal.tool, "invalid_arguments", _describe(error), registered_tier=spec.tier
            )
        digest = call_digest(spec.name, canonical)
        evidence = _Evidence(spec, canonical, digest, self.policy.version)
        for field in spec.emits:
            text = str(canonical.get(field, ""))
            check = self._check(spec.name, field, self.detect(text), len(text.encode()), policies)
            if not check.allowed:
                return evidence.denied(
                    "output_blocked",
                    f"{field} contains {', '.join(check.pii_kinds) or 'blocked content'}; "
                    f"blocked by {', '.join(check.policy_ids) or 'default deny'}",
                    check.policy_ids,
                    alerts=check.alerts,
                )
        return self._authorize(evidence, step, so_far, policies)

    def _authorize(
        self, evidence: _Evidence, step: int, so_far: RunSoFar, policies: cedarpy.PolicySet
    ) -> Decision:
        spec = evidence.spec
        record = to_cedar_record(evidence.canonical, spec.argument_schema.decimals)
        context: dict[str, Any] = {"input": record, "tier": spec.tier, "step": step}
        if self._reads_session:  # built only for policies that read it: it costs per decision
            context["session"] = so_far.context(self.tools, spec, evidence.canonical)
        answer = self._ask(spec.name, spec.name, context, policies)
        if answer.errors:
            return evidence.denied(
                "policy_error",
                "policy evaluation failed: " + "; ".join(answer.errors),
                answer.policy_ids,
            )
        if not answer.allowed:
            code, reason = (
                ("policy_forbid", f"forbidden by {', '.join(answer.policy_ids)}")
                if answer.policy_ids
                else ("no_permit", f"no policy permits {spec.name} with these arguments")
            )
            return evidence.denied(
                code, reason, answer.policy_ids, alerts=self._alerts(answer.policy_ids)
            )
        raised = {
            pid: level for pid in answer.policy_ids if (level := self._approval_tiers.get(pid))
        }
        tier = max([spec.tier, *raised.values()])
        if tier < 3:
            return evidence.allowed(
                f"permitted by {', '.join(answer.policy_ids)}", answer.policy_ids, tier
            )
        tier_ids = sorted(
            pid for pid, level in raised.items() if level == tier and tier > spec.tier
        )
        who = "two distinct approvers" if tier >= 4 else "one human approval"
        because = f" (raised by {', '.join(tier_ids)})" if tier_ids else ""
        return evidence.held(
            f"tier {tier}{because} requires {who}", answer.policy_ids, tier, tier_ids
        )

    def check_output(self, resource: str, field: str, text: str) -> OutputCheck:
        """Evaluate output rules (`tiergate.emit`) on content leaving the system."""
        return self.check_output_facts(resource, field, self.detect(text), len(text.encode()))

    def check_output_facts(
        self, resource: str, field: str, kinds: list[str], size_bytes: int
    ) -> OutputCheck:
        """Output rules on facts measured elsewhere (a tool result measured in its activity).
        Where log-only rules would block what passed, `would_block` names them."""
        check = self._check(resource, field, kinds, size_bytes, self._policies)
        if not check.allowed or self._with_log_only is None:
            return check
        logged = self._check(resource, field, kinds, size_bytes, self._with_log_only)
        if logged.allowed:
            return check
        blocking = [pid for pid in logged.policy_ids if pid in self._log_only]
        return check.model_copy(update={"would_block": blocking or logged.policy_ids})

    def _check(
        self,
        resource: str,
        field: str,
        kinds: list[str],
        size_bytes: int,
        policies: cedarpy.PolicySet,
    ) -> OutputCheck:
        facts = {"contains_pii": bool(kinds), "pii_kinds": kinds, "size_bytes": size_bytes}
        answer = self._ask(EMIT_ACTION, resource, {"field": field, "output": facts}, policies)
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

    def _ask(
        self, action: str, resource: str, context: dict[str, Any], policies: cedarpy.PolicySet
    ) -> _CedarAnswer:
        request = {
            "principal": self._principal,
            "action": {"type": "Action", "id": action},
            "resource": {"type": "Tool", "id": resource},
            "context": context,
        }
        result = cedarpy.is_authorized(request, policies, self._entities)
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

    def _refuse(
        self, tool: str, code: str, reason: str, *, registered_tier: int | None = None
    ) -> Denied:
        """A denial of a call that has no valid arguments (so no digest) to show."""
        return Denied(
            code=code,
            reason=reason,
            tool=tool,
            registered_tier=registered_tier,
            tier=registered_tier,
            policy_version=self.policy.version,
        )


class _Evidence(NamedTuple):
    """A call with valid arguments: what any decision on it records."""

    spec: ToolSpec
    canonical: dict[str, Any]
    digest: str
    policy_version: str

    def _recorded(self, policy_ids: list[str], tier: int) -> dict[str, Any]:
        return {
            "tool": self.spec.name,
            "arguments": self.canonical,
            "call_digest": self.digest,
            "registered_tier": self.spec.tier,
            "tier": tier,
            "policy_ids": policy_ids,
            "policy_version": self.policy_version,
        }

    def allowed(self, reason: str, policy_ids: list[str], tier: int) -> Allowed:
        return Allowed(code="allowed", reason=reason, **self._recorded(policy_ids, tier))

    def held(self, reason: str, policy_ids: list[str], tier: int, tier_ids: list[str]) -> Held:
        verdict = Verdict.NEEDS_DUAL_APPROVAL if tier >= 4 else Verdict.NEEDS_APPROVAL
        return Held(
            verdict=verdict,
            code="approval_required",
            reason=reason,
            tier_policy_ids=tier_ids,
            **self._recorded(policy_ids, tier),
        )

    def denied(
        self, code: str, reason: str, policy_ids: list[str], *, alerts: list[str] | None = None
    ) -> Denied:
        return Denied(
            code=code,
            reason=reason,
            alerts=alerts or [],
            **self._recorded(policy_ids, self.spec.tier),
        )


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in item['loc']) or 'arguments'}: {item['msg']}"
        for item in error.errors()[:5]
    )
