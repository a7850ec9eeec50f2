"""Rich rendering of runs: one place, so the CLI, the demo and `runs show` agree."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tiergate.core import RunSummary, StepRecord, ToolCallProposal

# Pipes and CI get a wide console: the step tables are unreadable at the 80 columns default.
console = Console() if sys.stdout.isatty() else Console(width=170)


def fail(error: Exception) -> NoReturn:
    """Prints ``error`` and ends the command with exit code 2."""
    # Not hard-wrapped: the fix in a message must survive copy and paste at any width.
    console.print("[red]error:[/red]", escape(str(error)), soft_wrap=True)
    raise typer.Exit(2)


def _what(record: StepRecord) -> str:
    if record.invalid:
        return f"invalid ({record.invalid.code})"
    if isinstance(record.proposal, ToolCallProposal):
        return record.proposal.tool
    return record.proposal.kind if record.proposal else "-"


def step_line(record: StepRecord) -> str:
    """`acme.get_invoice: allow` — one step as the demo table shows it."""
    decision = record.decision
    if decision is None:
        return _what(record)
    line = f"{_what(record)}: {decision.verdict.value}"
    if record.approval is not None:
        line += f" — {decision.reason}"
    return line


def steps_table(steps: list[StepRecord]) -> Table:
    table = Table(title="steps", show_lines=False)
    for column in ("#", "proposal", "decision", "policies", "tier", "result", "tokens", "cost $"):
        table.add_column(column)
    for s in steps:
        decision = s.decision
        result = (
            s.tool_result.preview[:60]
            if s.tool_result and s.tool_result.ok
            else (s.tool_result.error if s.tool_result else (s.observation or ""))
        )
        table.add_row(
            str(s.step),
            f"{_what(s)}\n[dim]{getattr(s.proposal, 'reason', '')[:60]}[/dim]",
            f"{decision.verdict.value} ({decision.code})" if decision else "",
            ", ".join(decision.policy_ids) if decision else "",
            "" if not decision or decision.tier is None else str(decision.tier),
            result or "",
            str(s.usage.total),
            f"{s.cost_usd:.6f}",
        )
    return table


def show_summary(summary: RunSummary) -> None:
    console.print(
        f"[bold]{summary.workflow_id}[/bold]  agent [cyan]{summary.agent}[/cyan]  outcome "
        f"[bold]{summary.outcome.value}[/bold] — {summary.reason}"
    )
    u = summary.usage
    console.print(
        f"tokens {u.total_tokens} (in {u.input_tokens} / out {u.output_tokens}) · model calls "
        f"{u.model_calls} · tool calls {u.tool_calls} · retries {u.retries} · cost "
        f"${summary.cost_usd:.6f} · wall {summary.wall_time_seconds}s"
    )
    if summary.pending_action:
        p = summary.pending_action
        console.print(f"pending action: {p.tool} {p.arguments} (tier {p.tier}, {p.verdict.value})")
    if summary.alerts:
        console.print(f"[red]alerts: {', '.join(summary.alerts)}[/red]")
    console.print(steps_table(summary.steps))
    if summary.versions:
        console.print(versions_table(summary.versions.model_dump()))


def versions_table(versions: dict[str, object]) -> Table:
    table = Table(title="versions", show_header=False)
    for key, value in versions.items():
        table.add_row(key, str(value))
    return table
