"""The `tiergate` command: a thin shell over the client, the worker and the core."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import structlog
import typer
from pydantic import ValidationError
from rich.markup import escape

from tiergate import observe as telemetry
from tiergate.approvals import trusting_dev_admin
from tiergate.cli._approvals import admin_app, approvals_app, approvers_app, reviews_app
from tiergate.cli._config import config_app
from tiergate.cli._controls import agent_app, operators_app, tool_app
from tiergate.cli._demo import demo as run_demo
from tiergate.cli._evals import eval_app
from tiergate.cli._policy import policy_promote
from tiergate.cli._render import console
from tiergate.cli._replay import replay as replay_command
from tiergate.cli._report import report as report_command
from tiergate.cli._rollout import rollout_app
from tiergate.cli._shadow import shadow as shadow_command
from tiergate.cli._store import store_app
from tiergate.cli._timeline import show_timeline
from tiergate.cli._what_if import policy_what_if
from tiergate.cli._wiring import prepare, served_specs, toolkit
from tiergate.cluster import connect, start_dev_server
from tiergate.config import load_agent
from tiergate.core import WORKFLOW_NAME, RunInput, RunSummary
from tiergate.errors import TiergateError
from tiergate.forensics import (
    Timeline,
    build_timeline,
    fetch_history,
    fetch_run_chain,
    load_history_file,
)
from tiergate.policies import cedar_schema
from tiergate.rollout import start_run
from tiergate.sensitive import Redactor
from tiergate.settings import Settings
from tiergate.web import WebContext, WebServer, build_app
from tiergate.worker import build_worker, run_worker

app = typer.Typer(help="Governed LLM agent runs on Temporal.", no_args_is_help=True)
run_app = typer.Typer(help="Start runs.", no_args_is_help=True)
runs_app = typer.Typer(help="Inspect runs.", no_args_is_help=True)
policy_app = typer.Typer(help="Inspect policies and try changes to them.", no_args_is_help=True)
app.add_typer(run_app, name="run")
app.add_typer(runs_app, name="runs")
app.add_typer(policy_app, name="policy")
app.add_typer(approvers_app, name="approvers")
app.add_typer(admin_app, name="admin")
app.add_typer(approvals_app, name="approvals")
app.add_typer(reviews_app, name="reviews")
app.add_typer(eval_app, name="eval")
app.add_typer(rollout_app, name="rollout")
app.add_typer(config_app, name="config")
app.add_typer(agent_app, name="agent")
app.add_typer(tool_app, name="tool")
app.add_typer(operators_app, name="operators")
app.add_typer(store_app, name="store")

app.command("report")(report_command)
app.command("replay")(replay_command)
app.command("shadow")(shadow_command)
policy_app.command("what-if")(policy_what_if)
policy_app.command("promote")(policy_promote)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _fail(error: Exception) -> None:
    # Not hard-wrapped: the fix in a message must survive copy and paste at any width.
    console.print("[red]error:[/red]", escape(str(error)), soft_wrap=True)
    raise typer.Exit(2)


def _telemetry(settings: Settings, service: str) -> None:
    """Installs traces, metrics and logs for this command (see tiergate.telemetry)."""
    try:
        installed = telemetry.install(settings, service=service)
    except TiergateError as error:
        _fail(error)
    if installed is not None:
        structlog.get_logger("tiergate").debug("telemetry", exporters=installed.described)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave server and worker running.")] = False,
) -> None:
    """Run the demo tickets on an embedded server and print their outcomes."""
    with contextlib.suppress(KeyboardInterrupt):
        raise typer.Exit(asyncio.run(run_demo(Settings(), keep)))


ToolsetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--toolset",
        help="A toolset to serve, as module:attribute (repeatable; adds to TIERGATE_TOOLSETS).",
    ),
]
AgentsOption = Annotated[
    Path | None,
    typer.Option("--agents", help="Folder of agent configs (TIERGATE_AGENTS_DIR)."),
]


def _served(settings: Settings, toolsets: list[str] | None, agents: Path | None) -> Settings:
    """``settings`` with the command line's toolsets and agents folder."""
    update: dict[str, Any] = {"toolsets": [*settings.toolsets, *(toolsets or [])]}
    if agents is not None:
        update["agents_dir"] = agents.resolve()
    return settings.model_copy(update=update)


