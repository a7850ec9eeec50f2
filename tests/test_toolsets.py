"""Issue #21, item 1: a team's own Python functions as governed tools.

A toolset that is not the demo's (`acme`, defined here) registers with clear refusals, and its
tools are gated, budgeted, approved, recorded, audited and replayed exactly like the demo's,
on a real Temporal dev server.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.conftest import OFFLINE, Harness, scripted
from tests.test_cli import tiergate
from tests.test_replay import replayer
from tiergate import Replayed, TiergatePlugin, ToolCall, Toolkit, Toolset
from tiergate.approvals.client import decide
from tiergate.control import CapLedger
from tiergate.core import (
    WORKFLOW_NAME,
    ApprovalDecision,
    ApproverGate,
    Cap,
    Outcome,
    RunSummary,
    approver_schema,
)
from tiergate.errors import (
    ConfigError,
    EvalError,
    PolicyError,
    ToolBackendError,
    ToolRegistrationError,
)
from tiergate.evals import Case, Observed, Suite, judge, run_suite
from tiergate.forensics import Candidate, audit_approvals, shadow_runs, ungated_tool_calls
from tiergate.policies import build_bundle
from tiergate.tools import ToolsetBackend, load_toolsets
from tiergate.worker import build_worker

acme = Toolset("acme")
#: What the functions saw, for the tests to check: (tool, arguments, call, where it ran: the
#: thread's name for a sync function, the event loop's id for an async one).
SEEN: list[tuple[str, dict[str, Any], ToolCall | None, str]] = []
REFUNDED: dict[str, Decimal] = {}


class RefundArgs(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    invoice_id: Annotated[str, Field(pattern=r"^INV-[0-9]{1,8}$")]
    amount_usd: Annotated[Decimal, Field(gt=0, le=Decimal("100000"), multiple_of=Decimal("0.01"))]


@acme.tool(tier=0)
async def get_invoice(invoice_id: str, with_lines: bool = False) -> dict[str, Any]:
    """Read one invoice."""
    await asyncio.sleep(0)
    loop = str(id(asyncio.get_running_loop()))
    SEEN.append(("acme.get_invoice", {"invoice_id": invoice_id}, None, loop))
    return {"invoice_id": invoice_id, "total_usd": "900.00", "lines": [] if with_lines else None}


@acme.tool(tier=2, kind="write", irreversible=True, honors_idempotency_key=True)
def refund(args: RefundArgs, call: ToolCall) -> dict[str, Any]:
    """Refund part of an invoice, once per idempotency key."""
    SEEN.append(
        ("acme.refund", args.model_dump(mode="json"), call, threading.current_thread().name)
    )
    REFUNDED.setdefault(call.idempotency_key, args.amount_usd)
    return {"refunded_usd": str(REFUNDED[call.idempotency_key])}


class Open(BaseModel):
    """An argument model that lets extra fields through (refused as a tool's)."""

    x: int


ACME = Toolkit.of(acme)
RULES = [
    {
        "id": "acme_refunds_over_100_need_a_person",
        "tool": "acme.refund",
        "condition": "input.amount_usd <= 100",
        "on_fail": "escalate_to_human",
    },
    {
        "id": "acme_refunds_never_over_1000",
        "tool": "acme.refund",
        "condition": "input.amount_usd <= 1000",
        "on_fail": "block",
    },
]


POLICY = """
@id("acme_invoices")
permit(principal, action == Action::"acme.get_invoice", resource);

@id("acme_refunds")
permit(principal, action == Action::"acme.refund", resource);

@id("acme_outputs")
permit(principal, action == Action::"tiergate.emit", resource);
"""
APPROVERS = """
@id("billing_leads_approve_acme_refunds")
permit(principal, action == Action::"approve", resource == Tool::"acme.refund")
when { principal.roles.contains("billing_lead") && context.tier <= 3 };
"""


# -- registration ------------------------------------------------------------------------------


def test_a_tool_needs_a_tier_in_range_and_a_known_kind() -> None:
    tools = Toolset("t")
    with pytest.raises(ToolRegistrationError, match="has no tier") as error:

        @tools.tool()
        def untiered(x: str) -> dict[str, Any]:
            return {}

    assert "tier=0..4" in (error.value.fix or "")
    for tier in (5, -1, True):
        with pytest.raises(ToolRegistrationError, match="has tier"):

            @tools.tool(tier=tier)
            def badly_tiered(x: str) -> dict[str, Any]:
                return {}

    # A kind outside read/write, as a config-driven caller could pass it: typed Any on
    # purpose, since the type checker would refuse the literal before the refusal is tested.
    unknown_kind: Any = "delete"
    with pytest.raises(ToolRegistrationError, match="has kind"):

        @tools.tool(tier=1, kind=unknown_kind)
        def wrong_kind(x: str) -> dict[str, Any]:
            return {}


def test_what_the_gate_could_not_govern_is_refused() -> None:
    tools = Toolset("t")
    with pytest.raises(ToolRegistrationError, match="emits unknown fields"):

        @tools.tool(tier=1, kind="write", emits=("body",))
        def send(to: str) -> dict[str, Any]:
            return {}

    with pytest.raises(ToolRegistrationError, match="cannot be described"):

        @tools.tool(tier=0)
        def loose(*names: str) -> dict[str, Any]:
            return {}

    # A parameter without an annotation (a lambda's, which strict typing lets through):
    # the schema could not say what it takes.
    with pytest.raises(ToolRegistrationError, match="parameter 'x' has no type"):
        tools.tool(tier=0, name="untyped")(lambda x: {})

    with pytest.raises(ToolRegistrationError, match="only argument"):

        @tools.tool(tier=0)
        def mixed(args: RefundArgs, extra: int) -> dict[str, Any]:
            return {}

    with pytest.raises(ToolRegistrationError, match="accepts extra fields"):

        @tools.tool(tier=0)
        def permissive(args: Open) -> dict[str, Any]:
            return {}

    @tools.tool(tier=0)
    def once(x: int) -> dict[str, Any]:
        return {}

    with pytest.raises(ToolRegistrationError, match="registered twice"):

        @tools.tool(tier=0, name="once")
        def again(x: int) -> dict[str, Any]:
            return {}

    with pytest.raises(ToolRegistrationError, match="is not valid"):
        Toolset("acme.payments")
    with pytest.raises(ToolRegistrationError, match="registered twice"):
        Toolkit.of(acme, acme)


def test_typed_parameters_become_a_strict_schema() -> None:
    spec = acme.tools.specs["acme.get_invoice"]
    assert spec.tier == 0
    assert spec.kind == "read"
    assert spec.description == "Read one invoice."
    schema = spec.arguments
    assert schema["required"] == ["invoice_id"]
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) == {"invoice_id", "with_lines"}
    written = acme.tools.specs["acme.refund"]
    assert (written.kind, written.irreversible, written.honors_idempotency_key) == (
        "write",
        True,
        True,
    )
    assert written.arguments == RefundArgs.model_json_schema()


