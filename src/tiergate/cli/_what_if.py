"""`tiergate policy what-if`: re-decide recorded tool calls under candidate policies, offline.

Exit codes: 0 when every flip is accepted (or there is none), 1 when one is not or when a
step's pinned decision could not be reproduced, 2 when the histories or the policies cannot
be read. So CI can gate a policy change on recorded
traffic: `tiergate policy what-if --policies policies/ --query '...' --accept-file flips.txt`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from tiergate.cli._render import console
from tiergate.cli._replay import history_files
from tiergate.cluster import connect, ensure_search_attributes
from tiergate.core import WORKFLOW_NAME
from tiergate.errors import HistoryError, PolicyError, TiergateError
from tiergate.forensics import (
    RunView,
    StepFlip,
    WhatIf,
    candidate_policies,
    fetch_history,
    load_history_file,
    read_history,
    what_if,
)
from tiergate.settings import Settings
from tiergate.workflows import SHADOW_ATTRIBUTE


def policy_what_if(
    histories: Annotated[
        list[Path] | None,
        typer.Argument(help="Exported histories, or folders of them (instead of --query)."),
    ] = None,
    policies: Annotated[
        Path, typer.Option("--policies", help="Folder of the candidate's .cedar files.")
    ] = Path("policies"),
    query: Annotated[
        str | None,
        typer.Option("--query", help="Visibility query selecting runs on the server."),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many run segments.")] = 500,
    accept: Annotated[
        list[str] | None,
        typer.Option("--accept", help="POLICY_ID or POLICY_ID=KIND: flips expected of the change."),
    ] = None,
    accept_file: Annotated[
        Path | None,
        typer.Option("--accept-file", help="A file of --accept entries, one per line (# notes)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Re-decide every recorded tool call of the selected runs under the candidate policies,
    from the histories alone (no model, no tool), and list the decisions that flip."""
    if histories and query:
        console.print("[red]error:[/red] give history FILES or --query, not both")
        raise typer.Exit(2)
    settings = Settings()
    try:
        accepted = [*(accept or []), *(_accepted(accept_file) if accept_file else [])]
        views = asyncio.run(_views(settings, histories or [], query, limit))
        report = what_if(views, candidate_policies(policies, settings.agents_dir))
        unaccepted = report.unaccepted(accepted)
    except TiergateError as error:
        console.print("[red]error:[/red]", str(error), soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        print(
            json.dumps(
                {
                    **report.model_dump(mode="json"),
                    "unaccepted": [f.model_dump(mode="json") for f in unaccepted],
                },
                indent=2,
            )
        )
    else:
        _show(report, unaccepted)
    # A what-if whose pinned re-decisions miss the record cannot vouch for the change.
    raise typer.Exit(1 if unaccepted or report.unreproduced else 0)


def _accepted(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise PolicyError(f"{path}: cannot read the accepted flips: {error.strerror}") from None
    return [entry for line in lines if (entry := line.split("#", 1)[0].strip())]


async def _views(
    settings: Settings, files: list[Path], query: str | None, limit: int
) -> list[RunView]:
    if files:
        found = history_files(files)
        if not found:
            raise HistoryError("no history files in the paths given")
        return [read_history(load_history_file(path)) for path in found]
    client = await connect(settings)
    await ensure_search_attributes(client, settings.namespace)
    full = f'WorkflowType = "{WORKFLOW_NAME}" AND {SHADOW_ATTRIBUTE.name} IS NULL' + (
        f" AND ({query})" if query else ""
    )
    try:
        # Every execution: a long run's segments are listed (and re-decided) one by one.
        segments = [(wf.id, wf.run_id) async for wf in client.list_workflows(full, limit=limit)]
    except Exception as error:  # the server refuses a malformed query with an RPC error
        raise HistoryError(f"the visibility query {query!r} was refused: {error}") from None
    if not segments:
        raise HistoryError(f"the query {query!r} matched no tiergate runs")
    return [read_history(await fetch_history(client, wid, run_id)) for wid, run_id in segments]


def _show(report: WhatIf, unaccepted: list[StepFlip]) -> None:
    open_flips = {id(f) for f in unaccepted}
    for pid, flips in report.by_policy().items():
        table = Table(title=f"{pid}: {len(flips)} flip{'s' * (len(flips) != 1)}")
        for column in ("run", "step", "tool", "was", "would be", ""):
            table.add_column(column)
        for found in flips:
            table.add_row(
                found.workflow_id,
                str(found.step),
                found.flip.tool,
                found.flip.before,
                found.flip.after,
                "[bold red]not accepted[/bold red]" if id(found) in open_flips else "accepted",
            )
        console.print(table)
    for problem in report.unreproduced:
        console.print(f"[yellow]not reproduced[/yellow] {problem}", soft_wrap=True)
    console.print(
        f"{report.runs} run segments, {report.decisions} tool calls re-decided, "
        f"{len(report.flips)} flips, {len(unaccepted)} not accepted"
    )
