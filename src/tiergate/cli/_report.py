"""`tiergate report`: the operator report in the terminal, as JSON, or as an HTML page."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tiergate.cli._render import console
from tiergate.cluster import connect
from tiergate.report import Distribution, Report, collect, compute, render_html
from tiergate.settings import Settings

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """``24h``, ``30m``, ``7d``, ``2w`` before ``now``, or an ISO 8601 timestamp."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration nor a timestamp; use e.g. 24h, 30m, 7d or "
            "2026-11-24T00:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def build_report(
    settings: Settings,
    since: datetime,
    agent: str | None,
    *,
    ids: list[str] | None = None,
    limit: int = 10_000,
    show_progress: bool = True,
) -> Report:
    """Reads the runs (with a progress bar on stderr) and computes the report."""
    client = await connect(settings)
    until = datetime.now(UTC)
    with Progress(
        TextColumn("reading runs"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=not show_progress,
    ) as progress:
        task = progress.add_task("runs", total=None)
        facts = await collect(
            client,
            since,
            agent,
            ids=ids,
            limit=limit,
            on_total=lambda n: progress.update(task, total=n),
            on_read=lambda: progress.advance(task),
        )
    return compute(facts, since, until, agent)


def _d(d: Distribution, unit: str = "") -> str:
    def f(value: float | None) -> str:
        if value is None:
            return "–"
        return (
            f"${value:.5f}" if unit == "$" else (f"{value:.3f}s" if unit == "s" else f"{value:g}")
        )

    return f"p50 {f(d.p50)} · p95 {f(d.p95)} · p99 {f(d.p99)} · mean {f(d.mean)} (n={d.count})"


def print_report(report: Report) -> None:
    scope = f"agent {report.agent}" if report.agent else "all agents"
    rate = "–" if report.success_rate is None else f"{report.success_rate * 100:.1f}%"
    head = Table(title=f"tiergate report — {scope}, since {report.since:%Y-%m-%d %H:%M} UTC")
    head.add_column("figure")
    head.add_column("value")
    rows = [
        (
            "runs",
            f"{report.runs} ({report.finished} finished, {report.running} running"
            + (
                f", {report.unreadable} not readable without their codec keys"
                if report.unreadable
                else ""
            )
            + ")",
        ),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in report.outcomes.items()) or "–"),
        ("success rate", rate),
        ("total cost", f"${report.cost_usd_total:.5f}"),
        ("cost per completed task", _d(report.cost_per_completed_task, "$")),
        ("tokens per completed task", _d(report.tokens_per_completed_task)),
        ("tool calls per task", _d(report.tool_calls_per_task)),
        ("run latency (work)", _d(report.latency_seconds, "s")),
        ("run latency (elapsed)", _d(report.elapsed_seconds, "s")),
        ("approval wait", _d(report.approval_wait_seconds, "s")),
        ("policy denials", _counts(report.policy_denials)),
        ("blocked actions", _counts(report.blocked_actions)),
        ("escalations", _counts(report.escalations)),
        ("budget stops", _counts(report.budget_stops)),
        (
            "adaptive budgets",
            f"{report.adaptive_stops} runs stopped, {report.budget_shrinks} budgets shrunk",
        ),
        ("log-only would flip", _counts(report.log_only_flips)),
    ]
    for name, value in rows:
        head.add_row(name, value)
    console.print(head)
    if report.pending_approvals:
        table = Table(title="pending approvals (oldest first)")
        for column in ("run", "agent", "step", "tool", "tier", "approvals", "age", "overdue"):
            table.add_column(column)
        for p in report.pending_approvals:
            table.add_row(
                p.workflow_id,
                p.agent,
                str(p.step),
                p.tool,
                str(p.tier),
                f"{len(p.approved_by)}/{p.required}",
                f"{p.age_seconds:.0f}s",
                "yes" if p.escalated else "no",
            )
        console.print(table)
    else:
        console.print("pending approvals: none")


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "–"


def report(
    since: Annotated[
        str, typer.Option("--since", help="Window start: 24h, 30m, 7d, or an ISO timestamp.")
    ] = "24h",
    agent: Annotated[str | None, typer.Option("--agent", help="Only this agent's runs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write a self-contained HTML page here.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Read at most this many runs.")] = 10_000,
) -> None:
    """Success rate, cost, latency, denials, escalations and pending approvals, from the runs."""
    start = parse_since(since, datetime.now(UTC))
    result = asyncio.run(build_report(Settings(), start, agent, limit=limit))
    if html is not None:
        html.write_text(render_html(result), encoding="utf-8")
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    print_report(result)
    if html is not None:
        console.print(f"HTML report written to {html}")
