"""Issue #21, item 2: MCP servers as governed toolsets.

Two real servers: `mcp-server-time` from the package registry (not ours) and the ledger in
`tests/mcp_ledger.py`, built with the MCP SDK, over stdio and over streamable HTTP. Their
listed tools are gated, approved, budgeted, recorded, audited and replayed like any tool;
annotations only raise what the config says; a server that errs, hangs or is down is an
observation or a retry, never a hang.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.conftest import OFFLINE, Harness, final, scripted
from tests.test_cli import tiergate
from tests.test_replay import replayer
from tiergate import TiergatePlugin
from tiergate.approvals.client import decide
from tiergate.config import declared_mcp_servers, parse_agent_yaml
from tiergate.control import CapLedger
from tiergate.core import (
    WORKFLOW_NAME,
    ApprovalDecision,
    Cap,
    McpServer,
    Outcome,
    RunSummary,
    ToolKind,
)
from tiergate.errors import ConfigError, McpServerError, ToolRegistrationError
from tiergate.evals import Suite, run_suite
from tiergate.forensics import (
    Candidate,
    audit_approvals,
    read_history,
    shadow_runs,
    ungated_tool_calls,
)
from tiergate.mcp_servers import ListedTool, McpHub, discover, governed_spec, wire_arguments
from tiergate.worker import Toolkit, build_worker

LEDGER = str(Path(__file__).with_name("mcp_ledger.py"))
TIME_SERVER = [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]
POLICY = """
@id("clock")
permit(principal, action == Action::"time.get_current_time", resource);

@id("ledger_reads")
permit(principal, action == Action::"ledger.balance", resource);

@id("ledger_transfers")
permit(principal, action == Action::"ledger.transfer", resource);

@id("outputs")
permit(principal, action == Action::"tiergate.emit", resource);
"""
SLOW_POLICY = """
@id("ledger_reads")
permit(principal, action in [Action::"ledger.balance", Action::"ledger.slow"], resource);
"""
TRANSFER_POLICY = """
@id("ledger_transfers")
permit(principal, action == Action::"ledger.transfer", resource);
"""
HTTP_POLICY = """
@id("ledger_reads")
permit(principal, action == Action::"ledger.balance", resource);

