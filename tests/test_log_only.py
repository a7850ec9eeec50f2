"""Issue #24, item 3: log-only policies are evaluated and recorded, never enforced, until
`tiergate policy promote` turns one on for new runs."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import Harness
from tests.test_cli import tiergate
from tests.test_rollout import cli as rollout_cli
from tests.test_rollout import env
from tiergate.config import PACKAGED_AGENTS, PACKAGED_POLICIES, load_agent
from tiergate.core import (
    Allowed,
    Denied,
    Gate,
    RunInput,
    RunSoFar,
    RunSummary,
    Session,
    ToolCallProposal,
)
from tiergate.demo import SUPPORT_TOOLS
from tiergate.errors import PolicyError
from tiergate.forensics import replay_one
from tiergate.policies import build_bundle, cedar_schema, promoted
from tiergate.rollout import start_run
from tiergate.sensitive import pii_kinds

SPECS = SUPPORT_TOOLS.specs
SCHEMA = cedar_schema(SPECS.values())
SUPPORT = (PACKAGED_POLICIES / "support.cedar").read_text()

TRIAL = """// Tried in log-only mode before it is enforced.
@id("trial_small_refunds")
@mode("log_only")
@description("Refunds over $20 would be refused.")
forbid(principal, action == Action::"payments.issue_refund", resource)
when { context.input.amount_usd.greaterThan(decimal("20.00")) };
"""


def gate(*extra: str, base: str = SUPPORT) -> Gate:
    sources = [("support.cedar", base), *((f"extra{i}.cedar", t) for i, t in enumerate(extra))]
    bundle = load_agent("support_refund_agent", None, SPECS)
    policy = build_bundle(sources, SCHEMA)
    return Gate(
        bundle.config.name, bundle.config.allowed_tools, policy, bundle.tools, detect=pii_kinds
    )


def refund(amount: str, order: str = "ORD-5001") -> ToolCallProposal:
    return ToolCallProposal(
        tool="payments.issue_refund",
        arguments={"order_id": order, "amount_usd": amount, "reason_code": "damaged"},
    )


def test_log_only_policies_are_kept_apart_from_the_enforced_ones() -> None:
    policy = build_bundle([("support.cedar", SUPPORT), ("trial.cedar", TRIAL)], SCHEMA)
    assert "trial_small_refunds" not in policy.text
    assert "trial_small_refunds" in policy.log_only_text
    assert policy.log_only_ids == {"trial_small_refunds"}
    assert policy.annotations["trial_small_refunds"]["mode"] == "log_only"
    plain = build_bundle([("support.cedar", SUPPORT)], SCHEMA)
    assert (plain.log_only_text, plain.log_only_ids) == ("", frozenset())


def test_a_log_only_forbid_is_recorded_not_enforced() -> None:
    decision = gate(TRIAL).decide(refund("35"), 3)
    assert isinstance(decision, Allowed)
    assert decision.policy_ids == ["refunds"]  # the enforced decision, as without the trial
    assert decision.would_flip is not None
    assert decision.would_flip.kind == "allow_to_deny"
    assert decision.would_flip.policy_ids == ["trial_small_refunds"]
    assert decision.would_flip.after == "deny (policy_forbid)"
    small = gate(TRIAL).decide(refund("15"), 3)
    assert isinstance(small, Allowed)
    assert small.would_flip is None  # the trial agrees: nothing to record


def test_log_only_approval_and_permit_record_a_raise_and_an_allow() -> None:
    raised = """@id("trial_refund_approval") @mode("log_only") @approval("human")
permit(principal, action == Action::"payments.issue_refund", resource);"""
    decision = gate(raised).decide(refund("35"), 3)
    assert isinstance(decision, Allowed)
    assert decision.would_flip is not None
    assert (decision.would_flip.kind, decision.would_flip.policy_ids) == (
        "tier_raised",
        ["trial_refund_approval"],
    )
    assert decision.would_flip.after == "needs 1 approval (tier 3)"
    # Where nothing enforced permits refunds, a log-only permit records what it would allow.
    start = SUPPORT.index('@id("refunds")')
    end = SUPPORT.index("resource);", start) + len("resource);")
    without = SUPPORT[:start] + SUPPORT[end:]
    opened = """@id("trial_refunds") @mode("log_only")
