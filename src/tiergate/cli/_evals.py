"""`tiergate eval run|compare|history`: evals as the deployment gate."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from temporalio.client import Client

from tiergate import observe as telemetry
from tiergate.cli._render import console
from tiergate.cli._wiring import serving, toolkit
from tiergate.cluster import connect, start_dev_server
from tiergate.errors import TiergateError
from tiergate.evals import (
    ResultStore,
    Suite,
    SuiteResult,
    compare,
    load_result,
    load_suite,
    run_suite,
)
from tiergate.forensics._candidate import Candidate
from tiergate.settings import Settings

eval_app = typer.Typer(help="Eval suites: run, compare, history.", no_args_is_help=True)


@contextlib.asynccontextmanager
async def _server(settings: Settings, server: str) -> AsyncIterator[Client]:
    if server != "embedded":
        yield await connect(settings.model_copy(update={"temporal_address": server}))
        return
    dev = await start_dev_server(None, ui=False)
    try:
        yield dev.env.client
    finally:
        await dev.env.shutdown()


def result_table(result: SuiteResult) -> Table:
    table = Table(
        title=f"suite {result.suite} {result.suite_version} on {result.agent} {result.agent_version}"
    )
    for column in ("case", "result", "outcome", "steps", "tool calls", "tokens", "cost $", "why"):
        table.add_column(column)
    for case in result.cases:
        table.add_row(
            case.id,
            "[green]pass[/green]" if case.passed else "[red]FAIL[/red]",
            case.outcome,
            str(case.steps),
            str(case.tool_calls),
            str(case.tokens),
            f"{case.cost_usd:.5f}",
            "\n".join(case.failures),
        )
    return table


def _fail(error: Exception) -> None:
    # Not hard-wrapped: the fix in a message must survive copy and paste at any width.
    console.print("[red]error:[/red]", escape(str(error)), soft_wrap=True)
    raise typer.Exit(2)


@eval_app.command("run")
def eval_run(
    suite_file: Annotated[Path, typer.Argument(help="The suite YAML.")],
    agent_version: Annotated[
        str | None, typer.Option("--agent-version", help="Agent config file or name to test.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Executor model id to test.")] = None,
    policies: Annotated[
        Path | None, typer.Option("--policies", help="Folder of .cedar files to test.")
    ] = None,
    concurrency: Annotated[int, typer.Option(help="Cases run at once.")] = 4,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here.")] = None,
    server: Annotated[
        str, typer.Option(help="`embedded` (a fresh dev server) or host:port.")
    ] = "embedded",
) -> None:
    """Run every case as a real workflow; exit 1 when a suite threshold fails."""
    settings = Settings()
    if "log_level" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_level": "warning"})
    try:
        suite = load_suite(suite_file, toolkit(settings).fixtures)
        telemetry.install(settings, service="tiergate-eval")
    except TiergateError as error:
        _fail(error)
    candidate = Candidate(agent_version=agent_version, model=model, policies=policies)
    try:
        result = asyncio.run(_run(suite, settings, server, candidate, concurrency))
    except TiergateError as error:
        _fail(error)
    ResultStore(settings.database()).append(result)
    if json_out is not None:
        json_out.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    _report(result, concurrency)


async def _run(
    suite: Suite, settings: Settings, server: str, candidate: Candidate, concurrency: int
) -> SuiteResult:
    with Progress(
        TextColumn(f"suite {suite.suite}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("cases", total=len(suite.cases))
        # The agent's MCP servers are connected for the suite and closed after it.
        with serving(settings) as served:
            async with _server(settings, server) as client:
                return await run_suite(
                    suite,
                    client,
                    settings,
                    served,
                    candidate=candidate,
                    concurrency=concurrency,
                    on_case=lambda _: progress.advance(task),
                )


def _report(result: SuiteResult, concurrency: int) -> None:
    """The result table and verdict; exit 1 when a threshold failed."""
    console.print(result_table(result))
    console.print(
        f"pass rate {result.pass_rate * 100:.1f}% · cost per task ${result.cost_per_task_usd:.5f}"
        f" · tokens per task {result.tokens_per_task:g} · tool calls per task "
        f"{result.tool_calls_per_task:g} · {result.seconds:.1f}s at concurrency {concurrency}"
    )
    if result.passed:
        console.print("[green]suite passed[/green]")
        return
    console.print(f"[red]suite failed:[/red] {'; '.join(result.threshold_failures)}")
    raise typer.Exit(1)


@eval_app.command("compare")
def eval_compare(before: Path, after: Path) -> None:
    """Regressions and improvements, case by case, between two `eval run --json` results."""
    try:
        a, b = load_result(before), load_result(after)
    except (OSError, ValueError) as error:
        _fail(error)
    changes = compare(a, b)
    table = Table(title=f"{a.suite}: {before.name} → {after.name}")
    for column in ("case", "change", "before", "after"):
        table.add_column(column)
    colors = {"regression": "red", "improvement": "green"}
    for c in changes:
        color = colors.get(c.change, "yellow")
        table.add_row(c.case, f"[{color}]{c.change}[/{color}]", c.before, c.after)
    console.print(table if changes else "no case changed")
    console.print(
        f"pass rate {a.pass_rate * 100:.1f}% → {b.pass_rate * 100:.1f}% · cost per task "
        f"${a.cost_per_task_usd:.5f} → ${b.cost_per_task_usd:.5f}"
    )
    if any(c.change == "regression" for c in changes):
        raise typer.Exit(1)


@eval_app.command("history")
def eval_history(
    suite: str,
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw the trend to a PNG.")] = None,
    limit: int = 100,
) -> None:
    """The suite's results over time, from the results store."""
    rows = ResultStore(Settings().database()).history(suite, limit)
    if not rows:
        _fail(ValueError(f"no results for suite {suite!r}; run `tiergate eval run` first"))
    table = Table(title=f"suite {suite}: results over time")
    for column in (
        "when",
        "suite",
        "agent",
        "models",
        "policy",
        "pass",
        "cost/task",
        "tokens/task",
        "tools/task",
    ):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.started_at[:19],
            r.suite_version,
            r.agent_version,
            ", ".join(r.model_ids),
            r.policy_version[7:19],
            f"{r.pass_rate * 100:.1f}%",
            f"{r.cost_per_task_usd:.5f}",
            f"{r.tokens_per_task:g}",
            f"{r.tool_calls_per_task:g}",
        )
    console.print(table)
    if plot is not None:
        from tiergate.evals._plot import plot_history

        plot_history(suite, rows, plot)
        console.print(f"trend drawn to {plot}")