def test_the_backend_calls_sync_and_async_functions_and_wants_a_dict() -> None:
    backend = ToolsetBackend([acme])
    call = ToolCall(run_id="r", step=1, agent="a", idempotency_key="k-1", credential="c")
    invoice = acme.tools.get("acme.get_invoice")
    assert invoice is not None
    output, replayed = backend.run(invoice, invoice.args.model_validate({"invoice_id": "I"}), call)
    assert output["invoice_id"] == "I"
    assert replayed is False
    odd = Toolset("odd")

    @odd.tool(tier=0)
    def listing() -> list[str]:
        return ["not", "a", "dict"]

    tool = odd.tools.get("odd.listing")
    assert tool is not None
    with pytest.raises(ToolBackendError, match="not a dict"):
        ToolsetBackend([odd]).run(tool, tool.args.model_validate({}), call)


def test_an_async_function_past_its_deadline_is_cancelled_not_waited_for() -> None:
    """A hung coroutine on the worker's loop does not hold the activity's thread for ever."""
    hung = Toolset("hung")
    cancelled = threading.Event()

    @hung.tool(tier=0)
    async def wait() -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    tool = hung.tools.get("hung.wait")
    assert tool is not None
    call = ToolCall(run_id="r", step=1, agent="a", idempotency_key="k-1", credential="c")
    backend = ToolsetBackend([hung], loop, deadline=lambda: 0.2)
    with pytest.raises(TimeoutError, match=r"did not return within 0\.2s"):
        backend.run(tool, tool.args.model_validate({}), call)
    assert cancelled.wait(5)
    # Without a worker loop the same deadline holds on a loop of the call's own.
    with pytest.raises(TimeoutError):
        ToolsetBackend([hung], deadline=lambda: 0.2).run(tool, tool.args.model_validate({}), call)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