@id("outputs")
permit(principal, action == Action::"tiergate.emit", resource);
"""
APPROVERS = """
@id("treasurers_approve_transfers")
permit(principal, action == Action::"approve", resource == Tool::"ledger.transfer")
when { principal.roles.contains("treasurer") };
"""
RULES = [
    {
        "id": "transfers_never_over_50",
        "tool": "ledger.transfer",
        "condition": "input.amount <= 50",
        "on_fail": "block",
    }
]
EMPTY = Toolkit.of()


def ledger_server(**fields: Any) -> dict[str, Any]:
    server: dict[str, Any] = {
        "name": "ledger",
        "command": [sys.executable, LEDGER, "stdio"],
        "tools": {
            "balance": {"tier": 0},
            "transfer": {"tier": 3, "kind": "write", "honors_idempotency_key": True},
        },
    }
    server.update(fields)
    return server


def mcp_agent(
    h: Harness,
    servers: list[dict[str, Any]],
    policy: str = POLICY,
    caps: list[dict[str, Any]] | None = None,
) -> str:
    name = "treasury"
    folder = h.home / "agents"
    folder.mkdir(exist_ok=True)
    agent = {
        "name": name,
        "version": "1",
        "model_tier": {"executor": "frontier"},
        "models": OFFLINE,
        "budgets": {"max_denials": 2, "max_retries": 1},
        "mcp_servers": servers,
        "policy": {
            "engine": "cedar",
            "files": ["treasury.cedar"],
            "rules": RULES if "transfer" in policy else [],
        },
        "approvals": {"policy_files": ["treasury-approvers.cedar"]},
        "limits": {"caps": caps or []},
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump({"agent": agent}))
    (folder / "treasury.cedar").write_text(policy)
    (folder / "treasury-approvers.cedar").write_text(APPROVERS)
    return name


def step(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"kind": "tool_call", "tool": tool, "arguments": arguments, "reason": "t"}


async def start(h: Harness, agent: str, outputs: dict[str, Any]) -> WorkflowHandle[Any, RunSummary]:
    return await h.env.client.start_workflow(
        WORKFLOW_NAME,
        h.input(agent, input={}, requester="treasury-svc", model_overrides=outputs),
        id=f"mcp-{uuid.uuid4()}",
        task_queue=h.task_queue,
        result_type=RunSummary,
    )


# -- specs from listings -----------------------------------------------------------------------


def listed(name: str, read_only: bool | None, destructive: bool | None) -> ListedTool:
    schema = {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}
    return ListedTool(name, "does it", schema, read_only, destructive)


def test_annotations_raise_a_tier_or_mark_a_write_but_never_lower() -> None:
    server = McpServer.model_validate(
        {
            "name": "s",
            "command": ["x"],
            "tools": {"r": {"tier": 0}, "w": {"tier": 3, "kind": "write"}, "q": {"tier": 1}},
        }
    )
    says_reads = governed_spec(server, listed("w", True, False)).spec
    assert (says_reads.tier, says_reads.kind, says_reads.irreversible) == (3, ToolKind.WRITE, False)
    writes = governed_spec(server, listed("r", False, None)).spec  # destructive unsaid: true
    assert (writes.tier, writes.kind, writes.irreversible) == (2, ToolKind.WRITE, False)
    destroys = governed_spec(server, listed("q", False, True)).spec
    assert (destroys.tier, destroys.kind, destroys.irreversible) == (2, ToolKind.WRITE, True)
    harmless = governed_spec(server, listed("q", False, False)).spec
    assert (harmless.tier, harmless.kind) == (1, ToolKind.WRITE)
    quiet = governed_spec(server, listed("r", None, None)).spec
    assert (quiet.tier, quiet.kind) == (0, ToolKind.READ)
    assert quiet.arguments["additionalProperties"] is False
    assert quiet.name == "s.r"


def test_an_mcp_tool_config_declares_which_answers_are_ambiguous() -> None:
    server = McpServer.model_validate(
        {
            "name": "s",
            "command": ["x"],
            "tools": {"r": {"tier": 0, "ambiguous_when": {"state": ["unknown", "stale"]}}},
        }
    )
    spec = governed_spec(server, listed("r", True, None)).spec
    assert spec.ambiguous_when == {"state": ("unknown", "stale")}


def test_what_the_gate_cannot_govern_is_refused_naming_server_and_tool() -> None:
    server = McpServer.model_validate(
        {"name": "s", "command": ["x"], "tools": {"deep": {"tier": 0}}}
    )
    nested = ListedTool(
        "deep", "", {"type": "object", "properties": {"f": {"type": "object"}}}, True, None
    )
    with pytest.raises(ToolRegistrationError, match=r"MCP server 's'.*stop listing deep"):
        governed_spec(server, nested)
    emits = McpServer.model_validate(
        {"name": "s", "command": ["x"], "tools": {"r": {"tier": 0, "emits": ["body"]}}}
    )
    with pytest.raises(ToolRegistrationError, match="body"):
        governed_spec(emits, listed("r", True, None))


def test_decimal_text_goes_back_to_the_server_as_json_numbers() -> None:
    wire = wire_arguments(
        {"amount": "30.00", "rate": "0.25", "note": None, "to": "A"}, frozenset({"amount", "rate"})
    )
    assert wire == {"amount": 30, "rate": 0.25, "to": "A"}


def test_a_server_needs_one_reach_tools_and_a_tier() -> None:
    def parse(server: dict[str, Any]) -> None:
        text = yaml.safe_dump({"agent": {"name": "a", "mcp_servers": [server]}})
        parse_agent_yaml(text, "a.yaml")

    with pytest.raises(ConfigError, match="exactly one of `command`"):
        parse({"name": "s", "tools": {"t": {"tier": 0}}})
    with pytest.raises(ConfigError, match="exactly one of `command`"):
        parse({"name": "s", "command": ["x"], "url": "http://h/mcp", "tools": {"t": {"tier": 0}}})
    with pytest.raises(ConfigError, match=r"mcp_servers\[0\].tools.t.tier"):
        parse({"name": "s", "command": ["x"], "tools": {"t": {}}})
    with pytest.raises(ConfigError, match=r"tools.t.tier"):
        parse({"name": "s", "command": ["x"], "tools": {"t": {"tier": 5}}})
    with pytest.raises(ConfigError, match="headers_env applies to a `url` server"):
        parse(
            {"name": "s", "command": ["x"], "headers_env": {"A": "B"}, "tools": {"t": {"tier": 0}}}
        )
    text = yaml.safe_dump(
        {
            "agent": {
                "name": "a",
                "mcp_servers": [
                    {"name": "s", "command": ["x"], "tools": {"t": {"tier": 0}}},
                    {"name": "s", "command": ["y"], "tools": {"t": {"tier": 0}}},
                ],
            }
        }
    )
    with pytest.raises(ConfigError, match="more than once"):
        parse_agent_yaml(text, "a.yaml")


def test_agents_share_a_server_declared_alike(tmp_path: Path) -> None:
    def write(name: str, server: dict[str, Any]) -> None:
        (tmp_path / f"{name}.yaml").write_text(
            yaml.safe_dump({"agent": {"name": name, "mcp_servers": [server]}})
        )

    write("a", {"name": "s", "command": ["x"], "tools": {"t": {"tier": 0}}})
    write("b", {"name": "s", "command": ["x"], "tools": {"u": {"tier": 2, "kind": "write"}}})
    (server,) = declared_mcp_servers(tmp_path)
    assert sorted(server.tools) == ["t", "u"]
    write("c", {"name": "s", "command": ["x"], "tools": {"t": {"tier": 1}}})
    with pytest.raises(ConfigError, match=r"s.t is listed differently"):
        declared_mcp_servers(tmp_path)
    write("c", {"name": "s", "command": ["other"], "tools": {"t": {"tier": 0}}})
    with pytest.raises(ConfigError, match="declared differently"):
        declared_mcp_servers(tmp_path)


def test_discovery_refuses_a_missing_tool_or_a_dead_server() -> None:
    server = McpServer.model_validate(
        ledger_server(tools={"balance": {"tier": 0}, "wire": {"tier": 4}})
    )
    with pytest.raises(ToolRegistrationError, match=r"does not offer \['wire'\]"):
        discover([server])
    dead = McpServer.model_validate(
        {
            "name": "dead",
            "command": [sys.executable, "-c", "pass"],
            "timeout_seconds": 5,
            "tools": {"t": {"tier": 0}},
        }
    )
    started = time.monotonic()
    with pytest.raises(McpServerError, match="MCP server 'dead'"):
        discover([dead])
    assert time.monotonic() - started < 15


# -- runs --------------------------------------------------------------------------------------


async def test_mcp_tools_are_gated_approved_recorded_and_replayed(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    h.registry.add("tess", ["treasurer"], demo_key=True)
    log = tmp_path / "ledger.jsonl"
    time_server = {
        "name": "time",
        "command": TIME_SERVER,
        "tools": {"get_current_time": {"tier": 0}},
    }
    agent = mcp_agent(h, [time_server, ledger_server(env={"LEDGER_LOG": str(log)})])
    outputs = scripted(
        step("time.get_current_time", timezone="UTC"),
        step("ledger.nested", filter={"a": 1}),  # the server offers it; the config does not list it
        step("ledger.balance", account="ACC-1"),
        step("ledger.transfer", account="ACC-1", amount=30),  # tier 3: a treasurer decides
        step("ledger.transfer", account="ACC-1", amount=500),  # blocked: ends the run
    )
    async with build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue):
        handle = await start(h, agent, outputs)
        pending = await h.pending(handle)
        assert (pending.tool, pending.tier) == ("ledger.transfer", 3)
        await decide(h.env.client, h.registry, handle.id, "tess", ApprovalDecision.APPROVE, "ok")
        summary = await handle.result()
    verdicts = [(s.decision.verdict, s.decision.code) for s in summary.steps if s.decision]
    assert verdicts == [
        ("allow", "allowed"),
        ("deny", "unknown_tool"),
        ("allow", "allowed"),
        ("allow", "approved"),
        ("deny", "policy_forbid"),
    ]
    assert summary.outcome == Outcome.DENIED, summary.reason
    results = [s.tool_result for s in summary.steps if s.tool_result is not None]
    assert all(r.ok for r in results), [r.error for r in results]
    assert '"balance": 120' in results[1].preview
    assert '"balance": 90' in results[2].preview
    (applied,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert applied["amount"] == 30
    assert applied["meta"]["io.tiergate/run_id"] == handle.id
    assert applied["meta"]["io.tiergate/idempotency_key"].startswith(handle.id)
    assert summary.versions is not None
    assert summary.versions.tool_schemas_hash.startswith("sha256:")
    history = await h.history(handle.id)
    assert ungated_tool_calls(history) == []
    audit = audit_approvals(history)
    assert audit.ok, audit.findings
    await replayer().replay_workflow(history)
    # A shadow under a stricter candidate: the recorded answers stand in, no server is called.
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    (candidate / "treasury.cedar").write_text(
        POLICY
        + '@id("transfers_over_20_forbidden")\n'
        + 'forbid(principal, action == Action::"ledger.transfer", resource)\n'
        + 'when { context.input.amount.greaterThan(decimal("20.0")) };\n'
    )
    served = EMPTY.serving_mcp(h.settings.agents_dir)
    try:
        (diff,) = await shadow_runs(
            h.env.client, h.settings, [history], Candidate(policies=candidate), served
        )
    finally:
        served.close()
    assert diff.new_denials[0].endswith("deny (policy_forbid, transfers_over_20_forbidden)")
    assert len(log.read_text().splitlines()) == 1  # the transfer did not run again


async def test_an_error_result_is_an_observation_and_a_silent_server_is_not_a_hang(
    harness: Harness,
) -> None:
    h = harness
    server = ledger_server(
        timeout_seconds=1,
        tools={"balance": {"tier": 0}, "slow": {"tier": 0}},
    )
    agent = mcp_agent(h, [server], SLOW_POLICY)
    outputs = scripted(
        step("ledger.balance", account="ACC-404"),
        step("ledger.slow", seconds=30),
    )
    started = time.monotonic()
    async with build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue):
        summary = await (await start(h, agent, outputs)).result()
    assert time.monotonic() - started < 60
    results = [s.tool_result for s in summary.steps if s.tool_result is not None]
    assert not results[0].ok
    assert "no account ACC-404" in (results[0].error or "")
    assert results[0].attempt == 1  # the server's answer, not retried
    # The silent call was retried once (max_retries: 1), then the retry budget ended the run.
    assert summary.outcome == Outcome.BUDGET_EXHAUSTED
    assert "tool__ledger.slow failed 2 times" in summary.reason
    assert "did not answer slow within 1s" in summary.reason


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def ledger_over_http() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "LEDGER_TOKEN": "s3cret"}
    process = subprocess.Popen([sys.executable, LEDGER, "http", str(port)], env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_a_streamable_http_server_is_reached_with_headers_from_the_env(
    harness: Harness, ledger_over_http: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    server = {
        "name": "ledger",
        "url": ledger_over_http,
        "headers_env": {"Authorization": "LEDGER_AUTH"},
        "tools": {"balance": {"tier": 0}},
    }
    agent = mcp_agent(h, [server], HTTP_POLICY)
    monkeypatch.delenv("LEDGER_AUTH", raising=False)
    with pytest.raises(McpServerError, match=r"\$LEDGER_AUTH"):
        build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue)
    monkeypatch.setenv("LEDGER_AUTH", "Bearer wrong")
    with pytest.raises(McpServerError, match="MCP server 'ledger'"):
        build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue)
    monkeypatch.setenv("LEDGER_AUTH", "Bearer s3cret")
    outputs = scripted(
        step("ledger.balance", account="ACC-1"),
        {"kind": "final_answer", "answer": "120", "reason": "t"},
    )
    async with build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue):
        summary = await (await start(h, agent, outputs)).result()
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    (result,) = [s.tool_result for s in summary.steps if s.tool_result is not None]
    assert result.ok
    assert '"balance": 120' in result.preview
    history = await h.history(summary.workflow_id)
    assert "s3cret" not in json.dumps(history.to_json_dict())


def test_sessions_are_reused_replaced_after_a_timeout_and_closed_with_the_hub() -> None:
    server = McpServer.model_validate(
        ledger_server(timeout_seconds=1, tools={"balance": {"tier": 0}, "slow": {"tier": 0}})
    )
    hub = McpHub([server])
    hub.listing("ledger")
    first = hub._sessions["ledger"]
    hub.call("ledger", "balance", {"account": "ACC-1"}, {})
    assert hub._sessions["ledger"] is first  # one session serves every call
    with pytest.raises(McpServerError, match="did not answer slow within 1s"):
        hub.call("ledger", "slow", {"seconds": 30}, {})
    answer = hub.call("ledger", "balance", {"account": "ACC-1"}, {})
    assert answer.structured_content == {"account": "ACC-1", "balance": 120}
    assert hub._sessions["ledger"] is not first  # the stuck session was replaced
    hub.close()
    assert hub._sessions == {}
    with pytest.raises(McpServerError, match="closed"):
        hub.call("ledger", "balance", {"account": "ACC-1"}, {})


def test_a_server_may_start_slower_than_it_answers_but_not_forever() -> None:
    """Starting a server (a process importing its SDK, npx fetching one) is bounded by
    `start_timeout_seconds`, not by the per-call `timeout_seconds`."""
    slow_start = (
        f"import runpy, sys, time; time.sleep(1.5); sys.argv = [{LEDGER!r}, 'stdio']; "
        f"runpy.run_path({LEDGER!r}, run_name='__main__')"
    )
    server = McpServer.model_validate(
        ledger_server(command=[sys.executable, "-c", slow_start], timeout_seconds=1)
    )
    hub = McpHub([server])
    try:
        assert {t.name for t in hub.listing("ledger")} >= {"balance"}
    finally:
        hub.close()
    never = McpServer.model_validate(
        ledger_server(
            command=[sys.executable, "-c", "import time; time.sleep(60)"],
            start_timeout_seconds=1,
        )
    )
    hub = McpHub([never])
    try:
        with pytest.raises(McpServerError, match="did not complete its handshake within 1s"):
            hub.listing("ledger")
    finally:
        hub.close()


async def test_policy_schema_includes_the_listed_tools_of_mcp_servers(tmp_path: Path) -> None:
    agent = {"name": "treasury", "mcp_servers": [ledger_server()]}
    (tmp_path / "treasury.yaml").write_text(yaml.safe_dump({"agent": agent}))
    code, out = await tiergate("policy", "schema", env={"TIERGATE_AGENTS_DIR": str(tmp_path)})
    assert code == 0, out
    assert 'action "ledger.transfer"' in out
    assert 'action "ledger.balance"' in out
    assert "ledger.nested" not in out  # offered by the server, not listed


async def test_a_schema_changed_since_a_run_started_does_not_change_that_run(
    harness: Harness, tmp_path: Path
) -> None:
    """A run pinned to the server's first schema, held for approval while the server's
    ``transfer`` gains a required ``memo``: the worker that now serves the new schema does
    not trust the run's call, so it never runs, and the history keeps the pinned schema."""
    h = harness
    h.registry.add("tess", ["treasurer"], demo_key=True)
    schema, log = tmp_path / "schema", tmp_path / "ledger.jsonl"
    schema.write_text("1")
    server = ledger_server(
        env={"LEDGER_LOG": str(log), "LEDGER_SCHEMA_FILE": str(schema)},
        tools={"transfer": {"tier": 3, "kind": "write", "honors_idempotency_key": True}},
    )
    agent = mcp_agent(h, [server], TRANSFER_POLICY)
    outputs = scripted(step("ledger.transfer", account="ACC-1", amount=30))
    async with build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue):
        handle = await start(h, agent, outputs)
        await h.pending(handle)
    schema.write_text("2")
    served = EMPTY.serving_mcp(h.settings.agents_dir)
    served.close()
    assert "memo" in served.tools.specs["ledger.transfer"].arguments["properties"]
    async with build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue):
        await decide(h.env.client, h.registry, handle.id, "tess", ApprovalDecision.APPROVE, "ok")
        summary = await handle.result()
    assert summary.outcome == Outcome.FAILED
    assert "refused by the runner (bundle): this worker has loaded no config" in summary.reason
    assert not log.exists()  # the transfer never reached the server
    view = read_history(await h.history(handle.id))
    (load,) = view.named("agent__load")
    pinned = load.result["tools"]["ledger.transfer"]["arguments"]
    assert sorted(pinned["properties"]) == ["account", "amount"]


