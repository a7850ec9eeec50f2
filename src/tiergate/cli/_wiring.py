"""What the CLI's workers serve: a team's toolsets, else the support demo.

`tiergate dev`, `worker`, `demo`, `shadow`, `eval` and `policy` take their tools and model
providers from here: the toolsets named in ``TIERGATE_TOOLSETS`` or ``--toolset`` and those
installed packages offer (entry points ``tiergate.toolsets``); with none, the support demo,
the one place the CLI names it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tiergate.core import ToolSpec
from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.settings import Settings
from tiergate.tools import load_toolsets, offered_toolsets
from tiergate.worker import Toolkit


def toolkit(settings: Settings | None = None) -> Toolkit:
    """The toolkit workers started by this CLI serve (ToolRegistrationError naming a bad
    import path or two toolsets offering one tool)."""
    named = [t for path in (settings.toolsets if settings else []) for t in load_toolsets(path)]
    toolsets = named + [t for t in offered_toolsets() if t not in named]
    return Toolkit.of(*toolsets) if toolsets else SUPPORT_TOOLKIT


@contextmanager
def serving(settings: Settings) -> Iterator[Toolkit]:
    """The toolkit plus the listed tools of the MCP servers the agent configs name, for a
    command that only reads specs (asked of the servers now, sessions closed after)."""
    served = toolkit(settings).serving_mcp(settings.agents_dir)
    try:
        yield served
    finally:
        served.close()


def served_specs(settings: Settings) -> dict[str, ToolSpec]:
    """Every tool spec a worker of this CLI would serve (see `serving`)."""
    with serving(settings) as served:
        return served.tools.specs


def prepare(settings: Settings, served: Toolkit) -> None:
    """Seeds the demo's store on first use when ``served`` is the demo, so `tiergate dev`
    has tickets to work on."""
    if served is not SUPPORT_TOOLKIT:
        return
    store = SupportStore(settings.support_store)
    if not store.rows("tickets"):
        store.seed_demo()