# -- governed end to end -----------------------------------------------------------------------


def acme_agent(h: Harness) -> str:
    folder = h.home / "agents"
    folder.mkdir(exist_ok=True)
    agent = {
        "name": "acme_billing",
        "version": "1",
        "model_tier": {"executor": "frontier"},
        "models": OFFLINE,
        "tools": {"allowlist": ["acme.get_invoice", "acme.refund"]},
        # The team's own policies: none of the demo's files.
        "policy": {"engine": "cedar", "files": ["acme.cedar"], "rules": RULES},
        "approvals": {"policy_files": ["acme-approvers.cedar"]},
    }
    (folder / "acme_billing.yaml").write_text(yaml.safe_dump({"agent": agent}))
    (folder / "acme.cedar").write_text(POLICY)
    (folder / "acme-approvers.cedar").write_text(APPROVERS)
    return "acme_billing"


async def start_acme(
    h: Harness, agent: str, outputs: dict[str, Any], requester: str = "svc"
) -> WorkflowHandle[Any, RunSummary]:
    """Start a run of ``agent`` on the harness's queue (a worker serving ACME must run)."""
    return await h.env.client.start_workflow(
        WORKFLOW_NAME,
        h.input(agent, input={}, requester=requester, model_overrides=outputs),
        id=f"acme-{uuid.uuid4()}",
        task_queue=h.task_queue,
        result_type=RunSummary,
    )


def acme_call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"kind": "tool_call", "tool": f"acme.{tool}", "arguments": arguments, "reason": "t"}


async def test_a_team_toolset_is_gated_approved_recorded_and_replayed(harness: Harness) -> None:
    h = harness
    h.registry.add("lead", ["billing_lead"], demo_key=True)
    agent = acme_agent(h)
    SEEN.clear()
    outputs = scripted(
        acme_call("get_invoice", invoice_id="INV-7"),
        acme_call("refund", invoice_id="INV-7", amount_usd="40"),
        acme_call("refund", invoice_id="INV-7", amount_usd="400"),  # a person decides
        acme_call("refund", invoice_id="INV-7", amount_usd="5000"),  # blocked: ends the run
    )
    async with build_worker(h.env.client, h.settings, ACME, task_queue=h.task_queue):
        handle = await start_acme(h, agent, outputs, requester="billing-svc")
        pending = await h.pending(handle)
        assert (pending.tool, pending.tier) == ("acme.refund", 3)
        assert pending.policy_ids == ["acme_refunds", "acme_refunds_over_100_need_a_person"]
        await decide(h.env.client, h.registry, handle.id, "lead", ApprovalDecision.APPROVE, "ok")
        summary = await handle.result()
    verdicts = [(s.decision.verdict, s.decision.code) for s in summary.steps if s.decision]
    assert verdicts == [
        ("allow", "allowed"),
        ("allow", "allowed"),
        ("allow", "approved"),
        ("deny", "policy_forbid"),
    ]
    assert summary.outcome == Outcome.DENIED, summary.reason
    refunds = [(a, c) for tool, a, c, _ in SEEN if tool == "acme.refund"]
    assert [a["amount_usd"] for a, _ in refunds] == ["40.00", "400.00"]
    for _, call in refunds:
        assert call is not None
        assert call.run_id == handle.id
        assert call.agent == "acme_billing"
        assert call.idempotency_key.startswith(handle.id)
        assert call.credential.count(".") == 2  # the scoped JWT the broker minted
    # The sync function ran in the activity's thread, the async one on the worker's loop.
    assert "MainThread" not in {where for tool, _, _, where in SEEN if tool == "acme.refund"}
    worker_loop = str(id(asyncio.get_running_loop()))
    assert [where for tool, _, _, where in SEEN if tool == "acme.get_invoice"] == [worker_loop]
    history = await h.history(handle.id)
    assert ungated_tool_calls(history) == []
    audit = audit_approvals(history)
    assert audit.ok, audit.findings
    await replayer().replay_workflow(history)
    # An eval judges the team's trajectory without knowing its backend (item 5).
    assert judge(trajectory_case(TRAJECTORY), Observed(summary=summary)) == []
    proposed = {**TRAJECTORY, "of": "proposed"}
    assert judge(trajectory_case(proposed), Observed(summary=summary)) == [
        "behavior.trajectory.never: acme.refund(amount_usd=5000*) was proposed (call 4)"
    ]
    backwards = {"in_order": [TRAJECTORY["in_order"][1], TRAJECTORY["in_order"][0]]}
    assert judge(trajectory_case(backwards), Observed(summary=summary)) == [
        "behavior.trajectory.in_order: no acme.get_invoice(invoice_id=INV-*) after call 2 "
        "(executed: acme.get_invoice, acme.refund, acme.refund)"
    ]
    three = {"any_order": [{"tool": "acme.refund"}] * 3}
    assert judge(trajectory_case(three), Observed(summary=summary))[0].startswith(
        "behavior.trajectory.any_order: expected acme.refund, acme.refund, acme.refund"
    )


