"""The demo wired as a team wires its own: toolsets, their store, its model provider."""

from __future__ import annotations

import dataclasses

from tiergate.activities import ToolBackend
from tiergate.demo._backend import SupportDesk
from tiergate.demo._cases import SUPPORT_FIXTURE
from tiergate.demo._model import DemoProvider
from tiergate.demo._store import SupportStore
from tiergate.demo._tools import support_toolsets
from tiergate.settings import Settings
from tiergate.tools import ToolsetBackend
from tiergate.worker import Toolkit


def _on_the_worker_store(settings: Settings) -> ToolBackend:
    # Each worker's toolsets act on the store its own settings name.
    return ToolsetBackend(list(support_toolsets(SupportDesk(SupportStore(settings.support_store)))))


#: What a worker serving the support demo runs: `TiergatePlugin(toolkit=SUPPORT_TOOLKIT)` or
#: `build_worker(client, settings, SUPPORT_TOOLKIT)`.
SUPPORT_TOOLKIT = dataclasses.replace(
    Toolkit.of(*support_toolsets(SupportDesk(None)), providers={"demo": DemoProvider}),
    backend=_on_the_worker_store,
    fixtures={"support": SUPPORT_FIXTURE},
)