async def test_a_team_worker_with_the_plugin_serves_mcp_servers_and_closes_them(
    harness: Harness,
) -> None:
    h = harness
    server = ledger_server(tools={"balance": {"tier": 0}})
    agent = mcp_agent(h, [server], HTTP_POLICY)
    plugin = TiergatePlugin(settings=h.settings)
    target = h.env.client.service_client.config.target_host
    client = await Client.connect(target, plugins=[plugin])
    outputs = scripted(
        step("ledger.balance", account="ACC-2"),
        {"kind": "final_answer", "answer": "5", "reason": "t"},
    )
    async with Worker(client, task_queue=h.task_queue):
        summary = await client.execute_workflow(
            WORKFLOW_NAME,
            {"agent": agent, "input": {}, "requester": "svc", "model_overrides": outputs},
            id=f"mcp-plugin-{uuid.uuid4()}",
            task_queue=h.task_queue,
            result_type=RunSummary,
        )
        hub = plugin.toolkit.mcp
        assert hub is not None
        assert not hub._closed
    assert summary.outcome == Outcome.COMPLETED, summary.reason
    (result,) = [s.tool_result for s in summary.steps if s.tool_result is not None]
    assert '"balance": 5' in result.preview
    assert hub._closed  # the worker's shutdown closed the sessions


