"""The demo wired as a worker serves it: its tools, their store, its model provider."""

from __future__ import annotations

from tiergate.demo._backend import SupportBackend
from tiergate.demo._model import DemoProvider
from tiergate.demo._store import SupportStore
from tiergate.demo._tools import SUPPORT_TOOLS
from tiergate.settings import Settings
from tiergate.worker import Toolkit


def _backend(settings: Settings) -> SupportBackend:
    return SupportBackend(SupportStore(settings.support_store))


#: What a worker serving the support demo runs: `build_worker(client, settings, SUPPORT_TOOLKIT)`.
SUPPORT_TOOLKIT = Toolkit(tools=SUPPORT_TOOLS, backend=_backend, providers={"demo": DemoProvider})