permit(principal, action == Action::"payments.issue_refund", resource);"""
    denied = gate(opened, base=without).decide(refund("35"), 3)
    assert isinstance(denied, Denied)
    assert denied.code == "no_permit"
    assert denied.would_flip is not None
    assert (denied.would_flip.kind, denied.would_flip.policy_ids) == (
        "deny_to_allow",
        ["trial_refunds"],
    )
    # ... but never outweighs an enforced forbid.
    forbidden = """@id("no_refunds")
forbid(principal, action == Action::"payments.issue_refund", resource);"""
    still = gate(forbidden, opened, base=without).decide(refund("35"), 3)
    assert isinstance(still, Denied)
    assert still.would_flip is None


def test_a_log_only_policy_may_read_the_session() -> None:
    first = """@id("trial_one_refund") @mode("log_only")
forbid(principal, action == Action::"payments.issue_refund", resource)
when { context.session.calls["payments.issue_refund"] > 0 };"""
    g = gate(first)
    session = Session()
    assert g.decide(refund("5"), 3, RunSoFar(session)).would_flip is None
    session.took_effect(
        SPECS["payments.issue_refund"], {"order_id": "ORD-5001", "amount_usd": Decimal(5)}
    )
    again = g.decide(refund("5"), 4, RunSoFar(session))
    assert again.would_flip is not None
    assert again.would_flip.policy_ids == ["trial_one_refund"]


def test_a_log_only_output_rule_names_what_it_would_block() -> None:
    rule = """@id("trial_no_pii_out") @mode("log_only")
