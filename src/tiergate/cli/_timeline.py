"""Rich rendering of a forensic timeline (`tiergate runs show`)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from tiergate.cli._render import console as default_console
from tiergate.cli._render import versions_table
from tiergate.forensics import Timeline, TimelineStep


def _cut(text: str | None, limit: int) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _proposal(step: TimelineStep) -> str:
    what = step.tool or step.kind or "-"
    if step.tool and step.tool_input is None and step.proposal:
        what += f" {step.proposal.get('arguments', {})}"
    if step.turn is not None:
        what += f"\n[cyan]in step {step.turn}'s answer[/cyan]"
    return f"{what}\n[dim]{_cut(step.reason, 80)}[/dim]"


def _decision(step: TimelineStep) -> str:
    if step.verdict is None and step.code is None:
        return ""
    parts = [f"{step.verdict or ''} ({step.code or ''})"]
    if step.policy_ids:
        parts.append("policies: " + ", ".join(step.policy_ids))
    if step.tier is not None:
        parts.append(f"tier {step.tier}")
    if step.decision_reason:
        parts.append(f"[dim]{_cut(step.decision_reason, 80)}[/dim]")
    if step.would_flip:
        parts.append(f"[magenta]would be {_cut(step.would_flip, 80)}[/magenta]")
    return "\n".join(parts)


def _approvals(step: TimelineStep) -> str:
    lines = [
        f"{a.decision} by {a.approver} at {a.at[:19]} via {a.via}; "
        f"{'verified' if a.verified else 'NOT verified'}: {_cut(a.verification, 60)}"
        for a in step.approvals
    ]
    lines += [f"[red]refused[/red] {r}" for r in step.refusals]
    if step.approval_status:
        lines.insert(0, f"[bold]{step.approval_status}[/bold]")
    return "\n".join(lines)


def _tool(step: TimelineStep) -> str:
    if step.tool_input is None and step.tool_output is None:
        text = _cut(step.observation, 80)
    else:
        status = "ok" if step.tool_ok else "failed"
        text = (
            f"in: {_cut(str(step.tool_input), 80)}\nout ({status}): {_cut(step.tool_output, 120)}"
        )
    if step.ambiguous:
        text += f"\n[yellow]ambiguous: {_cut(step.ambiguous, 100)}[/yellow]"
    if step.adjustment:
        text += f"\n[bold yellow]budgets.adaptive: {step.adjustment}[/bold yellow]"
    return text


def timeline_table(timeline: Timeline) -> Table:
    table = Table(title="steps", show_lines=True)
    for column in (
        "#",
        "proposal / reason",
        "decision",
        "approvals",
        "tool input → output",
        "cost",
    ):
        table.add_column(column)
    for step in timeline.steps:
        latency = "" if step.latency_seconds is None else f"\n{step.latency_seconds:.3f}s"
        table.add_row(
            str(step.step),
            _proposal(step),
            _decision(step),
            _approvals(step),
            _tool(step),
            f"{step.input_tokens}+{step.output_tokens} tok\n${step.cost_usd:.6f}{latency}"
            + (f"\n[dim]{step.model}[/dim]" if step.model else ""),
        )
    return table


def show_timeline(timeline: Timeline, out: Console | None = None) -> None:
    console = out or default_console
    head = f"[bold]{timeline.workflow_id}[/bold]  agent [cyan]{timeline.agent}[/cyan]  "
    if timeline.outcome:
        head += f"outcome [bold]{timeline.outcome}[/bold] — {timeline.reason}"
    else:
        head += f"status [bold]{timeline.status}[/bold]"
    console.print(head)
    console.print(
        f"requester {timeline.requester} · started {timeline.started_at} · "
        f"tokens {timeline.input_tokens}+{timeline.output_tokens} · tool calls "
        f"{timeline.tool_calls} · cost ${timeline.cost_usd:.6f}"
        + (
            f" · work {timeline.wall_time_seconds}s · approval wait "
            f"{timeline.approval_wait_seconds}s"
            if timeline.wall_time_seconds is not None
            else ""
        )
    )
    if timeline.failure:
        console.print(f"[red]failed: {timeline.failure}[/red]")
    if timeline.alerts:
        console.print(f"[red]alerts: {', '.join(timeline.alerts)}[/red]")
    if not timeline.complete:
        console.print("[dim]run not closed: steps rebuilt from history events[/dim]")
    console.print(timeline_table(timeline))
    if timeline.versions:
        console.print(versions_table(timeline.versions.model_dump()))
