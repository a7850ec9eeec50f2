"""`tiergate demo`, `tiergate dev` and `tiergate worker`: the commands that run workers."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from tiergate.approvals import trusting_dev_admin
from tiergate.cli._demo import demo as run_demo
from tiergate.cli._render import console, fail
from tiergate.cli._telemetry import install_telemetry
from tiergate.cli._wiring import prepare, toolkit
from tiergate.cluster import start_dev_server
from tiergate.errors import TiergateError
from tiergate.settings import Settings
from tiergate.web import WebContext, WebServer, build_app
from tiergate.worker import build_worker, run_worker

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


def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Leave server and worker running.")] = False,
) -> None:
    """Run the demo tickets on an embedded server and print their outcomes."""
    with contextlib.suppress(KeyboardInterrupt):
        raise typer.Exit(asyncio.run(run_demo(Settings(), keep)))


def _served(settings: Settings, toolsets: list[str] | None, agents: Path | None) -> Settings:
    """``settings`` with the command line's toolsets and agents folder."""
    update: dict[str, Any] = {"toolsets": [*settings.toolsets, *(toolsets or [])]}
    if agents is not None:
        update["agents_dir"] = agents.resolve()
    return settings.model_copy(update=update)


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
    install_telemetry(settings, "tiergate-dev")
    try:
        served = toolkit(settings)
    except TiergateError as error:
        fail(error)

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
            fail(error)


def worker(toolset: ToolsetOption = None, agents: AgentsOption = None) -> None:
    """Run a worker against the configured Temporal (TIERGATE_TEMPORAL_ADDRESS), serving
    --toolset and TIERGATE_TOOLSETS (else the support demo)."""
    settings = _served(Settings(), toolset, agents)
    install_telemetry(settings, "tiergate-worker")
    try:
        asyncio.run(run_worker(settings, toolkit(settings)))
    except TiergateError as error:
        fail(error)
    except KeyboardInterrupt:
        pass