forbid(principal, action == Action::"tiergate.emit", resource)
when { context.output.contains_pii };"""
    check = gate(rule).check_output("agent.final_answer", "answer", "mail me at a@b.example.com")
    assert check.allowed
    assert check.would_block == ["trial_no_pii_out"]
    assert gate(rule).check_output("agent.final_answer", "answer", "fine").would_block == []


def test_bad_modes_and_log_only_approver_policies_are_refused(tmp_path: Path) -> None:
    bogus = '@id("x") @mode("shadow")\npermit(principal, action == Action::"crm.read_ticket", resource);'
    with pytest.raises(PolicyError, match=r"@mode\('shadow'\) is not a known mode"):
        build_bundle([("bogus.cedar", bogus)], SCHEMA)
    approvers = (PACKAGED_POLICIES / "approvers.cedar").read_text()
    first = approvers.index("@id(")
    logged = approvers[:first] + '@mode("log_only")\n' + approvers[first:]
    (tmp_path / "approvers.cedar").write_text(logged)
    config = (PACKAGED_AGENTS / "support_refund_agent.yaml").read_text()
    (tmp_path / "agent.yaml").write_text(config)
    with pytest.raises(PolicyError, match="approver policies are always enforced"):
        load_agent(str(tmp_path / "agent.yaml"), None, SPECS)


def test_promotion_removes_only_the_mode() -> None:
    text = SUPPORT + "\n" + TRIAL
    changed = promoted(text, "trial_small_refunds", "trial.cedar")
    assert changed == SUPPORT + "\n" + TRIAL.replace('@mode("log_only")\n', "")
    assert promoted(text, "nobody", "trial.cedar") is None
    with pytest.raises(PolicyError, match="enforced already"):
        promoted(text, "refunds", "trial.cedar")


def trial_agent(h: Harness, name: str, version: str = "1.0.0", trial: bool = True) -> None:
    folder = h.home / "agents"
    folder.mkdir(exist_ok=True)
    (folder / "trial.cedar").write_text(TRIAL)
    text = (PACKAGED_AGENTS / "support_refund_agent.yaml").read_text()
    text = text.replace("name: support_refund_agent", f"name: {name}")
    text = text.replace('version: "1.0.0"', f'version: "{version}"')
    if trial:
        text = text.replace('files: ["support.cedar"]', 'files: ["support.cedar", "trial.cedar"]')
    (folder / f"{name}_{version}.yaml").write_text(text)


async def test_runs_record_would_flips_the_report_counts_them_and_promotion_enforces(
    harness: Harness,
) -> None:
    h = harness
    agent = f"trial_{uuid.uuid4().hex[:6]}"  # its own agent: the report reads the shared server
    trial_agent(h, agent)
    async with h.worker():
        first = await h.env.client.execute_workflow(
            "AgentRunWorkflow",
            RunInput(agent=agent, input={"ticket_id": "T-1001"}).model_dump(),
            id=f"trial-{uuid.uuid4().hex[:8]}",
            task_queue=h.task_queue,
            result_type=RunSummary,
        )
    assert first.outcome.value == "completed", first.reason
    refund_step = next(
        s for s in first.steps if s.decision and s.decision.tool == "payments.issue_refund"
    )
    assert refund_step.decision is not None
    assert refund_step.decision.code == "allowed"  # not enforced: the refund ran
    assert refund_step.decision.would_flip is not None
    assert refund_step.decision.would_flip.policy_ids == ["trial_small_refunds"]
    assert len(h.store.rows("refunds")) == 1
    assert (await replay_one(await h.history(first.workflow_id))).ok

    code, out = await tiergate("report", "--json", "--since", "1h", "--agent", agent, env=env(h))
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["log_only_flips"] == {"trial_small_refunds": 1}

    policies = str(h.home / "agents")
    code, out = await tiergate("policy", "promote", "trial_small_refunds", "--dry-run", env=env(h))
    assert code == 0, out
    assert '-@mode("log_only")' in out
    assert "@mode" in (h.home / "agents" / "trial.cedar").read_text()
    code, out = await tiergate(
        "policy", "promote", "trial_small_refunds", "--policies", policies, env=env(h)
    )
    assert code == 0, out
    assert f"{agent}: policy version sha256:" in out
    assert "@mode" not in (h.home / "agents" / "trial.cedar").read_text()
    code, out = await tiergate("policy", "promote", "trial_small_refunds", env=env(h))
    assert code == 2
    assert "enforced already" in out
    code, out = await tiergate("policy", "promote", "no_such_policy", env=env(h))
    assert code == 2
    assert "no policy with @id('no_such_policy')" in out

    async with h.worker():
        second = await h.env.client.execute_workflow(
            "AgentRunWorkflow",
            RunInput(agent=agent, input={"ticket_id": "T-1001"}).model_dump(),
            id=f"trial-{uuid.uuid4().hex[:8]}",
            task_queue=h.task_queue,
            result_type=RunSummary,
        )
    refused = next(
        s for s in second.steps if s.decision and s.decision.tool == "payments.issue_refund"
    )
    assert refused.decision is not None
    assert (refused.decision.code, refused.decision.policy_ids) == (
        "policy_forbid",
        ["trial_small_refunds"],
    )
    assert refused.decision.policy_version != refund_step.decision.policy_version
    assert len(h.store.rows("refunds")) == 1
    assert (await replay_one(await h.history(first.workflow_id))).ok  # the old run still replays


async def test_rollout_status_shows_would_flips_per_version(harness: Harness) -> None:
    h = harness
    agent = f"trial_{uuid.uuid4().hex[:6]}"
    trial_agent(h, agent, "1.0.0", trial=False)
    trial_agent(h, agent, "2.0.0")
    await rollout_cli(
        h,
        "start",
        agent,
        "--candidate",
        "2.0.0",
        "--primary",
        "1.0.0",
        "--mode",
        "canary",
        "--share",
        "1.0",
    )
    async with h.worker():
        for ticket in ("T-1001", "T-1002"):
            handle = await start_run(
                h.env.client,
                h.settings,
                RunInput(agent=agent, input={"ticket_id": ticket, "customer_id": ticket}),
                f"trial-{uuid.uuid4().hex[:8]}",
                task_queue=h.task_queue,
            )
            if ticket == "T-1002":  # its $120 refund waits for a person: answer it no
                await h.pending(handle)
                await handle.terminate("not needed here")
            else:
                await handle.result()
    status = json.loads(await rollout_cli(h, "status", agent, "--json"))
    assert status["candidate"]["log_only_flips"] == {"trial_small_refunds": 1}
    assert status["primary"]["log_only_flips"] == {}
    text = await rollout_cli(h, "status", agent)
    assert "would flip: trial_small_refunds" in text