TRAJECTORY: dict[str, Any] = {
    "in_order": [
        {"tool": "acme.get_invoice", "arguments": {"invoice_id": "INV-*"}},
        {"tool": "acme.refund", "arguments": {"amount_usd": "40.00"}},
    ],
    "any_order": [
        {"tool": "acme.refund"},
        {"tool": "acme.*", "arguments": {"amount_usd": "4??.00"}},
    ],
    "never": [{"tool": "acme.refund", "arguments": {"amount_usd": "5000*"}}],
}


def trajectory_case(trajectory: dict[str, Any]) -> Case:
    return Case.model_validate({"id": "acme", "input": {}, "expect": {"trajectory": trajectory}})


# -- loading toolsets: import paths and installed packages -------------------------------------

BILLING = """
from tiergate import Toolset

billing = Toolset("billing")


@billing.tool(tier=0)
def lookup(account_id: str) -> dict:
    return {"account_id": account_id}
"""


def test_import_paths_name_toolsets_or_say_what_is_wrong() -> None:
    assert load_toolsets("tests.test_toolsets:acme") == [acme]
    for path, message in (
        ("tests.test_toolsets", "not an import path"),
        ("no_such_module_here:acme", "cannot import"),
        ("tests.test_toolsets:missing", "has no 'missing'"),
        ("tests.test_toolsets:RULES", "not a Toolset"),
    ):
        with pytest.raises(ToolRegistrationError, match=message):
            load_toolsets(path)