async def test_an_mcp_tools_caps_are_charged_and_given_back_when_the_server_refuses(
    harness: Harness,
) -> None:
    h = harness
    cap = {"name": "balance_reads", "tools": ["ledger.balance"], "window": "day", "max_calls": 2}
    time_server = {
        "name": "time",
        "command": TIME_SERVER,
        "tools": {"get_current_time": {"tier": 0}},
    }
    agent = mcp_agent(h, [time_server, ledger_server()], caps=[cap])
    outputs = scripted(
        step("ledger.balance", account="ACC-1"),
        step("ledger.balance", account="ACC-404"),  # an error result: its charge is given back
        step("ledger.balance", account="ACC-2"),
        step("ledger.balance", account="ACC-3"),  # the third read of the day: rate_limited
    )
    async with build_worker(h.env.client, h.settings, EMPTY, task_queue=h.task_queue):
        summary = await (await start(h, agent, outputs)).result()
    results = [s.tool_result for s in summary.steps if s.tool_result is not None]
    assert [(r.ok, r.code) for r in results] == [
        (True, None),
        (False, None),
        (True, None),
        (False, "rate_limited"),
    ]
    used = CapLedger(h.settings.database()).usage("treasury", Cap.model_validate(cap))
    assert used == (2, Decimal(0))


