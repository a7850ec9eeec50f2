"""What the CLI's workers serve: the support demo, the one place the CLI names it.

`tiergate dev`, `worker`, `demo`, `shadow`, `eval` and `policy` take their tools and model
providers from here, so a team's own toolsets replace the demo in one place.
"""

from __future__ import annotations

from tiergate.demo import SUPPORT_TOOLKIT, SupportStore
from tiergate.settings import Settings
from tiergate.worker import Toolkit


def toolkit() -> Toolkit:
    """The toolkit workers started by this CLI serve."""
    return SUPPORT_TOOLKIT


def prepare(settings: Settings) -> None:
    """Seeds the demo's store on first use, so `tiergate dev` has tickets to work on."""
    store = SupportStore(settings.support_store)
    if not store.rows("tickets"):
        store.seed_demo()
