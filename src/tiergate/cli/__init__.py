"""The `tiergate` command: a thin shell over the client, the worker and the core.

Each command lives in a module of its own, imported only when that command runs: `tiergate
--help` lists the commands from the table below without importing any of them, and a
command pays for what it uses (reading a history file never imports the worker, MCP or
OpenTelemetry). A test checks that each line of the table is the command's own help.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from tiergate.errors import TiergateError

#: Command name -> (module, attribute: a Typer app or a command function, its help line).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": (
        "tiergate.cli._serve",
        "demo",
        "Run the demo tickets on an embedded server and print their outcomes.",
    ),
    "dev": (
        "tiergate.cli._serve",
        "dev",
        "Start the Temporal dev server (SQLite under .tiergate/), a worker and the approvals "
        "page; Ctrl-C stops them.",
    ),
    "worker": (
        "tiergate.cli._serve",
        "worker",
        "Run a worker against the configured Temporal (TIERGATE_TEMPORAL_ADDRESS), serving "
        "--toolset and TIERGATE_TOOLSETS (else the support demo).",
    ),
    "run": ("tiergate.cli._runs", "run_app", "Start runs."),
    "runs": ("tiergate.cli._runs", "runs_app", "Inspect runs."),
    "policy": ("tiergate.cli._policy", "policy_app", "Inspect policies and try changes to them."),
    "approvers": ("tiergate.cli._approvals", "approvers_app", "Manage approvers and their keys."),
    "admin": ("tiergate.cli._approvals", "admin_app", "The registry's administrator key."),
    "approvals": ("tiergate.cli._approvals", "approvals_app", "Answer pending approvals."),
    "reviews": (
        "tiergate.cli._approvals",
        "reviews_app",
        "Review sampled tier-2 actions after the fact.",
    ),
    "eval": ("tiergate.cli._evals", "eval_app", "Eval suites: run, compare, history."),
    "rollout": (
        "tiergate.cli._rollout",
        "rollout_app",
        "Shadow and canary rollouts of agent versions.",
    ),
    "config": (
        "tiergate.cli._config",
        "config_app",
        "Every setting's effective value and the variable that sets it (secrets masked).",
    ),
    "agent": ("tiergate.cli._controls", "agent_app", "Pause and resume an agent (kill switch)."),
    "tool": ("tiergate.cli._controls", "tool_app", "Disable and enable a tool (kill switch)."),
    "operators": (
        "tiergate.cli._controls",
        "operators_app",
        "Manage operators: who may sign kill-switch commands to running runs.",
    ),
    "store": ("tiergate.cli._store", "store_app", "The shared store: schema and database roles."),
    "report": (
        "tiergate.cli._report",
        "report",
        "Success rate, cost, latency, denials, escalations and pending approvals, from the runs.",
    ),
    "replay": (
        "tiergate.cli._replay",
        "replay",
        "Replay recorded runs against this code; exit 1 if any no longer replays.",
    ),
    "shadow": (
        "tiergate.cli._shadow",
        "shadow",
        "Re-run under a candidate (writes simulated, reads from the recording) and diff.",
    ),
}


def load(name: str) -> Any:
    """The click command of ``name``, its module imported now; what `typer` would have built
    had the whole tree been registered up front (a sub-app stays a group even when it has
    a single command)."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(import_module(module), attribute)
    wrapper = typer.Typer(add_completion=False)  # the root has the completion options
    if isinstance(target, typer.Typer):
        wrapper.add_typer(target, name=name)
        group = typer.main.get_command(wrapper)
        assert isinstance(group, TyperGroup)  # a Typer with a sub-app is a group
        return group.commands[name]
    wrapper.command(name)(target)
    return typer.main.get_command(wrapper)


class LazyGroup(TyperGroup):
    """The root group: lists every command from `COMMANDS`, loads only the one invoked."""

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name in COMMANDS:
            command = load(name)
        return name, command, rest


def root() -> LazyGroup:
    return LazyGroup(
        name="tiergate",
        help="Governed LLM agent runs on Temporal.",
        no_args_is_help=True,
        commands=[TyperCommand(name=n, help=line) for n, (_, _, line) in COMMANDS.items()],
        params=list(typer.main.get_install_completion_arguments()),
    )


def main() -> None:
    code = 0
    try:
        root().main(prog_name="tiergate")
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except TiergateError as error:
        from tiergate.cli._render import console

        console.print(f"[red]error:[/red] {error}")
        code = 2
    if (telemetry := sys.modules.get("tiergate.observe")) is not None:
        telemetry.shutdown()  # export what is buffered: os._exit below skips atexit hooks
    sys.stdout.flush()
    sys.stderr.flush()
    # The Temporal client's Rust threads can abort the interpreter while it finalizes
    # ("PyGILState_Release ... finalizing", temporalio/sdk-python#300); every command has
    # finished its work and shut its servers down by now, so skip the teardown.
    os._exit(code)
