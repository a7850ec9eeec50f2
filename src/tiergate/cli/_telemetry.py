"""Telemetry for a CLI command that runs workflows or talks to the server."""

from __future__ import annotations

import structlog

from tiergate import observe as telemetry
from tiergate.cli._render import fail
from tiergate.errors import TiergateError
from tiergate.settings import Settings


def install_telemetry(settings: Settings, service: str) -> None:
    """Installs traces, metrics and logs for this command (see tiergate.telemetry)."""
    try:
        installed = telemetry.install(settings, service=service)
    except TiergateError as error:
        fail(error)
    if installed is not None:
        structlog.get_logger("tiergate").debug("telemetry", exporters=installed.described)
