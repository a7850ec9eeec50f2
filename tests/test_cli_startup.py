"""The CLI imports a command's module only when that command runs (issue #25, item 5).

No timing is asserted here (BENCHMARKS.md has the figures); what is pinned is what each
path imports, which is what the time is made of.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tiergate.cli import COMMANDS, load, root

HISTORY = Path(__file__).parent / "histories" / "demo-T-1001-recorded.json"
#: What a command that only reads must not pay for: workers, MCP, OpenTelemetry, Cedar.
HEAVY = ["tiergate.worker", "tiergate.activities", "mcp", "opentelemetry.sdk", "tiergate.web"]


def imported_after(*args: str) -> dict[str, bool]:
    """Which of HEAVY (and any command module) a fresh interpreter holds after ``tiergate
    ARGS`` ran in it."""
    script = f"""
import contextlib, io, json, sys
from tiergate.cli import root
with contextlib.redirect_stdout(io.StringIO()):
    try:
        root().main({list(args)!r}, prog_name="tiergate")
    except SystemExit:
        pass
names = {HEAVY!r} + sorted({{m for m, _, _ in __import__("tiergate.cli").cli.COMMANDS.values()}})
print(json.dumps({{n: n in sys.modules for n in names}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    found: dict[str, bool] = json.loads(out.stdout.strip().splitlines()[-1])
    return found


def test_help_imports_no_command() -> None:
    assert not any(imported_after("--help").values())


def test_the_root_offers_shell_completion_and_its_commands_do_not() -> None:
    assert {"install_completion", "show_completion"} <= {p.name for p in root().params}
    assert not {p.name for p in load("report").params} & {"install_completion"}


def test_showing_a_history_file_imports_only_what_it_reads() -> None:
    found = imported_after("runs", "show", "--history", str(HISTORY))
    assert [name for name, held in found.items() if held] == ["tiergate.cli._runs"]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_listed_help_line_is_the_commands_own(name: str) -> None:
    command = load(name)
    assert command.name == name
    assert command.get_short_help_str(limit=300) == COMMANDS[name][2]