@app.command()
def dev(
    port: int = 7233,
    ui_port: int = 8233,
    web_port: Annotated[int, typer.Option(help="Port of the approvals web page.")] = 8080,
    toolset: ToolsetOption = None,
    agents: AgentsOption = None,
) -> None:
    """Start the Temporal dev server (SQLite under .tiergate/), a worker and the approvals
    page; Ctrl-C stops them. The worker serves --toolset (else the support demo)."""
    # A local stack: runs may bring scripted models (tests, trying an agent out).
    settings = _served(trusting_dev_admin(Settings(offline_model_overrides=True)), toolset, agents)
    _telemetry(settings, "tiergate-dev")
    try:
        served = toolkit(settings)
    except TiergateError as error:
        _fail(error)

    async def main() -> None:
        prepare(settings, served)
        server = await start_dev_server(
            settings.home / "temporal.sqlite", port=port, ui_port=ui_port
        )
        web = WebServer(
            build_app(WebContext(server.env.client, settings, ui_url=server.ui_url)),
            port=web_port,
        )
        try:
            async with web:
                console.print(
                    f"Temporal at {server.address}, Web UI at {server.ui_url}; worker on "
                    f"task queue {settings.task_queue}; approvals page at {web.browser_url}. "
                    "Ctrl-C to stop."
                )
                await build_worker(server.env.client, settings, served).run()
        finally:
            await server.env.shutdown()

    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(main())
        except TiergateError as error:
            _fail(error)


@app.command()
def worker(toolset: ToolsetOption = None, agents: AgentsOption = None) -> None:
    """Run a worker against the configured Temporal (TIERGATE_TEMPORAL_ADDRESS), serving
    --toolset and TIERGATE_TOOLSETS (else the support demo)."""
    settings = _served(Settings(), toolset, agents)
    _telemetry(settings, "tiergate-worker")
    try:
        asyncio.run(run_worker(settings, toolkit(settings)))
    except TiergateError as error:
        _fail(error)
    except KeyboardInterrupt:
        pass


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
    try:
        request = RunInput(agent=agent, input=_read_input(input_), requester=requester)
    except (ValidationError, json.JSONDecodeError, OSError) as error:
        _fail(error)
    settings = Settings()
    _telemetry(settings, "tiergate-client")
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
        _fail(ValueError("give a RUN_ID, or --history FILE"))

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
        _fail(error)
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
        _fail(error)
    if out is None:
        print(text)
        return
    out.write_text(text, encoding="utf-8")
    console.print(f"wrote {out} ({len(text)} bytes)")


@policy_app.command("show")
def policy_show(config_or_agent: str) -> None:
    """Print the Cedar an agent runs under: its files plus its compiled inline rules."""
    try:
        settings = Settings()
        bundle = load_agent(config_or_agent, settings.agents_dir, served_specs(settings))
    except TiergateError as error:
        _fail(error)
    print(f"// policy version {bundle.policy.version}\n{bundle.policy.text}")


@policy_app.command("schema")
def policy_schema() -> None:
    """Print the Cedar schema generated from the tools this CLI's workers serve (every
    toolset loaded: TIERGATE_TOOLSETS and installed packages', else the demo's; and the
    listed tools of the MCP servers the agent configs name)."""
    try:
        specs = served_specs(Settings())
    except TiergateError as error:
        _fail(error)
    print(cedar_schema(specs.values()), end="")


def main() -> None:
    code = 0
    try:
        app()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        code = 2
    telemetry.shutdown()  # export what is buffered: os._exit below skips atexit hooks
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust threads can abort the interpreter while it finalizes
    # ("PyGILState_Release ... finalizing", temporalio/sdk-python#300); every command has
    # finished its work and shut its servers down by now, so skip the teardown.
    os._exit(code)