async def test_an_eval_suite_judges_an_mcp_agents_trajectory(harness: Harness) -> None:
    h = harness
    time_server = {
        "name": "time",
        "command": TIME_SERVER,
        "tools": {"get_current_time": {"tier": 0}},
    }
    agent = mcp_agent(h, [time_server, ledger_server()])
    reads = [
        step("ledger.balance", account="ACC-1"),
        step("time.get_current_time", timezone="UTC"),
        final("ACC-1 holds 120"),
    ]
    case = {
        "id": "reads",
        "input": {},
        "model": {"source": "scripted", "script": reads},
        "expect": {
            "outcome": "completed",
            "trajectory": {
                "in_order": [
                    {"tool": "ledger.balance", "arguments": {"account": "ACC-*"}},
                    {"tool": "time.*"},
                ],
                "never": [{"tool": "ledger.transfer"}],
            },
        },
    }
    backwards = {**case, "id": "backwards", "model": {"source": "scripted", "script": reads[1:]}}
    suite = Suite.model_validate(
        {"suite": "mcp", "version": "1", "agent": agent, "cases": [case, backwards]}
    )
    served = EMPTY.serving_mcp(h.settings.agents_dir)
    try:
        result = await run_suite(suite, h.env.client, h.settings, served, concurrency=2)
    finally:
        served.close()
    passed = {c.id: (c.passed, c.failures) for c in result.cases}
    assert passed["reads"] == (True, [])
    assert passed["backwards"][0] is False
    assert (
        "behavior.trajectory.in_order: no ledger.balance(account=ACC-*)"
        in (passed["backwards"][1][0])
    )