async def test_the_cli_serves_toolsets_by_path_and_from_installed_packages(
    tmp_path: Path,
) -> None:
    (tmp_path / "billing_tools.py").write_text(BILLING)
    env = {
        "TIERGATE_HOME": str(tmp_path / "home"),
        "TIERGATE_TOOLSETS": '["billing_tools:billing"]',
    }
    code, out = await tiergate("policy", "schema", env=env, cwd=tmp_path)
    assert code == 0, out
    assert 'action "billing.lookup"' in out
    assert "crm.read_ticket" not in out  # a team's worker does not serve the demo
    code, out = await tiergate(
        "worker", "--toolset", "billing_tools:nothing", env=env, cwd=tmp_path
    )
    assert code == 2
    assert "has no 'nothing'" in out
    # An installed package offers its toolset through the `tiergate.toolsets` entry points.
    site = tmp_path / "site"
    (site / "billing_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "billing_pkg-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: billing-pkg\nVersion: 1.0\n"
    )
    (site / "billing_pkg-1.0.dist-info" / "entry_points.txt").write_text(
        "[tiergate.toolsets]\nbilling = billing_tools:billing\n"
    )
    (site / "billing_tools.py").write_text(BILLING)
    installed = {"TIERGATE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(site)}
    (tmp_path / "home").mkdir(exist_ok=True)  # run from a folder without billing_tools.py
    code, out = await tiergate("policy", "schema", env=installed, cwd=tmp_path / "home")
    assert code == 0, out
    assert 'action "billing.lookup"' in out


# -- the worker is the team's own: TiergatePlugin -----------------------------------------------


async def test_a_team_worker_with_the_plugin_governs_its_toolset(harness: Harness) -> None:
    """The team's own `Client` and `Worker`, with `TiergatePlugin` on the client: the same
    workflow, gate and tool runner, and a worker that lacks an allowlisted tool refuses."""
    h = harness
    agent = acme_agent(h)
    plugin = TiergatePlugin([acme], settings=h.settings)
    target = h.env.client.service_client.config.target_host
    client = await Client.connect(target, plugins=[plugin])
    SEEN.clear()
    outputs = scripted(
        acme_call("refund", invoice_id="INV-9", amount_usd="25"),
        {"kind": "final_answer", "answer": "refunded", "reason": "t"},
    )
    async with Worker(client, task_queue=h.task_queue):
        summary = await client.execute_workflow(
            WORKFLOW_NAME,
            {"agent": agent, "input": {}, "requester": "svc", "model_overrides": outputs},
            id=f"acme-plugin-{uuid.uuid4()}",
            task_queue=h.task_queue,
            result_type=RunSummary,
        )
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    assert [a["amount_usd"] for tool, a, _, _ in SEEN if tool == "acme.refund"] == ["25.00"]
    step = summary.steps[0]
    assert step.tool_result is not None
    # The runner verified the call against the server, through the team's own client.
    assert step.tool_result.checks[0].startswith(
        f"execution: AgentRunWorkflow {summary.workflow_id}"
    )
    # An agent in the team's folder naming a tool this worker lacks refuses the worker.
    (h.home / "agents" / "greedy.yaml").write_text(
        yaml.safe_dump(
            {"agent": {"name": "greedy", "tools": {"allowlist": ["acme.refund", "acme.wire"]}}}
        )
    )
    with pytest.raises(ConfigError, match=r"unknown tools \['acme.wire'\]"):
        Worker(client, task_queue=f"{h.task_queue}-2")


async def test_a_team_toolset_run_is_shadowed_under_a_stricter_policy(
    harness: Harness, tmp_path: Path
) -> None:
    """A shadow re-runs a team's run under a candidate policy: its reads answered from the
    recording, its writes simulated, the team's functions never called."""
    h = harness
    agent = acme_agent(h)
    outputs = scripted(
        acme_call("get_invoice", invoice_id="INV-3"),
        acme_call("refund", invoice_id="INV-3", amount_usd="40"),
        {"kind": "final_answer", "answer": "refunded", "reason": "t"},
    )
    async with build_worker(h.env.client, h.settings, ACME, task_queue=h.task_queue):
        original = await (await start_acme(h, agent, outputs)).result()
    assert original.outcome == Outcome.COMPLETED
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "acme.cedar").write_text(POLICY)
    (candidate / "strict.cedar").write_text(
        '@id("acme_refunds_over_30_forbidden")\n'
        'forbid(principal, action == Action::"acme.refund", resource)\n'
        'when { context.input.amount_usd.greaterThan(decimal("30.00")) };\n'
    )
    SEEN.clear()
    (diff,) = await shadow_runs(
        h.env.client,
        h.settings,
        [await h.history(original.workflow_id)],
        Candidate(policies=candidate),
        ACME,
    )
    assert (diff.original_outcome, diff.shadow_outcome) == ("completed", "denied")
    assert diff.changed_decisions == 1
    assert diff.new_denials[0].endswith("deny (policy_forbid, acme_refunds_over_30_forbidden)")
    assert SEEN == []  # neither the read nor the refund ran again


# -- evals on a team toolset (item 5) ------------------------------------------------------------

ledger = Toolset("ledger")
#: Each eval case's balances, by the case run's workflow id (what call.run_id carries).
BALANCES: dict[str, dict[str, int]] = {}


@ledger.tool(tier=0)
def balance(account: str, call: ToolCall) -> dict[str, Any]:
    """One account's balance."""
    return {"account": account, "balance": BALANCES[call.run_id][account]}


