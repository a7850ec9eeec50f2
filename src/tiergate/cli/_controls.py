"""`tiergate agent pause|resume` and `tiergate tool disable|enable`: the kill switch."""

from __future__ import annotations

import asyncio
import getpass
from typing import Annotated

import typer

from tiergate.cli._render import console
from tiergate.cluster import connect
from tiergate.control import Controls
from tiergate.core import CONTROL_SIGNAL, WORKFLOW_NAME, ControlCommand
from tiergate.errors import TiergateError
from tiergate.settings import Settings
from tiergate.workflows import AGENT_ATTRIBUTE

agent_app = typer.Typer(help="Pause and resume an agent (kill switch).", no_args_is_help=True)
tool_app = typer.Typer(help="Disable and enable a tool (kill switch).", no_args_is_help=True)

Reason = Annotated[str, typer.Option(help="Why; recorded in every affected run.")]


async def _signal_running(settings: Settings, command: ControlCommand, agent: str | None) -> int:
    client = await connect(settings)
    query = f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Running"'
    if agent:
        query += f' AND {AGENT_ATTRIBUTE.name} = "{agent}"'
    count = 0
    async for wf in client.list_workflows(query):
        await client.get_workflow_handle(wf.id).signal(CONTROL_SIGNAL, command)
        count += 1
    return count


def _apply(settings: Settings, command: ControlCommand, agent: str | None, what: str) -> None:
    try:
        count = asyncio.run(_signal_running(settings, command, agent))
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"{what}; {count} running run(s) told")


@agent_app.command("pause")
def agent_pause(agent: str, reason: Reason = "") -> None:
    """Hold every running run of AGENT at its next gate and refuse new runs."""
    settings = Settings()
    by = getpass.getuser()
    Controls(settings.home).pause(agent, by, reason)
    command = ControlCommand(action="pause", by=by, reason=reason)
    _apply(settings, command, agent, f"{agent} paused")


@agent_app.command("resume")
def agent_resume(agent: str, reason: Reason = "") -> None:
    """Let AGENT's runs go on and new ones start."""
    settings = Settings()
    Controls(settings.home).resume(agent)
    command = ControlCommand(action="resume", by=getpass.getuser(), reason=reason)
    _apply(settings, command, agent, f"{agent} resumed")


@tool_app.command("disable")
def tool_disable(tool: str, reason: Reason = "") -> None:
    """Make every gate deny TOOL at once (running runs and new ones)."""
    settings = Settings()
    by = getpass.getuser()
    Controls(settings.home).disable(tool, by, reason)
    command = ControlCommand(action="disable_tool", tool=tool, by=by, reason=reason)
    _apply(settings, command, None, f"{tool} disabled")


@tool_app.command("enable")
def tool_enable(tool: str, reason: Reason = "") -> None:
    """Allow TOOL again (its policies decide as before)."""
    settings = Settings()
    Controls(settings.home).enable(tool)
    command = ControlCommand(action="enable_tool", tool=tool, by=getpass.getuser(), reason=reason)
    _apply(settings, command, None, f"{tool} enabled")
