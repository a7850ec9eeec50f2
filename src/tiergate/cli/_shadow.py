"""`tiergate shadow`: re-run finished runs under a candidate, with no side effects, and diff."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tiergate import observe as telemetry
from tiergate.cli._render import console
from tiergate.cli._wiring import serving
from tiergate.cluster import connect, ensure_search_attributes
from tiergate.core import WORKFLOW_NAME
from tiergate.errors import HistoryError, TiergateError
from tiergate.forensics import ShadowDiff, fetch_history, summarise
from tiergate.forensics._candidate import Candidate
from tiergate.forensics._shadow import shadow_runs
from tiergate.settings import Settings
from tiergate.workflows import SHADOW_ATTRIBUTE


def diff_table(diff: ShadowDiff) -> Table:
    table = Table(title=f"{diff.original_id} vs shadow {diff.shadow_id}", show_lines=True)
    for column in ("#", "original", "shadow", "original decision", "shadow decision"):
        table.add_column(column)
    for s in diff.steps:
        mark = "" if s.same_proposal and s.same_decision else "[yellow]"
        table.add_row(
            f"{mark}{s.step}",
            s.original or "–",
            f"{'' if s.same_proposal else '[yellow]'}{s.shadow or '–'}",
            s.original_decision or "–",
            f"{'' if s.same_decision else '[bold red]'}{s.shadow_decision or '–'}",
        )
    return table


def print_diff(diff: ShadowDiff) -> None:
    console.print(diff_table(diff))
    outcome = "same outcome" if diff.same_outcome else "[bold red]outcome changed[/bold red]"
    console.print(
        f"{outcome}: {diff.original_outcome} → {diff.shadow_outcome}; decisions changed: "
        f"{diff.changed_decisions}; cost ${diff.original_cost_usd:.6f} → "
        f"${diff.shadow_cost_usd:.6f} ({diff.cost_delta_usd:+.6f}); tokens "
        f"{diff.original_tokens} → {diff.shadow_tokens} ({diff.token_delta:+d})"
    )
    for denial in diff.new_denials:
        console.print(f"[red]new denial[/red] {denial}")
    for write in diff.simulated_writes:
        console.print(f"[dim]simulated write (not executed): {write}[/dim]")
    for read in diff.unrecorded_reads:
        console.print(f"[dim]read the original never made (refused): {read}[/dim]")


def shadow(
    run_id: Annotated[str | None, typer.Argument(help="The finished run to re-run.")] = None,
    all_runs: Annotated[
        bool, typer.Option("--all", help="Shadow every finished run matching --query.")
    ] = False,
    query: Annotated[str | None, typer.Option("--query", help="Visibility query.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs with --all.")] = 50,
    agent_version: Annotated[
        str | None, typer.Option("--agent-version", help="Agent config file or name to use.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Executor model id.")] = None,
    policies: Annotated[
        Path | None, typer.Option("--policies", help="Folder of .cedar policy files.")
    ] = None,
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="System prompt text or file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Re-run under a candidate (writes simulated, reads from the recording) and diff."""
    if (run_id is None) == (not all_runs):
        console.print("[red]error:[/red] give a RUN_ID, or --all with --query")
        raise typer.Exit(2)
    candidate = Candidate(
        agent_version=agent_version, model=model, policies=policies, prompt=prompt
    )
    settings = _quiet(Settings())
    try:
        telemetry.install(settings, service="tiergate-shadow")
        diffs = asyncio.run(_shadows(settings, candidate, run_id, query, limit))
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    _print(diffs, as_json)


def _quiet(settings: Settings) -> Settings:
    if "log_level" in settings.model_fields_set:
        return settings
    # Shadow steps are not production events: only warnings, unless asked for more.
    return settings.model_copy(update={"log_level": "warning"})


async def _shadows(
    settings: Settings, candidate: Candidate, run_id: str | None, query: str | None, limit: int
) -> list[ShadowDiff]:
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    if run_id is not None:
        ids = [run_id]
    else:
        full = (
            f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Completed" AND '
            f"{SHADOW_ATTRIBUTE.name} IS NULL" + (f" AND ({query})" if query else "")
        )
        ids = [wf.id async for wf in client.list_workflows(full, limit=limit)]
        if not ids:
            raise HistoryError(f"the query {query!r} matched no finished tiergate runs")
    histories = [await fetch_history(client, i) for i in ids]
    # A candidate compiles against the MCP servers' listed tools too; nothing is called.
    with serving(settings) as served:
        return await shadow_runs(client, settings, histories, candidate, served)


def _print(diffs: list[ShadowDiff], as_json: bool) -> None:
    if as_json:
        payload = {
            "diffs": [d.model_dump(mode="json") for d in diffs],
            "summary": summarise(diffs).model_dump(),
        }
        print(json.dumps(payload, indent=2))
        return
    for diff in diffs:
        print_diff(diff)
    if len(diffs) > 1:
        s = summarise(diffs)
        console.print(
            f"[bold]{s.runs} runs[/bold]: same outcome {s.same_outcome}, changed outcome "
            f"{s.changed_outcome}, runs with changed decisions {s.runs_with_changed_decisions}, "
            f"new denials {s.new_denials}, cost ${s.original_cost_usd:.6f} → "
            f"${s.shadow_cost_usd:.6f} ({s.cost_delta_usd:+.6f})"
        )
