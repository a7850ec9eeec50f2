"""`tiergate run start` and `tiergate runs list|show|export`.

Reading a run (`runs show --history FILE` above all) must start fast: what only starting a
run needs (the rollout client, telemetry) is imported when a run is started.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from tiergate.cli._render import console, fail
from tiergate.cli._timeline import show_timeline
from tiergate.cluster import connect
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.errors import TiergateError
from tiergate.forensics import (
    Timeline,
    build_timeline,
    fetch_history,
    fetch_run_chain,
    load_history_file,
)
from tiergate.sensitive import Redactor
from tiergate.settings import Settings

run_app = typer.Typer(help="Start runs.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _read_input(value: str) -> Any:
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    return json.loads(text)


@run_app.command("start")
def run_start(
    agent: str,
    input_: Annotated[str, typer.Option("--input", help="JSON, or @FILE holding JSON.")] = "{}",
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the summary.")] = False,
    run_id: Annotated[str | None, typer.Option("--id", help="Workflow id to use.")] = None,
    requester: str = "cli",
    as_json: JsonFlag = False,
) -> None:
    """Start a run of AGENT."""
    from tiergate.cli._telemetry import install_telemetry
    from tiergate.rollout import start_run

    try:
        request = RunInput(agent=agent, input=_read_input(input_), requester=requester)
    except (ValidationError, json.JSONDecodeError, OSError) as error:
        fail(error)
    settings = Settings()
    install_telemetry(settings, "tiergate-client")
    workflow_id = run_id or f"{agent}-{uuid.uuid4().hex[:12]}"

    async def main() -> RunSummary | None:
        client = await connect(settings)
        # Through the agent's rollout, if any: the run records its version and why.
        handle = await start_run(client, settings, request, workflow_id)
        return await handle.result() if wait else None

    summary = asyncio.run(main())
    if summary is None:
        console.print(
            json.dumps({"workflow_id": workflow_id}) if as_json else f"started {workflow_id}"
        )
    elif as_json:
        print(summary.model_dump_json(indent=2))
    else:
        from tiergate.cli._render import show_summary

        show_summary(summary)


@runs_app.command("list")
def runs_list(limit: int = 20, as_json: JsonFlag = False) -> None:
    """The most recent runs, newest first."""

    async def main() -> list[dict[str, str]]:
        client = await connect(Settings())
        rows = []
        async for wf in client.list_workflows(f'WorkflowType="{WORKFLOW_NAME}"', limit=limit):
            rows.append(
                {
                    "run_id": wf.id,
                    "status": wf.status.name if wf.status else "",
                    "started": wf.start_time.isoformat(),
                }
            )
        return rows

    rows = asyncio.run(main())
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("run id", "status", "started")
    for row in rows:
        table.add_row(row["run_id"], row["status"], row["started"])
    console.print(table)


@runs_app.command("show")
def runs_show(
    run_id: Annotated[str | None, typer.Argument(help="Workflow id (omit with --history).")] = None,
    history: Annotated[
        Path | None, typer.Option("--history", help="Read an exported history file instead.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """A run's forensic timeline, from the live server or from an exported history."""
    settings = Settings()
    if run_id is None and history is None:
        fail(ValueError("give a RUN_ID, or --history FILE"))

    async def main() -> Timeline:
        if history is not None:
            loaded = load_history_file(history, run_id)
        else:
            chain = await fetch_run_chain(await connect(settings), run_id or "")
            return build_timeline(chain[-1], Redactor(settings.redaction), earlier=chain[:-1])
        return build_timeline(loaded, Redactor(settings.redaction))

    try:
        timeline = asyncio.run(main())
    except TiergateError as error:
        fail(error)
    if as_json:
        print(timeline.model_dump_json(indent=2))
        return
    show_timeline(timeline)


@runs_app.command("export")
def runs_export(
    run_id: str,
    out: Annotated[Path | None, typer.Option("-o", "--out", help="File (default: stdout).")] = None,
) -> None:
    """Write a run's Temporal history as JSON (the format `temporal workflow show -o json` uses)."""

    async def main() -> str:
        return (await fetch_history(await connect(Settings()), run_id)).to_json()

    try:
        text = asyncio.run(main())
    except TiergateError as error:
        fail(error)
    if out is None:
        print(text)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out} ({len(text)} bytes)")
