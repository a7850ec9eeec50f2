"""`tiergate replay`: gate a deploy on "recorded runs still replay under this code"."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from temporalio.client import WorkflowHistory

from tiergate.cli._render import console
from tiergate.cluster import connect
from tiergate.core import WORKFLOW_NAME
from tiergate.errors import HistoryError, TiergateError
from tiergate.forensics import ReplayOutcome, fetch_history, load_history_file, replay_all
from tiergate.settings import Settings


def history_files(paths: list[Path]) -> list[Path]:
    """The files named, with each folder replaced by the `*.json` files in it."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.json")))
        elif path.exists():
            found.append(path)
        else:
            raise HistoryError(f"{path}: no such file or folder")
    return found


async def server_histories(settings: Settings, query: str, limit: int) -> list[WorkflowHistory]:
    client = await connect(settings)
    full = f'WorkflowType = "{WORKFLOW_NAME}" AND ({query})'
    try:
        ids = [wf.id async for wf in client.list_workflows(full, limit=limit)]
    except Exception as error:  # the server refuses a malformed query with an RPC error
        raise HistoryError(f"the visibility query {query!r} was refused: {error}") from None
    if not ids:
        raise HistoryError(f"the visibility query {query!r} matched no tiergate runs")
    return [await fetch_history(client, workflow_id) for workflow_id in ids]


def outcome_table(outcomes: list[ReplayOutcome]) -> Table:
    table = Table(title="replay under the current workflow code")
    for column in ("run", "events", "result"):
        table.add_column(column)
    for o in outcomes:
        if o.ok:
            result = "[green]replays cleanly[/green]"
        elif o.divergence:
            d = o.divergence
            result = f"[red]diverges at event {d.event_id}: {d.event_type}[/red]\n{d.detail}"
        else:
            result = f"[red]fails[/red]: {o.error}"
        table.add_row(o.workflow_id, str(o.events), result)
    return table


def replay(
    files: Annotated[
        list[Path] | None, typer.Argument(help="History files or folders of them.")
    ] = None,
    query: Annotated[
        str | None, typer.Option("--query", help="Replay runs matching this visibility query.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs from --query.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Replay recorded runs against this code; exit 1 if any no longer replays."""

    async def main() -> list[ReplayOutcome]:
        histories = [load_history_file(p) for p in history_files(files or [])]
        if query is not None:
            histories += await server_histories(Settings(), query, limit)
        if not histories:
            raise HistoryError("nothing to replay", fix="give history files, a folder, or --query")
        return await replay_all(histories)

    try:
        outcomes = asyncio.run(main())
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    failed = [o for o in outcomes if not o.ok]
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "workflow_id": o.workflow_id,
                        "events": o.events,
                        "ok": o.ok,
                        "error": o.error or None,
                        "divergence": o.divergence.__dict__ if o.divergence else None,
                    }
                    for o in outcomes
                ],
                indent=2,
            )
        )
    else:
        console.print(outcome_table(outcomes))
        console.print(f"{len(outcomes) - len(failed)} of {len(outcomes)} runs replay cleanly")
    raise typer.Exit(1 if failed else 0)