@ledger.tool(tier=2, kind="write", honors_idempotency_key=True)
def debit(account: str, amount: int, call: ToolCall) -> dict[str, Any]:
    """Take money from an account."""
    BALANCES[call.run_id][account] -= amount
    return {"account": account, "balance": BALANCES[call.run_id][account]}


async def seed_ledger(run_id: str, state: dict[str, Any]) -> None:
    BALANCES[run_id] = dict(state["balances"])


ledger.fixture(setup=seed_ledger, final_state=lambda run_id: {"balances": BALANCES[run_id]})

LEDGER_POLICY = """
@id("ledger_all")
permit(principal, action in [Action::"ledger.balance", Action::"ledger.debit"], resource);

@id("ledger_outputs")
permit(principal, action == Action::"tiergate.emit", resource);
"""


def ledger_case(case_id: str, start: int, debit_amount: int, expected: int) -> dict[str, Any]:
    return {
        "id": case_id,
        "input": {},
        "fixtures": {"ledger": {"balances": {"A": start}}},
        "model": {
            "source": "scripted",
            "script": [
                {
                    "kind": "tool_call",
                    "tool": "ledger.balance",
                    "arguments": {"account": "A"},
                    "reason": "t",
                },
                {
                    "kind": "tool_call",
                    "tool": "ledger.debit",
                    "arguments": {"account": "A", "amount": debit_amount},
                    "reason": "t",
                },
                {"kind": "final_answer", "answer": "done", "reason": "t"},
            ],
        },
        "expect": {
            "outcome": "completed",
            "trajectory": {"in_order": [{"tool": "ledger.balance"}, {"tool": "ledger.debit"}]},
            "final_state": {"ledger": {"balances": {"A": expected}}},
        },
    }


def team_agent(
    folder: Path, name: str, tools: list[str], policy: str, approvers: str = "", **fields: Any
) -> str:
    """Write a team's agent into ``folder``: offline models, its own Cedar file and approver
    file (no demo policy), and any other config ``fields``."""
    folder.mkdir(exist_ok=True)
    agent = {
        "name": name,
        "version": "1",
        "model_tier": {"executor": "frontier"},
        "models": OFFLINE,
        "tools": {"allowlist": tools},
        "policy": {"engine": "cedar", "files": [f"{name}.cedar"]},
        "approvals": {"policy_files": [f"{name}-approvers.cedar"]},
        **fields,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"agent": agent}))
    (folder / f"{name}.cedar").write_text(policy)
    (folder / f"{name}-approvers.cedar").write_text(approvers)
    return name


async def test_an_eval_suite_seeds_and_reads_a_team_toolset_through_its_fixture(
    harness: Harness,
) -> None:
    h = harness
    team_agent(
        h.home / "agents",
        "ledger_agent",
        ["ledger.balance", "ledger.debit"],
        LEDGER_POLICY,
        APPROVERS.replace("acme.refund", "ledger.debit"),
    )
    suite = Suite.model_validate(
        {
            "suite": "ledger",
            "version": "1",
            "agent": "ledger_agent",
            "cases": [
                ledger_case("debits", 100, 30, 70),  # passes
                ledger_case("wrong", 100, 30, 50),  # the fixture reads 70: fails, naming it
            ],
        }
    )
    toolkit = Toolkit.of(ledger)
    result = await run_suite(suite, h.env.client, h.settings, toolkit, concurrency=2)
    by_id = {case.id: case for case in result.cases}
    assert by_id["debits"].passed, by_id["debits"].failures
    assert by_id["wrong"].failures == [
        "outcome.final_state: ledger.balances is {'A': 70}; expected {'A': 50}"
    ]
    # Each case had its own state: two runs, two seeded ledgers, neither saw the other's debit.
    assert sorted(b["A"] for b in BALANCES.values()) == [70, 70]
    # A case naming a toolset without a fixture is refused before anything runs.
    bare = Suite.model_validate(
        {
            "suite": "bare",
            "version": "1",
            "agent": "ledger_agent",
            "cases": [{**ledger_case("x", 1, 1, 0), "fixtures": {"acme": {}}}],
        }
    )
    with pytest.raises(
        EvalError, match=r"case x, field fixtures.acme: toolset 'acme' has no fixture"
    ):
        await run_suite(bare, h.env.client, h.settings, toolkit)


