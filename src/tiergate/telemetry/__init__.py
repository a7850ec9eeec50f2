"""Observability: OpenTelemetry traces and metrics, structlog logs, one redaction layer."""

from tiergate.telemetry._export import JsonlSpanExporter, SafeSpanExporter, redact_span
from tiergate.telemetry._logs import configure_logging
from tiergate.telemetry._setup import (
    Telemetry,
    current,
    exporter_choice,
    install,
    plugins,
    shutdown,
)

__all__ = [
    "JsonlSpanExporter",
    "SafeSpanExporter",
    "Telemetry",
    "configure_logging",
    "current",
    "exporter_choice",
    "install",
    "plugins",
    "redact_span",
    "shutdown",
]
