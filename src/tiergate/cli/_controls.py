"""`tiergate agent pause|resume` and `tiergate tool disable|enable`: the kill switch.

Each command changes the kill switch in the shared store (`tiergate.control.Controls`,
checked by every worker's load activity and tool runner) and tells every running run with a `control` signal
signed by the operator's key, one per run, bound to that run's execution: a run ignores
unsigned commands. The operator is ``--as``, else ``TIERGATE_OPERATOR``, else the login.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tiergate.approvals import ApproverRegistry
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
As = Annotated[
    str | None,
    typer.Option("--as", help="Operator who signs (default: TIERGATE_OPERATOR or login)."),
]


#: How long a signed command stays valid: enough to reach a run, useless if captured later.
COMMAND_TTL = timedelta(minutes=5)


def signed_for(
    command: ControlCommand, key: Ed25519PrivateKey, run_id: str, first_run_id: str
) -> ControlCommand:
    """``command`` bound to one execution, fresh, and signed with the operator's key."""
    bound = command.model_copy(
        update={
            "run_id": run_id,
            "first_run_id": first_run_id,
            "command_id": uuid.uuid4().hex,
            "expires_at": datetime.now(UTC) + COMMAND_TTL,
            "signature": "",
        }
    )
    signature = base64.b64encode(key.sign(bound.signing_message())).decode()
    return bound.model_copy(update={"signature": signature})


async def _signal_running(
    settings: Settings, command: ControlCommand, agent: str | None, key: Ed25519PrivateKey
) -> int:
    client = await connect(settings)
    query = f'WorkflowType = "{WORKFLOW_NAME}" AND ExecutionStatus = "Running"'
    if agent:
        query += f' AND {AGENT_ATTRIBUTE.name} = "{agent}"'
    count = 0
    async for wf in client.list_workflows(query):
        first_run_id = wf.raw_info.first_run_id or wf.run_id
        signed = signed_for(command, key, wf.id, first_run_id)
        await client.get_workflow_handle(wf.id).signal(CONTROL_SIGNAL, signed)
        count += 1
    return count


def operator(name: str | None) -> str:
    """Who signs: ``--as``, else TIERGATE_OPERATOR, else the login name."""
    return name or os.environ.get("TIERGATE_OPERATOR") or getpass.getuser()


def _apply(settings: Settings, command: ControlCommand, agent: str | None, what: str) -> None:
    try:
        key = ApproverRegistry.of(settings, "operators").private_key(command.by)
        count = asyncio.run(_signal_running(settings, command, agent, key))
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"{what}; {count} running run(s) told")


@agent_app.command("pause")
def agent_pause(agent: str, reason: Reason = "", as_: As = None) -> None:
    """Hold every running run of AGENT at its next gate and refuse new runs."""
    settings = Settings()
    by = operator(as_)
    Controls(settings.database()).pause(agent, by, reason)
    command = ControlCommand(action="pause", by=by, reason=reason)
    _apply(settings, command, agent, f"{agent} paused")


@agent_app.command("resume")
def agent_resume(agent: str, reason: Reason = "", as_: As = None) -> None:
    """Let AGENT's runs go on and new ones start."""
    settings = Settings()
    by = operator(as_)
    Controls(settings.database()).resume(agent, by)
    command = ControlCommand(action="resume", by=by, reason=reason)
    _apply(settings, command, agent, f"{agent} resumed")


@tool_app.command("disable")
def tool_disable(tool: str, reason: Reason = "", as_: As = None) -> None:
    """Make every gate deny TOOL at once (running runs and new ones)."""
    settings = Settings()
    by = operator(as_)
    Controls(settings.database()).disable(tool, by, reason)
    command = ControlCommand(action="disable_tool", tool=tool, by=by, reason=reason)
    _apply(settings, command, None, f"{tool} disabled")


@tool_app.command("enable")
def tool_enable(tool: str, reason: Reason = "", as_: As = None) -> None:
    """Allow TOOL again (its policies decide as before)."""
    settings = Settings()
    by = operator(as_)
    Controls(settings.database()).enable(tool, by)
    command = ControlCommand(action="enable_tool", tool=tool, by=by, reason=reason)
    _apply(settings, command, None, f"{tool} enabled")


operators_app = typer.Typer(
    help="Manage operators: who may sign kill-switch commands to running runs.",
    no_args_is_help=True,
)


def _operators() -> ApproverRegistry:
    return ApproverRegistry.of(Settings(), "operators")


@operators_app.command("add")
def operators_add(
    name: str,
    public_key: Annotated[
        str | None,
        typer.Option(help="The operator's public key (`tiergate approvers keygen` on theirs)."),
    ] = None,
) -> None:
    """Register an operator. With --public-key only that public half is kept here; without
    it a key pair is made on this host (private key 0600, labeled demo). Runs started from
    now on obey this operator's signed commands."""
    try:
        entry, key_path = _operators().add(
            name, ["operator"], public_key, demo_key=public_key is None
        )
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"added operator [bold]{entry.name}[/bold] key {entry.key_id}")
    if key_path is not None:
        console.print(f"private key: {key_path} (mode 0600; made on this host: keep it with them)")


@operators_app.command("list")
def operators_list() -> None:
    """Registered operators."""
    for entry in _operators().snapshot().approvers.values():
        status = "active" if entry.active else f"revoked {entry.revoked_at}"
        console.print(f"{entry.name}  {entry.key_id}  {status}")


@operators_app.command("revoke")
def operators_revoke(name: str) -> None:
    """Revoke an operator's key: runs started from now on ignore their commands."""
    try:
        entry = _operators().revoke(name)
    except TiergateError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None
    console.print(f"revoked operator {entry.name} ({entry.key_id})")