LEDGER_TOOLS = """
from tiergate import ToolCall, Toolset

ledger = Toolset("ledger")
BALANCES = {}


@ledger.tool(tier=2, kind="write", honors_idempotency_key=True)
def debit(account: str, amount: int, call: ToolCall) -> dict:
    BALANCES[call.run_id][account] -= amount
    return {"balance": BALANCES[call.run_id][account]}


ledger.fixture(
    setup=lambda run_id, state: BALANCES.__setitem__(run_id, dict(state["balances"])),
    final_state=lambda run_id: {"balances": BALANCES[run_id]},
)
"""


async def test_tiergate_eval_run_judges_a_team_toolset_by_its_fixture(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    (tmp_path / "ledger_tools.py").write_text(LEDGER_TOOLS)
    agents = tmp_path / "agents"
    debits_only = LEDGER_POLICY.replace(
        '[Action::"ledger.balance", Action::"ledger.debit"]', '[Action::"ledger.debit"]'
    )
    team_agent(agents, "ledger_cli", ["ledger.debit"], debits_only)
    case = ledger_case("debits", 100, 30, 70)
    case["model"]["script"] = case["model"]["script"][1:]  # the debit, then the answer
    case["expect"]["trajectory"] = {"in_order": [{"tool": "ledger.debit"}]}
    wrong = {
        **case,
        "id": "wrong",
        "expect": {**case["expect"], "final_state": {"ledger": {"balances": {"A": 1}}}},
    }
    suite = {"suite": "ledger-cli", "version": "1", "agent": "ledger_cli", "cases": [case, wrong]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    env = {
        "TIERGATE_HOME": str(tmp_path / "home"),
        "TIERGATE_AGENTS_DIR": str(agents),
        "TIERGATE_TOOLSETS": '["ledger_tools:ledger"]',
    }
    target = h.env.client.service_client.config.target_host
    out = tmp_path / "result.json"
    code, text = await tiergate(
        "eval", "run", "suite.yaml", "--server", target, "--json", str(out), env=env, cwd=tmp_path
    )
    assert code == 1, text  # one case fails, so the suite misses its pass rate
    cases = {c["id"]: c for c in json.loads(out.read_text())["cases"]}
    assert cases["debits"]["passed"], cases["debits"]
    assert cases["wrong"]["failures"] == [
        "outcome.final_state: ledger.balances is {'A': 70}; expected {'A': 1}"
    ]


# -- caps on a team's toolset: counted by the worker's ledger ----------------------------------

ledgered = Toolset("ledgered")


@ledgered.tool(tier=1, kind="write", honors_idempotency_key=True)
def pay(args: RefundArgs, call: ToolCall) -> Any:
    """Pay out; INV-0 is refused by the backend (nothing paid), INV-9 was paid before."""
    if args.invoice_id == "INV-0":
        raise ToolBackendError("invoice INV-0 is closed")
    if args.invoice_id == "INV-9":
        return Replayed({"paid_usd": "1.00"})
    return {"paid_usd": str(args.amount_usd)}


DOLLARS = Cap(
    name="payouts_per_day",
    tools=["ledgered.pay"],
    window="day",
    sum_field="amount_usd",
    max_sum="100",
)


async def test_a_team_toolsets_caps_are_charged_once_per_key_and_given_back_on_refusal(
    harness: Harness,
) -> None:
    h = harness
    team_agent(
        h.home / "agents",
        "payouts",
        ["ledgered.pay"],
        '@id("pay")\npermit(principal, action == Action::"ledgered.pay", resource);\n'
        '@id("emit")\npermit(principal, action == Action::"tiergate.emit", resource);\n',
        limits={"caps": [DOLLARS.model_dump(exclude_none=True)]},
    )

    def pay_call(invoice: str, amount: str) -> dict[str, Any]:
        arguments = {"invoice_id": invoice, "amount_usd": amount}
        return {"kind": "tool_call", "tool": "ledgered.pay", "arguments": arguments, "reason": "t"}

    outputs = scripted(
        pay_call("INV-1", "60"),
        pay_call("INV-0", "30"),  # refused by the backend: its 30 is given back
        pay_call("INV-2", "30"),  # 90 of 100
        pay_call("INV-9", "5"),  # the backend had applied this key already: 95
        pay_call("INV-3", "20"),  # 115: over the cap, the function never runs; the run ends
    )
    async with build_worker(
        h.env.client, h.settings, Toolkit.of(ledgered), task_queue=h.task_queue
    ):
        handle = await start_acme(h, "payouts", outputs)
        summary = await handle.result()
    results = [s.tool_result for s in summary.steps if s.tool_result is not None]
    assert [(r.ok, r.code, r.cap) for r in results] == [
        (True, None, None),
        (False, None, None),
        (True, None, None),
        (True, None, None),
        (False, "rate_limited", "payouts_per_day"),
    ]
    assert "95.00 of 100 used in this window; this call needs 20.00" in (results[4].error or "")
    assert [r.replayed for r in results] == [False, False, False, True, False]
    assert summary.outcome == Outcome.DENIED
    assert CapLedger(h.settings.database()).usage("payouts", DOLLARS) == (3, Decimal("95"))


# -- approver policies see a team tool's arguments ---------------------------------------------

CLERKS = """
@id("clerks_approve_small_acme_refunds")
permit(principal, action == Action::"approve", resource == Tool::"acme.refund")
when {
  principal.roles.contains("clerk") &&
  context.input has amount_usd && context.input.amount_usd.lessThanOrEqual(decimal("200.00"))
};
"""


def test_approver_policies_bound_a_team_tool_by_its_arguments() -> None:
    specs = ACME.tools.specs
    schema = approver_schema(specs.values())
    assert '"amount_usd"?: __cedar::decimal' in schema
    assert '"invoice_id"?: String' in schema
    gate = ApproverGate(build_bundle([("clerks.cedar", CLERKS)], schema), specs)

    def may(amount: str, roles: tuple[str, ...] = ("clerk",)) -> tuple[bool, list[str]]:
        arguments = {"invoice_id": "INV-1", "amount_usd": amount}
        return gate.may_decide("c", list(roles), "acme_billing", "acme.refund", 3, arguments)

    assert may("150.00") == (True, ["clerks_approve_small_acme_refunds"])
    assert may("200.01") == (False, [])
    assert may("150.00", roles=("intern",)) == (False, [])
    assert may("1e3") == (False, [])  # not a decimal Cedar holds: fails closed
    # A new policy reads arguments under `input` only; the top-level copies exist for
    # policies pinned by runs started before `input` (tests/histories replay them).
    top_level = CLERKS.replace("context.input has amount_usd && context.input", "context")
    with pytest.raises(PolicyError):
        build_bundle([("old.cedar", top_level)], schema)

    # One argument two tools type differently is left out of the schema: a policy reading
    # it is refused at load instead of meaning two things.
    other = Toolset("other")

    @other.tool(tier=0)
    def lookup(invoice_id: int) -> dict[str, Any]:
        return {}

    both = [*specs.values(), *other.tools.specs.values()]
    assert "invoice_id" not in approver_schema(both)
    naming = (
        '@id("by_invoice")\npermit(principal, action == Action::"approve", resource) '
        'when { context.input.invoice_id == "INV-1" };'
    )
    with pytest.raises(PolicyError):
        build_bundle([("x.cedar", naming)], approver_schema(both))


async def test_a_worker_refuses_an_agent_whose_model_it_cannot_call(harness: Harness) -> None:
    h = harness
    acme_agent(h)
    path = h.home / "agents" / "acme_billing.yaml"
    config = yaml.safe_load(path.read_text())
    del config["agent"]["models"]  # the default is the demo's offline model
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as error:
        build_worker(h.env.client, h.settings, ACME, task_queue=h.task_queue)
    assert "field agent.models.small" in str(error.value)
    assert "provider 'demo', which this worker lacks" in str(error.value)
    with pytest.raises(ConfigError, match="provider 'demo'"):
        Worker(
            h.env.client,
            task_queue=h.task_queue,
            plugins=[TiergatePlugin([acme], settings=h.settings)],
        )
